//! `depthkv calibrate`: measure per-layer sensitivity and write a profile.

use super::args::ModelArgs;
use super::progress::Bar;
use super::strategy::{check_budget, AllocArgs, SelectArgs};
use crate::eval::prompts::{load_prompts, prompt_set_sha256};
use crate::profile::{self, CalibrationMeta, Profile};
use crate::prune::{kept_fractions, StrategyKind};
use crate::session::calibrate::{calibrate, CalibConfig};
use clap::Args;
use std::path::PathBuf;

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
    /// Fraction of tokens the ablated layer keeps (0.4 = prune 60%, as in the paper).
    #[arg(long, default_value_t = 0.4)]
    pub ablation_keep: f64,
    /// Greedy tokens scored when a prompt has no reference.
    #[arg(long, default_value_t = 32)]
    pub tokens: usize,
    /// Global budget whose per-layer fractions are stored in the profile.
    #[arg(long, default_value_t = 0.2)]
    pub budget: f64,
    /// Allocation rule for the stored fractions: depthkv, depthkv-softmax or depthkv-rank.
    #[arg(long, default_value = "depthkv")]
    pub strategy: String,
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
    check_budget(a.budget)?;
    if !(a.ablation_keep > 0.0 && a.ablation_keep < 1.0) {
        anyhow::bail!("--ablation-keep must be in (0, 1)");
    }
    let kind = crate::prune::parse_strategy_name(&a.strategy)?;
    if !matches!(kind, StrategyKind::DepthKv | StrategyKind::DepthKvSoftmax | StrategyKind::DepthKvRank) {
        anyhow::bail!("--strategy for calibrate must be depthkv, depthkv-softmax or depthkv-rank");
    }
    if a.out.exists() && !a.overwrite {
        anyhow::bail!("{} already exists; pass --overwrite to replace it", a.out.display());
    }
    let prompts = load_prompts(&a.prompts)?;
    let select = a.select.config()?;
    let engine = a.model.load()?;
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

    let mut p = Profile::new(profile::model::fingerprint(&engine)?, a.strategy.clone(), a.budget, vec![1.0; n_layers]);
    p.sensitivity = Some(res.sensitivity.clone());
    // Fractions for the chosen budget, on a nominal 4096-token prompt.
    let strategy = a.alloc.depthkv(kind, &p)?;
    let nominal = 4096;
    let budgets = crate::prune::apply::budgets_for(&strategy, a.budget, nominal, n_layers, &select)?;
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
