//! `depthkv eval`: full, uniform, pyramid and depthkv at several budgets.

use super::args::ModelArgs;
use super::progress::Bar;
use super::strategy::needs_profile;
use super::strategy::{AllocArgs, SelectArgs};
use super::values;
use crate::eval::precheck::{check_prompts, describe, PromptNeeds};
use crate::eval::prompts::load_prompts;
use crate::eval::report::markdown_table;
use crate::eval::runner::{evaluate, EvalConfig, Method};
use crate::profile::check_target;
use crate::prune::{Strategy, StrategyKind, PYRAMID_BETA};
use crate::userio::sanitize;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt set (JSONL); e.g. from `depthkv tasks gen`.
    #[arg(long)]
    pub prompts: PathBuf,
    /// Global budgets to test, comma-separated fractions in (0, 1].
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
}

/// Parses `NAME=STRATEGY[:mix=M][:floor=F][:t=T]` (or just `STRATEGY`).
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
    let mut v = VariantSpec { name: name.to_string(), kind, mix: None, floor: None, temperature: None };
    for kv in parts {
        let (k, x) = kv.split_once('=').ok_or_else(|| format!("`{spec}`: expected key=value, got `{kv}`"))?;
        let bad = |e: String| format!("`{spec}`: {k}: {e}");
        match k {
            "mix" => v.mix = Some(values::unit(x).map_err(bad)?),
            "floor" => v.floor = Some(values::floor(x).map_err(bad)?),
            "t" => v.temperature = Some(values::positive(x).map_err(bad)?),
            other => return Err(format!("`{spec}`: unknown setting `{other}` (mix, floor, t)")),
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
    let prompts = load_prompts(&a.prompts)?;
    let select = a.select.config();
    let mut kinds = vec![StrategyKind::DepthKv];
    kinds.extend(a.variants.iter().map(|v| v.kind));
    let profile = a.alloc.read_profile_for(&kinds)?;
    let mut methods = vec![
        Method { name: "uniform".into(), strategy: Strategy::Uniform },
        Method { name: "pyramid".into(), strategy: Strategy::Pyramid { beta: PYRAMID_BETA } },
        Method { name: "depthkv".into(), strategy: a.alloc.strategy(StrategyKind::DepthKv, profile.as_ref())? },
    ];
    for v in &a.variants {
        let mut alloc = a.alloc.clone();
        alloc.mix = v.mix.unwrap_or(alloc.mix);
        alloc.floor = v.floor.unwrap_or(alloc.floor);
        alloc.softmax_temperature = v.temperature.unwrap_or(alloc.softmax_temperature);
        methods.push(Method { name: v.name.clone(), strategy: alloc.strategy(v.kind, profile.as_ref())? });
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
    let needs =
        PromptNeeds { chat: !a.raw, budgets: &a.budgets, select: &select, extra_tokens: a.tokens.max(a.answer_tokens) };
    let problems = check_prompts(&engine, &prompts, &needs);
    if !problems.is_empty() {
        anyhow::bail!("{}", describe(&problems));
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
