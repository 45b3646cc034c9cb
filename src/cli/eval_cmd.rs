//! `depthkv eval`: full, uniform, pyramid and depthkv at several budgets.

use super::args::ModelArgs;
use super::progress::Bar;
use super::strategy::{check_budget, AllocArgs, SelectArgs};
use crate::eval::prompts::load_prompts;
use crate::eval::report::markdown_table;
use crate::eval::runner::{evaluate, EvalConfig, Method};
use crate::prune::{Strategy, PYRAMID_BETA};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt set (JSONL); e.g. from `depthkv tasks gen`.
    #[arg(long)]
    pub prompts: PathBuf,
    /// Global budgets to test, comma-separated fractions.
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
    /// Tokens generated to check a prompt's answers.
    #[arg(long, default_value_t = 24)]
    pub answer_tokens: usize,
    /// Send prompts without the chat template unless a line says `"chat": true`.
    #[arg(long)]
    pub raw: bool,
    /// Write the report as JSON here.
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
    let prompts = load_prompts(&a.prompts)?;
    let select = a.select.config()?;
    let engine = a.model.load()?;
    let mut methods = vec![
        Method { name: "uniform".into(), strategy: Strategy::Uniform },
        Method { name: "pyramid".into(), strategy: Strategy::Pyramid { beta: PYRAMID_BETA } },
        Method { name: "depthkv".into(), strategy: a.alloc.strategy("depthkv", &engine)? },
    ];
    for v in &a.variants {
        methods.push(variant(v, &a.alloc, &engine)?);
    }
    let cfg = EvalConfig {
        budgets: a.budgets.clone(),
        methods,
        continuation_tokens: a.tokens,
        answer_tokens: a.answer_tokens,
        select,
        prefill: select.prefill_options(),
        chat: !a.raw,
        ..Default::default()
    };
    let bar = Bar::new("evaluating", false);
    let report = evaluate(&engine, &prompts, &cfg, &mut |d, t| bar.update(d, t))?;
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
    Ok(Method { name: name.to_string(), strategy: alloc.strategy(strat, engine)? })
}
