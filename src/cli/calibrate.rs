//! `depthkv calibrate`: measure per-layer sensitivity and write a profile.

use super::args::ModelArgs;
use super::progress::Bar;
use super::strategy::{AllocArgs, SelectArgs};
use super::values;
use crate::eval::precheck::{check_prompts, describe, PromptNeeds};
use crate::eval::prompts::{load_prompts, prompt_set_sha256};
use crate::profile::{self, check_target, CalibrationMeta, Profile};
use crate::prune::{kept_fractions, StrategyKind};
use crate::session::calibrate::{calibrate, CalibConfig, DEFAULT_ABLATION_KEEP};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use std::path::PathBuf;

/// The strategies a calibration can store: the ones built on sensitivities.
const CALIB_KINDS: [StrategyKind; 3] = [StrategyKind::DepthKv, StrategyKind::DepthKvSoftmax, StrategyKind::DepthKvRank];

fn depthkv_kind() -> impl TypedValueParser<Value = StrategyKind> {
    PossibleValuesParser::new(CALIB_KINDS.map(StrategyKind::name))
        .map(|name| CALIB_KINDS.into_iter().find(|k| k.name() == name).unwrap_or(StrategyKind::DepthKv))
}

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Calibration prompts (JSONL: id, prompt, optional reference/answers/chat).
    #[arg(long)]
    pub prompts: PathBuf,
    /// Where to write the profile.
    #[arg(long)]
    pub out: PathBuf,
    /// Fraction of tokens the ablated layer keeps, in (0, 1) (0.4 = prune 60%, as in the paper).
    #[arg(long, default_value_t = DEFAULT_ABLATION_KEEP, value_parser = values::open_unit, allow_negative_numbers = true)]
    pub ablation_keep: f64,
    /// Greedy tokens scored when a prompt has no reference.
    #[arg(long, default_value_t = 32, value_parser = values::tokens)]
    pub tokens: usize,
    /// Global budget whose per-layer fractions are stored in the profile, in (0, 1].
    #[arg(long, default_value_t = 0.2, value_parser = values::budget, allow_negative_numbers = true)]
    pub budget: f64,
    /// Allocation rule for the stored fractions.
    #[arg(long, default_value = "depthkv", value_parser = depthkv_kind())]
    pub strategy: StrategyKind,
    #[command(flatten)]
    pub alloc: AllocArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Score the full cache's greedy continuation even where a prompt has a reference.
    #[arg(long)]
    pub ignore_reference: bool,
    /// Send prompts without the chat template unless a line says `"chat": true`.
    #[arg(long)]
    pub raw: bool,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: CalibrateArgs) -> anyhow::Result<()> {
    let kind = a.strategy;
    check_target(&a.out, a.overwrite)?;
    let prompts = load_prompts(&a.prompts)?;
    let select = a.select.config();
    let engine = a.model.load()?;
    let needs = PromptNeeds { chat: !a.raw, budgets: &[a.ablation_keep], select: &select, extra_tokens: a.tokens };
    let problems = check_prompts(&engine, &prompts, &needs);
    if !problems.is_empty() {
        anyhow::bail!("{}", describe(&problems));
    }
    let cfg = CalibConfig {
        ablation_keep: a.ablation_keep,
        continuation_tokens: a.tokens,
        use_reference: !a.ignore_reference,
        select,
        prefill: select.prefill_options(),
        ..Default::default()
    };
    let bar = Bar::new("calibrating", a.json);
    let specs: Vec<_> = prompts.iter().map(|p| p.spec(!a.raw)).collect();
    let res = calibrate(&engine, &specs, &cfg, &mut |d, t| bar.update(d, t))?;
    let n_layers = engine.config().n_layers;

    let mut p = Profile::new(profile::model::fingerprint(&engine)?, kind, a.budget, vec![1.0; n_layers]);
    p.sensitivity = Some(res.sensitivity.clone());
    // Fractions for the chosen budget, on a nominal 4096-token prompt.
    let strategy = a.alloc.depthkv(kind, &p)?;
    let nominal = 4096;
    // Sliding-window layers hold at most their window there too.
    let ceilings = engine.config().kv_ceilings(nominal);
    let budgets = crate::prune::apply::budgets_within(&strategy, a.budget, nominal, &ceilings, &select)?;
    p.kept_fractions = kept_fractions(&budgets, nominal);
    p.calibration = Some(CalibrationMeta {
        prompt_set_sha256: prompt_set_sha256(&prompts),
        n_prompts: prompts.len(),
        metric: "kl".into(),
        ablation_keep: a.ablation_keep,
        continuation_tokens: a.tokens,
        scorer: select.scorer.to_string(),
        p_value: res.p_value,
        permutations: cfg.permutations,
        bootstrap: cfg.bootstrap,
        seconds: res.seconds,
    });
    p.notes = Some(format!(
        "mix {} floor {}; made by: depthkv {}",
        a.alloc.mix,
        a.alloc.floor,
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    ));
    profile::save(&p, &a.out, a.overwrite)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        println!("layer  sensitivity (mean KL)  95% CI");
        for (i, s) in res.sensitivity.iter().enumerate() {
            println!("{i:>5}  {:>10.5}  [{:.5}, {:.5}]", s.mean, s.ci_low, s.ci_high);
        }
        println!(
            "p(all layers equally sensitive) = {:.4}; {:.1}s; wrote {}",
            res.p_value,
            res.seconds,
            a.out.display()
        );
    }
    Ok(())
}
