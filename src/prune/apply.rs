//! From per-layer budgets to a pruned cache: score-based selection inside each
//! layer, then a physical gather of the kept slots. The bridge between the
//! pure policies of this module and the engine's tensors.

use super::{
    allocate_within, select_layer_split, LayerBounds, LayerLimits, LayerStats, Scorer, SelectConfig, Strategy,
};
use crate::engine::cache::KvCache;
use crate::engine::error::{EngineError, Result as EngineResult};
use crate::engine::{KvPrecision, PrefillOptions, Prefilled};
use rayon::prelude::*;

/// Which prompt positions each (layer, kv head) keeps after pruning.
/// `kept[layer][kv_head]` is sorted and unique.
#[derive(Debug, Clone, PartialEq)]
pub struct Occupancy {
    pub prompt_len: usize,
    pub kept: Vec<Vec<Vec<u32>>>,
}

impl SelectConfig {
    /// Prefill settings that record the statistics this selection reads
    /// (its observation window; H2O's sums only for the H2O scorer).
    pub fn prefill_options(&self) -> PrefillOptions {
        PrefillOptions { window: self.window, accumulated: self.scorer == Scorer::H2o, ..Default::default() }
    }
}

/// Per-layer limits for a prompt under a selection config.
pub fn limits(cfg: &SelectConfig, prompt_len: usize) -> LayerLimits {
    LayerLimits::new(cfg.sinks, cfg.window, prompt_len)
}

/// What each layer always keeps on a `prompt_len`-token prompt whose layers
/// hold at most `ceilings` slots: sinks and observation window on a layer
/// that sees the whole prompt; on a sliding-window layer (ceiling below the
/// prompt) the window alone, since the sinks are out of its reach and
/// [`plan`] keeps none there. Never more than the ceiling.
pub fn floors(cfg: &SelectConfig, prompt_len: usize, ceilings: &[usize]) -> Vec<usize> {
    let global = limits(cfg, prompt_len).min;
    ceilings.iter().map(|&c| if c < prompt_len { cfg.window.min(c) } else { global.min(c) }).collect()
}

/// Per-layer bounds, `[floor, ceiling]`, for a `prompt_len`-token prompt
/// whose layers hold at most `ceilings` slots (`ModelConfig::kv_ceilings`:
/// the prompt, or a sliding window).
pub fn bounds(cfg: &SelectConfig, prompt_len: usize, ceilings: &[usize]) -> LayerBounds {
    LayerBounds::with_floors(&floors(cfg, prompt_len, ceilings), ceilings)
}

/// Refuses a budget the selection settings cannot honour on a prompt of
/// `prompt_len` tokens whose layers hold at most `ceilings` slots: every
/// layer keeps its floor (see [`floors`]), so a smaller budget would silently
/// become larger (which [`budgets_within`] does by design). The budget is a
/// fraction of the sum of the ceilings, as everywhere.
pub fn check_reachable(
    budget: f64,
    prompt_len: usize,
    ceilings: &[usize],
    cfg: &SelectConfig,
) -> Result<(), super::PruneError> {
    if budget >= 1.0 || prompt_len == 0 {
        return Ok(());
    }
    let b = bounds(cfg, prompt_len, ceilings);
    if b.total_slots(budget) >= b.lo_total() {
        return Ok(());
    }
    let (sinks, window) = (cfg.sinks, cfg.window);
    let local_layers = ceilings.iter().filter(|&&c| c < prompt_len).count();
    Err(if b.lo_total() >= b.hi_total() {
        super::PruneError::FloorCoversPrompt { budget, sinks, window, prompt_len }
    } else {
        let smallest = smallest_reachable(&b);
        super::PruneError::BudgetBelowFloor { budget, sinks, window, prompt_len, local_layers, smallest }
    })
}

/// The smallest budget, in steps of 1e-4 (what the error message prints),
/// whose kept total covers every layer's floor. The search starts where the
/// total is surely one slot short: totals are rounded, not truncated.
fn smallest_reachable(b: &LayerBounds) -> f64 {
    let short = b.lo_total().saturating_sub(1) as f64 / b.hi_total().max(1) as f64;
    let mut k = (short * 1e4).floor() as u64;
    while k < 10_000 && b.total_slots(k as f64 / 1e4) < b.lo_total() {
        k += 1;
    }
    k as f64 / 1e4
}

/// Budgets (tokens per layer) for a strategy at a global budget fraction,
/// every layer holding up to the whole prompt. The total is clamped to what
/// the per-layer limits allow.
pub fn budgets_for(
    strategy: &Strategy,
    budget: f64,
    prompt_len: usize,
    n_layers: usize,
    cfg: &SelectConfig,
) -> Result<Vec<usize>, super::PruneError> {
    budgets_within(strategy, budget, prompt_len, &vec![prompt_len; n_layers], cfg)
}

/// Budgets for a strategy at a global budget fraction of the unpruned total
/// (the sum of `ceilings`) on a `prompt_len`-token prompt, every layer within
/// `[floor, ceiling]`. The total is clamped to what the bounds allow.
pub fn budgets_within(
    strategy: &Strategy,
    budget: f64,
    prompt_len: usize,
    ceilings: &[usize],
    cfg: &SelectConfig,
) -> Result<Vec<usize>, super::PruneError> {
    let b = bounds(cfg, prompt_len, ceilings);
    allocate_within(strategy, b.feasible(b.total_slots(budget)), &b)
}

/// Budgets for a strategy on a prefilled prompt, within its layers'
/// ceilings; per-prompt strategies (adaptive) read the prompt's own statistics.
pub fn budgets_for_prefill(
    strategy: &Strategy,
    budget: f64,
    pre: &Prefilled,
    cfg: &SelectConfig,
) -> Result<Vec<usize>, super::PruneError> {
    let Strategy::Adaptive { weights, mix } = strategy else {
        return budgets_within(strategy, budget, pre.tokens.len(), &pre.kv_ceilings, cfg);
    };
    let b = bounds(cfg, pre.tokens.len(), &pre.kv_ceilings);
    let total = b.feasible(b.total_slots(budget));
    let gains = super::adaptive::marginal_gains(&pre.stats.window, pre.tokens.len(), cfg.sinks, cfg.window);
    super::adaptive::retained_mass_split_within(&gains, weights.as_deref(), *mix, total, &b)
}

/// The global budget fraction that a KV memory budget of `kv_bytes` buys at
/// `bytes_per_slot` (one token in one layer at the chosen precision): the
/// same bytes hold more tokens at fewer bits. At most 1 (keep everything).
pub fn fraction_for_bytes(kv_bytes: usize, prompt_len: usize, n_layers: usize, bytes_per_slot: usize) -> f64 {
    let cells = prompt_len.saturating_mul(n_layers).saturating_mul(bytes_per_slot);
    if cells == 0 {
        return 1.0;
    }
    (kv_bytes as f64 / cells as f64).min(1.0)
}

/// One layer's rows of a statistic; empty when it was not recorded.
fn rows(all: &[Vec<Vec<f32>>], li: usize) -> &[Vec<f32>] {
    all.get(li).map_or(&[], Vec::as_slice)
}

/// Kept positions `[layer][kv_head]` for these budgets. A sliding-window
/// layer chooses among the positions it can still see (the last `ceiling`
/// of the prompt); the prompt's first tokens are out of its reach, so it
/// keeps no sinks there.
pub fn plan(pre: &Prefilled, budgets: &[usize], cfg: &SelectConfig) -> Vec<Vec<Vec<u32>>> {
    let l = pre.tokens.len();
    let s = &pre.stats;
    // Layers are independent; at long contexts this host-side ranking is most
    // of a budget change's latency, so every core takes layers.
    budgets
        .par_iter()
        .enumerate()
        .map(|(li, &keep)| {
            let ceiling = pre.kv_ceilings.get(li).copied().unwrap_or(l).min(l);
            if ceiling == l {
                let stats = LayerStats {
                    window_attention: rows(&s.window, li),
                    accumulated: rows(&s.accumulated, li),
                    key_norms: rows(&s.key_norms, li),
                };
                return select_layer_split(cfg, &stats, l, keep);
            }
            let start = l - ceiling;
            let tail = |rows: &[Vec<f32>]| -> Vec<Vec<f32>> {
                rows.iter().map(|r| r.get(start..).map_or_else(Vec::new, <[f32]>::to_vec)).collect()
            };
            let (w, a, k) = (tail(rows(&s.window, li)), tail(rows(&s.accumulated, li)), tail(rows(&s.key_norms, li)));
            let stats = LayerStats { window_attention: &w, accumulated: &a, key_norms: &k };
            let local = SelectConfig { sinks: 0, ..*cfg };
            let kept = select_layer_split(&local, &stats, ceiling, keep.min(ceiling));
            kept.into_iter().map(|head| head.into_iter().map(|p| p + start as u32).collect()).collect()
        })
        .collect()
}

/// The prefill cache pruned to `budgets`, with room for `reserve` new tokens,
/// and the occupancy it leaves. Layers that keep everything share the
/// prefill buffers (no copy) until they append.
pub fn prune(
    pre: &Prefilled,
    budgets: &[usize],
    cfg: &SelectConfig,
    reserve: usize,
) -> EngineResult<(KvCache, Occupancy)> {
    prune_as(pre, budgets, cfg, reserve, KvPrecision::Native)
}

/// As [`prune`], the kept tokens stored at `precision`.
pub fn prune_as(
    pre: &Prefilled,
    budgets: &[usize],
    cfg: &SelectConfig,
    reserve: usize,
    precision: KvPrecision,
) -> EngineResult<(KvCache, Occupancy)> {
    let l = pre.tokens.len();
    if cfg.scorer == Scorer::H2o && pre.stats.accumulated.is_empty() {
        return Err(EngineError::BadSelection(
            "H2O needs the attention sums of every prompt query, and this prefill did not record them \
             (PrefillOptions::accumulated)"
                .into(),
        ));
    }
    let kept = plan(pre, budgets, cfg);
    // In the prefill cache a slot's index is its position.
    let keep: Vec<Option<Vec<Vec<u32>>>> =
        kept.iter().map(|heads| if heads.iter().all(|h| h.len() >= l) { None } else { Some(heads.clone()) }).collect();
    let cache = pre.cache.pruned_as(&keep, reserve, precision)?;
    Ok((cache, Occupancy { prompt_len: l, kept }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_budgets_are_refused_with_the_range() {
        let sel = SelectConfig::default();
        let all = [1000; 30];
        assert!(check_reachable(0.2, 1000, &all, &sel).is_ok());
        assert!(check_reachable(0.0360, 1000, &all, &sel).is_ok());
        assert!(check_reachable(0.0359, 1000, &all, &sel).is_err());
        assert!(check_reachable(1.0, 10, &[10; 30], &sel).is_ok());
        let e = check_reachable(1e-9, 1000, &all, &sel).unwrap_err().to_string();
        assert!(e.contains("the valid range there is [0.0360, 1]"), "{e}");
        let wide = SelectConfig { window: 100_000, ..sel };
        let e = check_reachable(0.2, 1000, &all, &wide).unwrap_err().to_string();
        assert!(e.contains("cover the whole 1000-token prompt"), "{e}");
    }

    #[test]
    fn local_layers_keep_their_window_without_sinks() {
        // sinks 4 + window 32; layers: global, local 100, local 20 on a 1000-token prompt.
        let sel = SelectConfig::default();
        let ceilings = [1000, 100, 20];
        assert_eq!(floors(&sel, 1000, &ceilings), vec![36, 32, 20]);
        let b = bounds(&sel, 1000, &ceilings);
        assert_eq!((b.lo_total(), b.hi_total()), (88, 1120));
        // 0.0782 * 1120 = 87.6 rounds to the 88 slots the floors need; 0.0781 keeps 87.
        assert!(check_reachable(0.0782, 1000, &ceilings, &sel).is_ok());
        let e = check_reachable(0.0781, 1000, &ceilings, &sel).unwrap_err().to_string();
        assert!(e.contains("[0.0782, 1]") && e.contains("2 sliding-window layers"), "{e}");
        // Every layer at its floor covers everything: nothing to prune.
        let e = check_reachable(0.5, 30, &[30, 20], &sel).unwrap_err().to_string();
        assert!(e.contains("cover the whole 30-token prompt"), "{e}");
    }
}
