//! `depthkv` / `depthkv tui`: the workbench on a live engine thread.

use super::args::ModelArgs;
use super::strategy::{read_profile, AllocArgs, SelectArgs};
use super::values;
use crate::engine::GenParams;
use crate::eval::tasks::{estimate_tokens, generate_tasks, TaskKind, TaskParams};
use crate::prune::StrategyKind;
use crate::session::worker;
use crate::ui::config::{config_dir, KeysFile};
use crate::ui::keys::Keymap;
use crate::ui::run::{run_tui, TuiOptions};
use crate::ui::theme::Theme;
use crate::userio::{read_bounded, MAX_PROMPT_BYTES};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct TuiArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt file; default: a generated ~3K-token document with a planted fact and a question.
    #[arg(long)]
    pub prompt_file: Option<PathBuf>,
    /// Global KV budget (fraction kept), in (0, 1].
    #[arg(long, default_value_t = 0.2, value_parser = values::budget, allow_negative_numbers = true)]
    pub budget: f64,
    /// Theme name (dark, light, high-contrast, or one in the config dir) or a TOML file.
    #[arg(long, default_value = "dark")]
    pub theme: String,
    /// Tokens each pane generates.
    #[arg(long, default_value_t = 64, value_parser = values::tokens)]
    pub max_new: usize,
    /// Send the prompt without the chat template.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub alloc: AllocArgs,
    #[command(flatten)]
    pub select: SelectArgs,
}

/// The built-in demo: a generated document with one planted pass key.
fn demo_prompt() -> anyhow::Result<String> {
    let params =
        TaskParams { kinds: vec![TaskKind::Needle], lengths: vec![3000], depths: vec![0.4], count: 1, seed: 42 };
    Ok(generate_tasks(&params, &estimate_tokens)?.remove(0).prompt)
}

pub fn run(a: TuiArgs) -> anyhow::Result<()> {
    let budget = a.budget;
    let select = a.select.config();
    // Theme and key bindings are checked now, not after the model loaded.
    let dir = config_dir();
    Theme::resolve(&a.theme, dir.as_deref())?;
    Keymap::with_overrides(&KeysFile::load_from_dir(dir.as_deref())?).context("invalid keys.toml")?;
    let prompt = match &a.prompt_file {
        Some(f) => read_bounded(f, MAX_PROMPT_BYTES)?,
        None => demo_prompt()?,
    };
    let profile = read_profile(a.alloc.profile.as_deref())?;
    let profile_name = a
        .alloc
        .profile
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "sample profile (SmolLM2-135M)".into());
    let opts = TuiOptions {
        theme: a.theme.clone(),
        initial_budget: budget,
        initial_strategy: if profile.sensitivity.is_some() { StrategyKind::DepthKv } else { StrategyKind::Manual },
        initial_sensitivity: profile.sensitivity.as_ref().map(|s| s.iter().map(|x| x.mean).collect()),
        initial_fractions: Some(profile.kept_fractions.clone()),
        profile_name: Some(profile_name),
        prompt,
        chat: !a.raw,
        params: GenParams { max_new_tokens: a.max_new, ..Default::default() },
        select,
    };
    let handle = worker::spawn(a.model.load_options(), select)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run_tui(handle, opts))
}
