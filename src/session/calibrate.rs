//! Per-layer sensitivity: prune one layer alone, measure the damage.
//!
//! For each prompt the prefill runs once. For each layer l, only layer l is
//! pruned (to `ablation_keep` of its tokens, by the configured scorer) while
//! every other layer keeps its full cache; the continuation is teacher-forced
//! and compared with the full cache (KL per token, and the change in NLL).

use crate::engine::error::{EngineError, Result};
use crate::engine::{Engine, PrefillOptions};
use crate::profile::LayerSensitivity;
use crate::prune::{apply, SelectConfig};
use crate::session::scoring::{self, Continuation, PromptSpec};
use crate::stats;

/// Fraction of tokens the ablated layer keeps unless told otherwise (0.4 =
/// the paper's 60% pruning).
pub const DEFAULT_ABLATION_KEEP: f64 = 0.4;

#[derive(Debug, Clone)]
pub struct CalibConfig {
    /// Fraction of tokens the ablated layer keeps (0.4 = the paper's 60% pruning).
    pub ablation_keep: f64,
    /// Greedy tokens scored when a prompt has no reference (or references are ignored).
    pub continuation_tokens: usize,
    /// Score a prompt's `reference` text when it has one.
    pub use_reference: bool,
    pub select: SelectConfig,
    pub prefill: PrefillOptions,
    pub bootstrap: usize,
    pub permutations: usize,
    pub seed: u64,
}

impl Default for CalibConfig {
    fn default() -> Self {
        Self {
            ablation_keep: DEFAULT_ABLATION_KEEP,
            continuation_tokens: 32,
            use_reference: true,
            select: SelectConfig::default(),
            prefill: SelectConfig::default().prefill_options(),
            bootstrap: 2000,
            permutations: 2000,
            seed: 7,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CalibResult {
    /// `kl[prompt][layer]`: mean KL per token with only that layer pruned.
    pub kl: Vec<Vec<f64>>,
    /// `nll_delta[prompt][layer]`: pruned minus full NLL of the continuation.
    pub nll_delta: Vec<Vec<f64>>,
    /// Per-layer mean KL with bootstrap 95% intervals.
    pub sensitivity: Vec<LayerSensitivity>,
    /// Permutation test of "all layers are equally sensitive".
    pub p_value: f64,
    pub seconds: f64,
}

/// Runs the calibration. `progress(done, total)` is called after every
/// layer ablation; returning false cancels.
pub fn calibrate(
    engine: &Engine,
    prompts: &[PromptSpec<'_>],
    cfg: &CalibConfig,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<CalibResult> {
    if prompts.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    let start = std::time::Instant::now();
    let n_layers = engine.config().n_layers;
    let total = prompts.len() * n_layers;
    let (mut kl, mut nll_delta) = (Vec::new(), Vec::new());
    for (pi, item) in prompts.iter().enumerate() {
        let on = if cfg.use_reference { Continuation::ReferenceFirst } else { Continuation::Greedy };
        let scored = scoring::prepare(engine, item, cfg.continuation_tokens, on, cfg.prefill)?;
        let full_nll = scoring::compare(&scored.full_logprobs, &scored.full_logprobs, &scored.continuation)?.nll;
        // A sliding-window layer keeps `ablation_keep` of what it can see.
        let bounds = apply::bounds(&cfg.select, scored.pre.tokens.len(), &scored.pre.kv_ceilings);
        let (mut row_kl, mut row_nll) = (Vec::with_capacity(n_layers), Vec::with_capacity(n_layers));
        for layer in 0..n_layers {
            let mut budgets = bounds.hi().to_vec();
            let ceiling = budgets[layer];
            budgets[layer] = ((cfg.ablation_keep * ceiling as f64).round() as usize).clamp(bounds.lo()[layer], ceiling);
            let (cache, _) = apply::prune(&scored.pre, &budgets, &cfg.select, scored.continuation.len())?;
            let q = scored.quality(engine, &cache)?;
            row_kl.push(q.kl);
            row_nll.push(q.nll - full_nll);
            if !progress(pi * n_layers + layer + 1, total) {
                return Err(EngineError::Cancelled);
            }
        }
        kl.push(row_kl);
        nll_delta.push(row_nll);
    }
    let sensitivity = (0..n_layers)
        .map(|layer| {
            let col: Vec<f64> = kl.iter().map(|row| row[layer]).collect();
            let (mean, ci_low, ci_high) = stats::bootstrap_mean_ci(&col, cfg.bootstrap, 0.95, cfg.seed + layer as u64);
            LayerSensitivity { mean, ci_low, ci_high }
        })
        .collect();
    let p_value = stats::permutation_test_equal_layers(&kl, cfg.permutations, cfg.seed);
    Ok(CalibResult { kl, nll_delta, sensitivity, p_value, seconds: start.elapsed().as_secs_f64() })
}
