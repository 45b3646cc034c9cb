//! `depthkv profile show|export`.

use super::strategy::read_profile;
use crate::profile;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ProfileCmd {
    /// Print a profile: model, budget, per-layer fractions and sensitivities.
    Show(ShowArgs),
    /// Export a profile: `--format kvpress` writes PerLayerCompressionPress
    /// compression_ratios (1 − kept fraction per layer); `--format json` copies it.
    Export(ExportArgs),
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Profile file; omit for the built-in sample profile of the default model.
    pub path: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Profile file; omit for the built-in sample profile.
    pub path: Option<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "kvpress")]
    pub format: String,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(cmd: ProfileCmd) -> anyhow::Result<()> {
    match cmd {
        ProfileCmd::Show(a) => {
            let p = read_profile(a.path.as_deref())?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&p)?);
                return Ok(());
            }
            println!(
                "model     {} ({}, {} layers, {} KV heads × {})",
                p.model.name, p.model.architecture, p.model.n_layers, p.model.n_kv_heads, p.model.head_dim
            );
            println!("strategy  {}   global budget {}   created {}", p.strategy, p.global_budget, p.created);
            if let Some(c) = &p.calibration {
                println!(
                    "calibrated on {} prompts ({}), ablation keep {}, scorer {}, p = {:.4}, {:.1}s",
                    c.n_prompts, c.metric, c.ablation_keep, c.scorer, c.p_value, c.seconds
                );
            }
            let max = p.sensitivity.as_ref().map(|s| s.iter().map(|x| x.mean).fold(0.0, f64::max)).unwrap_or(0.0);
            println!("layer  kept   sensitivity");
            for (i, f) in p.kept_fractions.iter().enumerate() {
                let sens = p.sensitivity.as_ref().map(|s| s[i]);
                let bar =
                    sens.map(|s| "█".repeat(((s.mean / max.max(1e-12)) * 30.0).round() as usize)).unwrap_or_default();
                let num = sens.map(|s| format!("{:.5}", s.mean)).unwrap_or_else(|| "-".into());
                println!("{i:>5}  {f:.3}  {num:>9} {bar}");
            }
            if let Some(n) = &p.notes {
                println!("notes     {n}");
            }
        }
        ProfileCmd::Export(a) => {
            let p = read_profile(a.path.as_deref())?;
            match a.format.as_str() {
                "kvpress" => profile::save_kvpress(&p, &a.out, a.force)?,
                "json" => profile::save(&p, &a.out, a.force)?,
                other => anyhow::bail!("unknown export format `{other}`: use kvpress or json"),
            }
            println!("wrote {}", a.out.display());
        }
    }
    Ok(())
}
