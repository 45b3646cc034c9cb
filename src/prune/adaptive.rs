//! Per-prompt layer budgets from the prompt's own attention, with no
//! calibration run.
//!
//! Layers spend their observation window's attention differently: one that
//! looks at a handful of positions loses little when pruned hard, one that
//! spreads its attention over the whole prompt loses much. We measure what a
//! budget keeps as *retained attention mass*: with `b` tokens, each KV head
//! keeps its sinks, its window and its best middle positions, so the mass it
//! keeps is the sum of its top middle shares. The k-th extra slot of a layer
//! is worth the mean over its heads of their k-th largest middle share; those
//! gains only fall with k, so handing slots one by one to the largest gain
//! maximises the total retained mass exactly. Layer weights (a calibrated
//! sensitivity profile) turn the mass into a damage estimate, and a share of
//! the uniform split can be blended in, as for DepthKV.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::allocate::{round_to_total, uniform_targets, LayerLimits};
use super::bounds::LayerBounds;
use super::error::PruneError;

/// `gains[layer][k]`: attention mass the layer keeps with its (k+1)-th slot
/// above the minimum, averaged over KV heads, as a share of the window's
/// attention (each head's row normalised to 1). Non-increasing in k.
///
/// `window_attention[layer][head][pos]` is the prefill's record; `sinks` and
/// `window` are the always-kept positions at either end.
pub fn marginal_gains(
    window_attention: &[Vec<Vec<f32>>],
    prompt_len: usize,
    sinks: usize,
    window: usize,
) -> Vec<Vec<f64>> {
    let mid_start = sinks.min(prompt_len);
    let mid_end = prompt_len.saturating_sub(window).max(mid_start);
    window_attention
        .iter()
        .map(|heads| {
            let mut by_rank = vec![0f64; mid_end - mid_start];
            for row in heads {
                let total: f64 =
                    row.iter().take(prompt_len).filter(|v| v.is_finite()).map(|&v| v.max(0.0) as f64).sum();
                if total <= 0.0 {
                    continue;
                }
                let mut mid: Vec<f64> = (mid_start..mid_end)
                    .map(|p| row.get(p).copied().filter(|v| v.is_finite()).map_or(0.0, |v| v.max(0.0) as f64) / total)
                    .collect();
                mid.sort_by(|a, b| b.total_cmp(a));
                for (acc, v) in by_rank.iter_mut().zip(mid) {
                    *acc += v;
                }
            }
            let n = heads.len().max(1) as f64;
            by_rank.iter().map(|v| v / n).collect()
        })
        .collect()
}

/// A candidate slot: layer `layer`'s next slot is worth `gain`.
#[derive(PartialEq)]
struct Next {
    gain: f64,
    layer: usize,
}

impl Eq for Next {}

impl Ord for Next {
    fn cmp(&self, other: &Self) -> Ordering {
        // Larger gain first; ties to the lower layer, for reproducible splits.
        self.gain.total_cmp(&other.gain).then(other.layer.cmp(&self.layer))
    }
}

impl PartialOrd for Next {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Splits `total` slots so the (weighted) retained attention mass is
/// largest: every layer starts at `limits.min`, then each further slot goes
/// to the layer whose next slot keeps the most. `weights[layer]` scales a
/// layer's gains (None: all 1). `mix` blends in the uniform split, in [0, 1].
pub fn retained_mass_split(
    gains: &[Vec<f64>],
    weights: Option<&[f64]>,
    mix: f64,
    total: usize,
    limits: LayerLimits,
) -> Result<Vec<usize>, PruneError> {
    if limits.min > limits.max {
        return Err(PruneError::InvalidLimits { min: limits.min, max: limits.max });
    }
    retained_mass_split_within(gains, weights, mix, total, &LayerBounds::uniform(gains.len(), limits))
}

/// As [`retained_mass_split`], each layer within its own bounds (a
/// sliding-window layer never above its window).
pub fn retained_mass_split_within(
    gains: &[Vec<f64>],
    weights: Option<&[f64]>,
    mix: f64,
    total: usize,
    bounds: &LayerBounds,
) -> Result<Vec<usize>, PruneError> {
    let n = gains.len();
    if !(0.0..=1.0).contains(&mix) {
        return Err(PruneError::InvalidMix(mix));
    }
    if bounds.n_layers() != n {
        return Err(PruneError::LengthMismatch { what: "layer ceilings", got: bounds.n_layers(), expected: n });
    }
    if let Some(w) = weights {
        if w.len() != n {
            return Err(PruneError::LengthMismatch { what: "layer weights", got: w.len(), expected: n });
        }
        if let Some((index, &value)) = w.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(PruneError::NonFinite { what: "layer weights", index, value });
        }
        if let Some((index, &value)) = w.iter().enumerate().find(|(_, v)| **v < 0.0) {
            return Err(PruneError::Negative { what: "layer weights", index, value });
        }
    }
    if total < bounds.lo_total() || total > bounds.hi_total() {
        return Err(bounds.infeasible(total));
    }
    let (lo, hi) = (bounds.lo(), bounds.hi());
    let weight = |l: usize| weights.map_or(1.0, |w| w[l]);
    let gain = |l: usize, k: usize| gains[l].get(k).copied().unwrap_or(0.0) * weight(l);
    let mut budgets = lo.to_vec();
    let mut heap: BinaryHeap<Next> =
        (0..n).filter(|&l| lo[l] < hi[l]).map(|l| Next { gain: gain(l, 0), layer: l }).collect();
    let mut left = total - bounds.lo_total();
    while left > 0 {
        let Some(Next { layer, .. }) = heap.pop() else { break };
        budgets[layer] += 1;
        left -= 1;
        if budgets[layer] < hi[layer] {
            heap.push(Next { gain: gain(layer, budgets[layer] - lo[layer]), layer });
        }
    }
    if mix == 0.0 {
        return Ok(budgets);
    }
    // Both ends of the blend are feasible splits, so the blend is too.
    let uniform = uniform_targets(total, bounds);
    let blended: Vec<f64> = budgets.iter().zip(&uniform).map(|(&b, &u)| (1.0 - mix) * b as f64 + mix * u).collect();
    let priority: Vec<f64> = budgets.iter().map(|&b| b as f64).collect();
    Ok(round_to_total(&blended, lo, hi, total, &priority))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(min: usize, max: usize) -> LayerLimits {
        LayerLimits { min, max }
    }

    /// One head per layer: `focused` puts its attention on one middle position,
    /// `spread` spreads it evenly.
    fn two_layers(len: usize) -> Vec<Vec<Vec<f32>>> {
        let mut focused = vec![0.001f32; len];
        focused[10] = 5.0;
        let spread = vec![1.0f32; len];
        vec![vec![focused], vec![spread]]
    }

    #[test]
    fn gains_fall_and_sum_to_the_middle_share() {
        let att = two_layers(100);
        let g = marginal_gains(&att, 100, 4, 8);
        for layer in &g {
            assert_eq!(layer.len(), 88);
            assert!(layer.windows(2).all(|w| w[0] >= w[1]));
        }
        let middle_share: f64 = 88.0 / 100.0;
        assert!((g[1].iter().sum::<f64>() - middle_share).abs() < 1e-9);
    }

    #[test]
    fn the_spread_layer_gets_more_and_the_total_is_exact() {
        let att = two_layers(100);
        let g = marginal_gains(&att, 100, 4, 8);
        let b = retained_mass_split(&g, None, 0.0, 2 * 40, limits(12, 100)).unwrap();
        assert_eq!(b.iter().sum::<usize>(), 80);
        assert!(b[1] > b[0], "{b:?}");
        // The focused layer needs exactly one slot for its one heavy position.
        assert_eq!(b[0], 13);
    }

    #[test]
    fn greedy_is_optimal_on_small_cases() {
        // Brute force over all splits of 2 layers x 3 heads-worth of gains.
        let gains = vec![vec![0.30, 0.20, 0.05, 0.01], vec![0.25, 0.24, 0.23, 0.00]];
        let lim = limits(1, 5);
        for total in 2..=10 {
            let b = retained_mass_split(&gains, None, 0.0, total, lim).unwrap();
            let value = |b: &[usize]| -> f64 { (0..2).map(|l| gains[l][..b[l] - 1].iter().sum::<f64>()).sum() };
            let best = (1..=5)
                .flat_map(|x| (1..=5).map(move |y| [x, y]))
                .filter(|s| s[0] + s[1] == total)
                .map(|s| value(&s))
                .fold(f64::NEG_INFINITY, f64::max);
            assert!((value(&b) - best).abs() < 1e-12, "total {total}: {b:?}");
        }
    }

    #[test]
    fn weights_and_mix_move_the_split_as_documented() {
        let att = two_layers(100);
        let g = marginal_gains(&att, 100, 4, 8);
        let lim = limits(12, 100);
        let plain = retained_mass_split(&g, None, 0.0, 80, lim).unwrap();
        let weighted = retained_mass_split(&g, Some(&[50.0, 1.0]), 0.0, 80, lim).unwrap();
        assert!(weighted[0] >= plain[0]);
        let uniform = retained_mass_split(&g, None, 1.0, 80, lim).unwrap();
        assert_eq!(uniform, vec![40, 40]);
        let half = retained_mass_split(&g, None, 0.5, 80, lim).unwrap();
        assert_eq!(half.iter().sum::<usize>(), 80);
        assert!(half[0] > plain[0] && half[0] < 40);
    }

    #[test]
    fn bad_inputs_are_refused() {
        let g = vec![vec![0.1; 10]; 2];
        assert!(retained_mass_split(&g, None, 1.5, 10, limits(2, 10)).is_err());
        assert!(retained_mass_split(&g, Some(&[1.0]), 0.0, 10, limits(2, 10)).is_err());
        assert!(retained_mass_split(&g, Some(&[1.0, f64::NAN]), 0.0, 10, limits(2, 10)).is_err());
        assert!(retained_mass_split(&g, None, 0.0, 30, limits(2, 10)).is_err());
    }

    #[test]
    fn a_windowed_layer_stops_at_its_window() {
        let att = two_layers(100);
        let g = marginal_gains(&att, 100, 4, 8);
        // The spread layer would take most slots; its window caps it at 30.
        let b = LayerBounds::with_ceilings(12, &[100, 30]);
        for mix in [0.0, 0.5] {
            let split = retained_mass_split_within(&g, None, mix, 80, &b).unwrap();
            assert_eq!(split.iter().sum::<usize>(), 80);
            assert!(split[1] <= 30 && split[0] >= 12, "mix {mix}: {split:?}");
        }
    }

    #[test]
    fn the_same_prompt_gives_the_same_split() {
        let att = two_layers(64);
        let a = retained_mass_split(&marginal_gains(&att, 64, 4, 8), None, 0.2, 70, limits(12, 64)).unwrap();
        let b = retained_mass_split(&marginal_gains(&att, 64, 4, 8), None, 0.2, 70, limits(12, 64)).unwrap();
        assert_eq!(a, b);
    }
}
