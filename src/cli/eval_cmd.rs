//! `depthkv eval`: full, uniform, pyramid and depthkv at several budgets, or
//! a preset: `paper` (the DepthKV paper's protocol) or `kvpress-parity`
//! (our selection beside kvpress's exact one, for scripts/kvpress_parity.py).

use super::args::ModelArgs;
use super::progress::Bar;
use super::strategy::{check_budget, AllocArgs, SelectArgs};
use crate::engine::PrefillOptions;
use crate::eval::formats::{load_eval_items, EvalItem, PromptFormat};
use crate::eval::methods::{kvpress_parity_methods, Method};
use crate::eval::paper::{ablate_layers, paper_methods, paper_select, PAPER_KEEP};
use crate::eval::report::markdown_table;
use crate::eval::runner::{evaluate, EvalConfig};
use crate::prune::{Strategy, PYRAMID_BETA};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// A fixed evaluation protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// H2O scorer, keep 0.4, uniform vs DepthKV from one-layer ablations
    /// measured as KL (`depthkv-kl`) and as task-metric drop (`depthkv-task`).
    Paper,
    /// Our SnapKV/PyramidKV beside kvpress-exact SnapKV, StreamingLLM and
    /// PyramidKV, recording token ids and kept positions.
    KvpressParity,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt set (JSONL); e.g. from `depthkv tasks gen`, or LongBench/RULER/kvpress rows.
    #[arg(long)]
    pub prompts: PathBuf,
    /// Layout of --prompts: auto, native, longbench, ruler or kvpress.
    #[arg(long, default_value = "auto")]
    pub format: String,
    /// Run a fixed protocol instead of the default methods.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Paper preset: prompts for the one-layer ablations (default: --prompts, in-sample).
    #[arg(long)]
    pub calib_prompts: Option<PathBuf>,
    /// Global budgets to test, comma-separated fractions (paper preset: 0.4).
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.2,0.4")]
    pub budgets: Vec<f64>,
    /// Extra allocation variants to compare, as NAME=STRATEGY[:mix=M][:floor=F][:t=T]
    /// (e.g. `rank=depthkv-rank`, `m2=depthkv:mix=0.2`). Repeatable or comma-separated.
    #[arg(long = "variant", value_delimiter = ',')]
    pub variants: Vec<String>,
    #[command(flatten)]
    pub alloc: AllocArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Greedy tokens scored when a prompt has no reference.
    #[arg(long, default_value_t = 32)]
    pub tokens: usize,
    /// Tokens generated to score a prompt's answers.
    #[arg(long, default_value_t = 24)]
    pub answer_tokens: usize,
    /// Send prompts without the chat template unless a line says `"chat": true`.
    #[arg(long)]
    pub raw: bool,
    /// Write each prompt's token ids into the report (to replay them in another tool).
    #[arg(long)]
    pub record_tokens: bool,
    /// Write every pruned run's kept positions per layer and KV head (large).
    #[arg(long)]
    pub record_kept: bool,
    /// Measure the full cache only (token ids, continuation, answers): the replay
    /// set for scripts/kvpress_parity.py, without the cost of the pruned runs.
    #[arg(long)]
    pub only_full: bool,
    /// Write the report as JSON here (per-prompt results included).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw quality vs budget to a .png or .svg file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    if a.budgets.is_empty() {
        anyhow::bail!("give at least one budget");
    }
    for &b in &a.budgets {
        check_budget(b)?;
    }
    let format: PromptFormat = a.format.parse().map_err(anyhow::Error::msg)?;
    if a.calib_prompts.is_some() && a.preset != Some(Preset::Paper) {
        anyhow::bail!("--calib-prompts is only used by --preset paper");
    }
    let mut select = a.select.config()?;
    let budgets = match a.preset {
        Some(Preset::Paper) => {
            select = paper_select(&select);
            vec![PAPER_KEEP]
        }
        _ => a.budgets.clone(),
    };
    let prompts = load_eval_items(&a.prompts, format)?;
    let calib = a.calib_prompts.as_deref().map(|p| load_eval_items(p, format)).transpose()?;
    let engine = a.model.load()?;
    let chat = !a.raw && engine.codec.has_chat();
    let render = |user: &str| engine.codec.chat.apply(user);
    let ready = |items: Vec<EvalItem>| -> Vec<EvalItem> {
        items.into_iter().map(|e| e.with_prefix_rendered(chat, &render)).collect()
    };
    let prompts = ready(prompts);
    let mut cfg = EvalConfig {
        budgets,
        continuation_tokens: a.tokens,
        answer_tokens: a.answer_tokens,
        select,
        prefill: PrefillOptions { window: select.window, ..Default::default() },
        chat: !a.raw,
        record_tokens: a.record_tokens || a.preset == Some(Preset::KvpressParity),
        record_kept: a.record_kept,
        ..Default::default()
    };
    let mut sensitivities = Vec::new();
    cfg.methods = match a.preset {
        Some(Preset::KvpressParity) => kvpress_parity_methods(select.window, select.kernel),
        Some(Preset::Paper) => {
            let calib = calib.map(ready).unwrap_or_else(|| prompts.clone());
            let bar = Bar::new("ablating layers", false);
            let ab = ablate_layers(&engine, &calib, &cfg, PAPER_KEEP, &mut |d, t| bar.update(d, t))?;
            let (methods, records) = paper_methods(&ab, PAPER_KEEP, a.alloc.mix, a.alloc.floor);
            sensitivities = records;
            methods
        }
        None => vec![
            Method::global("uniform", Strategy::Uniform),
            Method::global("pyramid", Strategy::Pyramid { beta: PYRAMID_BETA }),
            Method::global("depthkv", a.alloc.strategy("depthkv", &engine)?),
        ],
    };
    for v in &a.variants {
        cfg.methods.push(variant(v, &a.alloc, &engine)?);
    }
    if a.only_full {
        cfg.methods.clear();
        cfg.record_tokens = true;
    }
    let bar = Bar::new("evaluating", false);
    let mut report = evaluate(&engine, &prompts, &cfg, &mut |d, t| bar.update(d, t))?;
    report.sensitivities = sensitivities;
    print!("{}", markdown_table(&report));
    if let Some(path) = &a.json {
        report.save(path, true)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &a.plot {
        crate::eval::plot::plot_quality_vs_budget(&report, path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Parses `NAME=STRATEGY[:mix=M][:floor=F][:t=T]` into a method.
fn variant(spec: &str, base: &AllocArgs, engine: &crate::engine::Engine) -> anyhow::Result<Method> {
    let (name, rest) = spec.split_once('=').unwrap_or((spec, spec));
    let mut parts = rest.split(':');
    let strat = parts.next().unwrap_or_default();
    let mut alloc = base.clone();
    for kv in parts {
        let (k, v) =
            kv.split_once('=').ok_or_else(|| anyhow::anyhow!("variant `{spec}`: expected key=value, got `{kv}`"))?;
        let x: f64 = v.parse().map_err(|_| anyhow::anyhow!("variant `{spec}`: `{v}` is not a number"))?;
        match k {
            "mix" => alloc.mix = x,
            "floor" => alloc.floor = x,
            "t" => alloc.softmax_temperature = x,
            other => anyhow::bail!("variant `{spec}`: unknown setting `{other}` (mix, floor, t)"),
        }
    }
    Ok(Method::global(name, alloc.strategy(strat, engine)?))
}
