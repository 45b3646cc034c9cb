//! `depthkv eval`: full, uniform, pyramid and depthkv at several budgets.

use super::args::ModelArgs;
use super::progress::Bar;
use super::strategy::needs_profile;
use super::strategy::{AllocArgs, SelectArgs};
use super::values;
use crate::engine::KvPrecision;
use crate::eval::formats::{load_eval_items, EvalItem, PromptFormat};
use crate::eval::methods::{kvpress_parity_methods, Method};
use crate::eval::paper::{ablate_layers, paper_methods, paper_select, PAPER_KEEP};
use crate::eval::precheck::{check_prompts, describe, PromptNeeds};
use crate::eval::report::markdown_table;
use crate::eval::runner::{evaluate, EvalConfig};
use crate::profile::check_target;
use crate::prune::{HeadSplit, Strategy, StrategyKind, ADA_SAFEGUARD, PYRAMID_BETA};
use crate::userio::sanitize;
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
    /// Prompt set (JSONL); e.g. from `depthkv tasks gen`.
    #[arg(long)]
    pub prompts: PathBuf,
    /// Layout of --prompts: auto, native, longbench, ruler or kvpress.
    #[arg(long, default_value = "auto", value_parser = |s: &str| s.parse::<PromptFormat>())]
    pub format: PromptFormat,
    /// Run a fixed protocol instead of the default methods.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Paper preset: prompts for the one-layer ablations (default: --prompts, in-sample).
    #[arg(long)]
    pub calib_prompts: Option<PathBuf>,
    /// Global budgets to test, comma-separated fractions in (0, 1] (paper preset: 0.4).
    /// With --memory, fractions of the full cache's bytes at native precision.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.2,0.4", value_parser = values::budget, allow_negative_numbers = true)]
    pub budgets: Vec<f64>,
    /// Extra allocation variants to compare, as NAME=STRATEGY[:mix=M][:floor=F][:t=T]
    /// (e.g. `rank=depthkv-rank`, `m2=depthkv:mix=0.2`). Repeatable or comma-separated.
    #[arg(long = "variant", value_delimiter = ',', value_parser = parse_variant)]
    pub variants: Vec<VariantSpec>,
    #[command(flatten)]
    pub alloc: AllocArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Greedy tokens scored when a prompt has no reference.
    #[arg(long, default_value_t = 32, value_parser = values::tokens)]
    pub tokens: usize,
    /// Tokens generated to check a prompt's answers.
    #[arg(long, default_value_t = 24, value_parser = values::tokens)]
    pub answer_tokens: usize,
    /// Send prompts without the chat template unless a line says `"chat": true`.
    #[arg(long)]
    pub raw: bool,
    /// Read --budgets as memory: a method storing int8/int4 (`kv=` in --variant)
    /// keeps as many more tokens as the same bytes hold.
    #[arg(long)]
    pub memory: bool,
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
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw quality vs budget to a .png or .svg file.
    #[arg(long, value_parser = values::plot_path)]
    pub plot: Option<PathBuf>,
    /// Replace --json and --plot files that already exist.
    #[arg(long)]
    pub overwrite: bool,
}

/// One `--variant`: a named strategy with its own DepthKV settings.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantSpec {
    pub name: String,
    pub kind: StrategyKind,
    pub mix: Option<f64>,
    pub floor: Option<f64>,
    pub temperature: Option<f64>,
    /// `heads=ada|even`: how a layer's budget is shared among its KV heads.
    pub heads: Option<HeadSplit>,
    /// `kv=native|int8|int4`: how kept tokens are stored.
    pub kv: Option<KvPrecision>,
}

/// Parses `NAME=STRATEGY[:mix=M][:floor=F][:t=T][:heads=ada][:kv=int4]` (or just `STRATEGY`).
fn parse_variant(spec: &str) -> Result<VariantSpec, String> {
    let mut parts = spec.split(':');
    let head = parts.next().unwrap_or_default();
    let (name, strategy) = head.split_once('=').unwrap_or((head, head));
    if name.trim().is_empty() {
        return Err(format!("`{spec}`: the variant needs a name (NAME=STRATEGY)"));
    }
    let kind = StrategyKind::from_str(strategy, true).map_err(|_| {
        let valid: Vec<&str> = StrategyKind::ALL.iter().map(|k| k.name()).collect();
        format!("`{spec}`: unknown strategy `{strategy}` (valid: {})", valid.join(", "))
    })?;
    let mut v =
        VariantSpec { name: name.to_string(), kind, mix: None, floor: None, temperature: None, heads: None, kv: None };
    for kv in parts {
        let (k, x) = kv.split_once('=').ok_or_else(|| format!("`{spec}`: expected key=value, got `{kv}`"))?;
        let bad = |e: String| format!("`{spec}`: {k}: {e}");
        match k {
            "mix" => v.mix = Some(values::unit(x).map_err(bad)?),
            "floor" => v.floor = Some(values::floor(x).map_err(bad)?),
            "t" => v.temperature = Some(values::positive(x).map_err(bad)?),
            "heads" => {
                v.heads = Some(match x {
                    "ada" => HeadSplit::Ada { safeguard: ADA_SAFEGUARD },
                    "even" => HeadSplit::Even,
                    _ => return Err(bad("expected ada or even".into())),
                })
            }
            "kv" => v.kv = Some(x.parse::<KvPrecision>().map_err(bad)?),
            other => return Err(format!("`{spec}`: unknown setting `{other}` (mix, floor, t, heads, kv)")),
        }
    }
    Ok(v)
}

/// Names every method must not reuse: the built-in rows of the report.
const BUILT_IN_METHODS: [&str; 4] = ["full", "uniform", "pyramid", "depthkv"];

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    if a.budgets.is_empty() {
        anyhow::bail!("give at least one budget");
    }
    let mut names: Vec<&str> = BUILT_IN_METHODS.to_vec();
    for v in &a.variants {
        if names.contains(&v.name.as_str()) {
            anyhow::bail!("--variant name `{}` is used twice (or is a built-in method); rename it", v.name);
        }
        names.push(&v.name);
    }
    for path in [&a.json, &a.plot].into_iter().flatten() {
        check_target(path, a.overwrite)?;
    }
    if a.calib_prompts.is_some() && a.preset != Some(Preset::Paper) {
        anyhow::bail!("--calib-prompts is only used by --preset paper");
    }
    let prompts = load_eval_items(&a.prompts, a.format)?;
    let calib = a.calib_prompts.as_deref().map(|p| load_eval_items(p, a.format)).transpose()?;
    let mut select = a.select.config();
    let budgets = match a.preset {
        Some(Preset::Paper) => {
            select = paper_select(&select);
            vec![PAPER_KEEP]
        }
        _ => a.budgets.clone(),
    };
    let mut kinds = vec![StrategyKind::DepthKv];
    kinds.extend(a.variants.iter().map(|v| v.kind));
    let profile = if a.preset.is_none() { a.alloc.read_profile_for(&kinds)? } else { None };
    let mut methods = Vec::new();
    if a.preset.is_none() {
        methods.push(Method::global("uniform", Strategy::Uniform));
        methods.push(Method::global("pyramid", Strategy::Pyramid { beta: PYRAMID_BETA }));
        methods.push(Method::global("depthkv", a.alloc.strategy(StrategyKind::DepthKv, profile.as_ref())?));
    }
    for v in &a.variants {
        let mut alloc = a.alloc.clone();
        alloc.mix = v.mix.unwrap_or(alloc.mix);
        alloc.floor = v.floor.unwrap_or(alloc.floor);
        alloc.softmax_temperature = v.temperature.unwrap_or(alloc.softmax_temperature);
        let mut m = Method::global(&v.name, alloc.strategy(v.kind, profile.as_ref())?);
        m.select = v.heads.map(|heads| crate::prune::SelectConfig { heads, ..select });
        m.precision = v.kv.unwrap_or_default();
        methods.push(m);
    }

    let engine = a.model.load()?;
    let had_profile = profile.is_some();
    if had_profile && a.alloc.fitting_profile(profile, &engine)?.is_none() {
        // The built-in profile does not fit this model: DepthKV is left out;
        // a variant that itself needs a profile cannot run without one.
        if let Some(v) = a.variants.iter().find(|v| needs_profile(v.kind)) {
            anyhow::bail!("--variant {} needs a profile made for this model: pass --profile", v.name);
        }
        methods.retain(|m| m.name != "depthkv");
    }
    if a.memory {
        let c = engine.config();
        let native = KvPrecision::Native.bytes_per_slot(c.n_kv_heads, c.head_dim, engine.model.dtype());
        for m in &mut methods {
            m.memory_scale =
                native as f64 / m.precision.bytes_per_slot(c.n_kv_heads, c.head_dim, engine.model.dtype()) as f64;
        }
    }
    let chat = !a.raw && engine.codec.has_chat();
    let render = |user: &str| engine.codec.chat.apply(user);
    let ready = |items: Vec<EvalItem>| -> Vec<EvalItem> {
        items.into_iter().map(|e| e.with_prefix_rendered(chat, &render)).collect()
    };
    let prompts = ready(prompts);
    let items: Vec<_> = prompts.iter().map(|e| e.item.clone()).collect();
    let needs =
        PromptNeeds { chat: !a.raw, budgets: &budgets, select: &select, extra_tokens: a.tokens.max(a.answer_tokens) };
    let problems = check_prompts(&engine, &items, &needs);
    if !problems.is_empty() {
        anyhow::bail!("{}", describe(&problems));
    }
    let mut cfg = EvalConfig {
        budgets,
        methods,
        continuation_tokens: a.tokens,
        answer_tokens: a.answer_tokens,
        select,
        prefill: select.prefill_options(),
        chat: !a.raw,
        record_tokens: a.record_tokens || a.preset == Some(Preset::KvpressParity),
        record_kept: a.record_kept,
        ..Default::default()
    };
    let mut sensitivities = Vec::new();
    match a.preset {
        Some(Preset::KvpressParity) => cfg.methods.extend(kvpress_parity_methods(select.window, select.kernel)),
        Some(Preset::Paper) => {
            let calib = calib.map(ready).unwrap_or_else(|| prompts.clone());
            let bar = Bar::new("ablating layers", false);
            let ab = ablate_layers(&engine, &calib, &cfg, PAPER_KEEP, &mut |d, t| bar.update(d, t))?;
            let (paper, records) = paper_methods(&ab, PAPER_KEEP, a.alloc.mix, a.alloc.floor);
            sensitivities = records;
            cfg.methods.splice(0..0, paper);
        }
        None => {}
    }
    if a.only_full {
        cfg.methods.clear();
        cfg.record_tokens = true;
    }
    let bar = Bar::new("evaluating", false);
    let mut report = evaluate(&engine, &prompts, &cfg, &mut |d, t| bar.update(d, t))?;
    report.sensitivities = sensitivities;
    print!("{}", markdown_table(&report));
    for f in &report.failed_prompts {
        eprintln!("warning: prompt {} failed and is left out: {}", sanitize(&f.id), sanitize(&f.error));
    }
    if let Some(path) = &a.json {
        report.save(path, a.overwrite)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &a.plot {
        crate::eval::plot::plot_quality_vs_budget(&report, path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_specs_are_checked_while_parsing() {
        let v = parse_variant("m2=depthkv:mix=0.2:t=2").unwrap();
        assert_eq!(
            (v.name.as_str(), v.kind, v.mix, v.temperature),
            ("m2", StrategyKind::DepthKv, Some(0.2), Some(2.0))
        );
        assert_eq!(parse_variant("depthkv-rank").unwrap().kind, StrategyKind::DepthKvRank);
        assert!(parse_variant("x=bogus").unwrap_err().contains("unknown strategy `bogus`"));
        assert!(parse_variant("x=depthkv:mix=2").unwrap_err().contains("outside the valid range [0, 1]"));
        assert!(parse_variant("x=depthkv:floor=1").unwrap_err().contains("[0, 1)"));
        assert!(parse_variant("x=depthkv:t=0").unwrap_err().contains("(0, ∞]"));
        assert!(parse_variant("x=depthkv:zz=1").unwrap_err().contains("unknown setting `zz`"));
        assert!(parse_variant("=depthkv").unwrap_err().contains("needs a name"));
    }
}
