//! Arguments that choose how tokens are selected and how the budget is split.

use crate::engine::Engine;
use crate::profile::{self, Profile};
use crate::prune::{parse_strategy_name, DepthRule, Scorer, SelectConfig, Strategy, StrategyKind, PYRAMID_BETA};
use anyhow::{bail, Context};
use clap::Args;
use std::path::PathBuf;

/// The calibrated profile shipped for the default model (see sample-profiles/).
pub const DEFAULT_PROFILE_JSON: &str = include_str!("../../sample-profiles/smollm2-135m-depthkv.json");

#[derive(Args, Debug, Clone)]
pub struct SelectArgs {
    /// Token scorer inside a layer: snapkv, h2o, streaming or keynorm.
    #[arg(long, default_value = "snapkv")]
    pub scorer: String,
    /// Attention sinks always kept (the first tokens).
    #[arg(long, default_value_t = 4)]
    pub sinks: usize,
    /// Observation window: the last tokens whose attention scores the rest; always kept.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// SnapKV pooling kernel.
    #[arg(long, default_value_t = 7)]
    pub kernel: usize,
}

impl SelectArgs {
    pub fn config(&self) -> anyhow::Result<SelectConfig> {
        let scorer: Scorer = self.scorer.parse()?;
        if self.window == 0 {
            bail!("--window must be at least 1");
        }
        Ok(SelectConfig {
            scorer,
            sinks: self.sinks,
            window: self.window,
            kernel: self.kernel.max(1),
            heads: Default::default(),
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct AllocArgs {
    /// DepthKV: weight of the uniform split blended into the sensitivity split (0..1).
    #[arg(long, default_value_t = crate::prune::DEPTHKV_MIX)]
    pub mix: f64,
    /// DepthKV: smallest kept fraction any layer gets.
    #[arg(long, default_value_t = crate::prune::DEPTHKV_FLOOR)]
    pub floor: f64,
    /// DepthKV softmax temperature (strategy depthkv-softmax).
    #[arg(long, default_value_t = 1.0)]
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

/// Loads `--profile` (or the shipped one) and checks it fits the engine's model.
pub fn load_profile(path: Option<&PathBuf>, engine: &Engine, force: bool) -> anyhow::Result<Profile> {
    let p = read_profile(path.map(PathBuf::as_path))?;
    let ours = profile::model::fingerprint(engine).context("hashing the model weights")?;
    if let Err(m) = p.model.check_compatible(&ours) {
        if !force {
            bail!("{m}; pass --force to use this profile anyway");
        }
        eprintln!("warning: {m} (continuing because of --force)");
    }
    Ok(p)
}

impl AllocArgs {
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

    /// Resolves a strategy name; profile-based ones load `--profile`.
    pub fn strategy(&self, name: &str, engine: &Engine) -> anyhow::Result<Strategy> {
        let kind = parse_strategy_name(name)?;
        Ok(match kind {
            StrategyKind::Uniform => Strategy::Uniform,
            StrategyKind::Pyramid => Strategy::Pyramid { beta: PYRAMID_BETA },
            StrategyKind::Manual => {
                let p = load_profile(self.profile.as_ref(), engine, self.force)?;
                Strategy::Manual { fractions: p.kept_fractions }
            }
            StrategyKind::Adaptive => Strategy::Adaptive { weights: None, mix: self.mix },
            StrategyKind::AdaptiveDepthKv => {
                let p = load_profile(self.profile.as_ref(), engine, self.force)?;
                let Some(s) = &p.sensitivity else {
                    bail!("adaptive-depthkv weights layers by a profile's sensitivities; this profile has none")
                };
                Strategy::Adaptive { weights: Some(s.iter().map(|x| x.mean).collect()), mix: self.mix }
            }
            _ => self.depthkv(kind, &load_profile(self.profile.as_ref(), engine, self.force)?)?,
        })
    }
}

/// Checks a global budget fraction.
pub fn check_budget(b: f64) -> anyhow::Result<f64> {
    if !(b > 0.0 && b <= 1.0) {
        bail!("budget {b} is out of range: give a fraction in (0, 1], e.g. 0.2");
    }
    Ok(b)
}
