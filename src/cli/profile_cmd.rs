//! `depthkv profile show|export`.

use super::strategy::{read_profile, DEFAULT_PROFILE_JSON};
use super::values::ExportFormat;
use crate::profile::{self, check_target, io::write_atomic};
use crate::userio::sanitize;
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
    #[arg(long, value_enum, default_value_t = ExportFormat::Kvpress)]
    pub format: ExportFormat,
    /// Replace --out if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(cmd: ProfileCmd) -> anyhow::Result<()> {
    match cmd {
        ProfileCmd::Show(a) => show(&read_profile(a.path.as_deref())?, a.json)?,
        ProfileCmd::Export(a) => {
            check_target(&a.out, a.overwrite)?;
            let (text, origin) = match &a.path {
                Some(path) => (profile::io::read_text(path)?, path.clone()),
                None => (DEFAULT_PROFILE_JSON.to_string(), PathBuf::from("<built-in sample profile>")),
            };
            let p = profile::io::parse(&text, &origin)?;
            match a.format {
                ExportFormat::Kvpress => profile::save_kvpress(&p, &a.out, a.overwrite)?,
                // A copy is the validated file byte for byte: re-serializing
                // could change the last digit of a float.
                ExportFormat::Json => write_atomic(&a.out, text.as_bytes(), a.overwrite)?,
            }
            println!("wrote {}", a.out.display());
        }
    }
    Ok(())
}

/// Prints a profile for people. Every string from the file is sanitized: a
/// profile must not be able to send escape sequences to the terminal.
fn show(p: &profile::Profile, json: bool) -> anyhow::Result<()> {
    if json {
        // serde_json escapes control characters in strings, so this is safe as is.
        println!("{}", serde_json::to_string_pretty(p)?);
        return Ok(());
    }
    let m = &p.model;
    println!(
        "model     {} ({}, {} layers, {} KV heads × {})",
        sanitize(&m.name),
        sanitize(&m.architecture),
        m.n_layers,
        m.n_kv_heads,
        m.head_dim
    );
    println!("strategy  {}   global budget {}   created {}", p.strategy, p.global_budget, sanitize(&p.created));
    if let Some(c) = &p.calibration {
        println!(
            "calibrated on {} prompts ({}), ablation keep {}, scorer {}, p = {:.4}, {:.1}s",
            c.n_prompts,
            sanitize(&c.metric),
            c.ablation_keep,
            sanitize(&c.scorer),
            c.p_value,
            c.seconds
        );
    }
    let max = p.sensitivity.as_ref().map(|s| s.iter().map(|x| x.mean).fold(0.0, f64::max)).unwrap_or(0.0);
    println!("layer  kept   sensitivity");
    for (i, f) in p.kept_fractions.iter().enumerate() {
        let sens = p.sensitivity.as_ref().and_then(|s| s.get(i));
        let bar = sens
            .map(|s| "█".repeat(((s.mean / max.max(1e-12)).clamp(0.0, 1.0) * 30.0).round() as usize))
            .unwrap_or_default();
        let num = sens.map(|s| format!("{:.5}", s.mean)).unwrap_or_else(|| "-".into());
        println!("{i:>5}  {f:.3}  {num:>9} {bar}");
    }
    if let Some(n) = &p.notes {
        println!("notes     {}", sanitize(n));
    }
    Ok(())
}
