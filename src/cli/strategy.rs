//! Arguments that choose how tokens are selected and how the budget is split.

use super::values;
use crate::engine::Engine;
use crate::profile::{self, Profile};
use crate::prune::{
    DepthRule, HeadSplit, Scorer, SelectConfig, Strategy, StrategyKind, DEFAULT_KERNEL, DEFAULT_SINKS, DEFAULT_WINDOW,
    PYRAMID_BETA,
};
use anyhow::{bail, Context};
use clap::Args;
use std::path::PathBuf;

/// The calibrated profile shipped for the default model (see sample-profiles/).
pub const DEFAULT_PROFILE_JSON: &str = include_str!("../../sample-profiles/smollm2-135m-depthkv.json");

#[derive(Args, Debug, Clone)]
pub struct SelectArgs {
    /// Token scorer inside a layer.
    #[arg(long, value_enum, default_value_t = Scorer::SnapKv)]
    pub scorer: Scorer,
    /// Attention sinks always kept (the first tokens).
    #[arg(long, default_value_t = DEFAULT_SINKS, value_parser = values::sinks)]
    pub sinks: usize,
    /// Observation window: the last tokens whose attention scores the rest; always kept.
    #[arg(long, default_value_t = DEFAULT_WINDOW, value_parser = values::tokens)]
    pub window: usize,
    /// SnapKV pooling kernel (1 = no pooling).
    #[arg(long, default_value_t = DEFAULT_KERNEL, value_parser = values::kernel)]
    pub kernel: usize,
    /// How a layer's budget is shared among its KV heads (`ada`: by score, AdaKV-style).
    #[arg(long, value_enum, default_value_t = values::HeadsArg::Even)]
    pub heads: values::HeadsArg,
    /// With `--heads ada`: the share of its even budget every head keeps, in [0, 1].
    #[arg(long, default_value_t = crate::prune::ADA_SAFEGUARD, value_parser = values::unit, allow_negative_numbers = true)]
    pub safeguard: f64,
}

impl SelectArgs {
    pub fn config(&self) -> SelectConfig {
        SelectConfig {
            scorer: self.scorer,
            sinks: self.sinks,
            window: self.window,
            kernel: self.kernel,
            heads: match self.heads {
                values::HeadsArg::Even => HeadSplit::Even,
                values::HeadsArg::Ada => HeadSplit::Ada { safeguard: self.safeguard },
            },
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct AllocArgs {
    /// DepthKV: weight of the uniform split blended into the sensitivity split, in [0, 1].
    #[arg(long, default_value_t = crate::prune::DEPTHKV_MIX, value_parser = values::unit, allow_negative_numbers = true)]
    pub mix: f64,
    /// DepthKV: smallest kept fraction any layer gets, in [0, 1).
    #[arg(long, default_value_t = crate::prune::DEPTHKV_FLOOR, value_parser = values::floor, allow_negative_numbers = true)]
    pub floor: f64,
    /// DepthKV softmax temperature (strategy depthkv-softmax), above 0.
    #[arg(long, default_value_t = 1.0, value_parser = values::positive, allow_negative_numbers = true)]
    pub softmax_temperature: f64,
    /// Profile JSON: its sensitivities drive `depthkv`, its fractions `manual`.
    /// Default: the shipped profile of the default model.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Use a profile made for another model anyway.
    #[arg(long)]
    pub force: bool,
}

/// Reads a profile file, or the shipped sample profile when `path` is None.
pub fn read_profile(path: Option<&std::path::Path>) -> anyhow::Result<Profile> {
    Ok(match path {
        Some(path) => profile::load(path)?,
        None => profile::io::parse(DEFAULT_PROFILE_JSON, std::path::Path::new("<built-in sample profile>"))?,
    })
}

/// Whether a strategy takes its numbers from a profile.
pub fn needs_profile(kind: StrategyKind) -> bool {
    !matches!(kind, StrategyKind::Uniform | StrategyKind::Pyramid | StrategyKind::Adaptive)
}

impl AllocArgs {
    /// Reads and validates `--profile` (or the shipped one) when one of
    /// `kinds` needs it; runs before any model is loaded.
    pub fn read_profile_for(&self, kinds: &[StrategyKind]) -> anyhow::Result<Option<Profile>> {
        if !kinds.iter().any(|&k| needs_profile(k)) {
            return Ok(None);
        }
        read_profile(self.profile.as_deref()).map(Some)
    }

    /// Checks that a profile fits the loaded model; `--force` turns a mismatch into a warning.
    pub fn check_profile(&self, p: &Profile, engine: &Engine) -> anyhow::Result<()> {
        let ours = profile::model::fingerprint(engine).context("hashing the model weights")?;
        if let Err(m) = p.model.check_compatible(&ours) {
            if !self.force {
                bail!("{m}; pass --force to use this profile anyway");
            }
            eprintln!("warning: {m} (continuing because of --force)");
        }
        Ok(())
    }

    /// The profile to use once the model is loaded. A profile the user named
    /// must fit (or `--force`); the built-in one (made for the default model)
    /// is quietly dropped on another model, so commands that merely include
    /// DepthKV among their methods run without it.
    pub fn fitting_profile(&self, p: Option<Profile>, engine: &Engine) -> anyhow::Result<Option<Profile>> {
        let Some(p) = p else { return Ok(None) };
        if self.profile.is_none() && !self.force {
            let ours = profile::model::fingerprint(engine).context("hashing the model weights")?;
            if let Err(m) = p.model.check_compatible(&ours) {
                eprintln!(
                    "note: depthkv skipped: the built-in profile is for the default model ({m}); \
                     calibrate this model with `depthkv calibrate` and pass --profile"
                );
                return Ok(None);
            }
            return Ok(Some(p));
        }
        self.check_profile(&p, engine)?;
        Ok(Some(p))
    }

    /// The DepthKV strategy of `kind` from a profile's sensitivities.
    pub fn depthkv(&self, kind: StrategyKind, p: &Profile) -> anyhow::Result<Strategy> {
        let sensitivity: Vec<f64> = match &p.sensitivity {
            Some(s) => s.iter().map(|x| x.mean).collect(),
            None => bail!("the profile has no sensitivities; use --strategy manual to apply its fractions"),
        };
        let rule = match kind {
            StrategyKind::DepthKvSoftmax => DepthRule::Softmax { temperature: self.softmax_temperature },
            StrategyKind::DepthKvRank => DepthRule::Rank,
            _ => DepthRule::Proportional,
        };
        Ok(Strategy::DepthKv { sensitivity, rule, mix: self.mix, floor: self.floor })
    }

    /// The strategy of `kind`; `profile` is what [`Self::read_profile_for`] returned.
    pub fn strategy(&self, kind: StrategyKind, profile: Option<&Profile>) -> anyhow::Result<Strategy> {
        let from_profile = || profile.context("internal: this strategy needs a profile that was not read");
        Ok(match kind {
            StrategyKind::Uniform => Strategy::Uniform,
            StrategyKind::Pyramid => Strategy::Pyramid { beta: PYRAMID_BETA },
            StrategyKind::Manual => Strategy::Manual { fractions: from_profile()?.kept_fractions.clone() },
            StrategyKind::Adaptive => Strategy::Adaptive { weights: None, mix: self.mix },
            StrategyKind::AdaptiveDepthKv => {
                let Some(s) = &from_profile()?.sensitivity else {
                    bail!("adaptive-depthkv weights layers by a profile's sensitivities; this profile has none")
                };
                Strategy::Adaptive { weights: Some(s.iter().map(|x| x.mean).collect()), mix: self.mix }
            }
            _ => self.depthkv(kind, from_profile()?)?,
        })
    }
}
