//! Layer × head budgets: how a layer's budget is shared among its KV heads.
//!
//! `Even` gives every head the layer's budget. `Ada` (after AdaKV) pools the
//! heads: each keeps its sinks and window plus a safeguard share of its even
//! middle budget, and the rest of the layer's middle budget goes to the
//! best-scoring positions of any head, so heads that attend broadly keep
//! more and focused heads less. The layer's total stays exactly
//! `heads × budget`.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::select::{pool_1d, select_layer, LayerStats, Pooling, Scorer, SelectConfig};

/// The safeguard share kvpress's AdaKV uses: each head keeps at least this
/// fraction of its even middle budget.
pub const ADA_SAFEGUARD: f64 = 0.2;

/// How a layer's budget is shared among its KV heads.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase", tag = "split")]
pub enum HeadSplit {
    /// Every head keeps the layer's budget.
    #[default]
    Even,
    /// Shared by score, each head keeping at least `safeguard` of its even
    /// middle share (in [0, 1]).
    Ada { safeguard: f64 },
}

impl HeadSplit {
    pub fn name(self) -> &'static str {
        match self {
            HeadSplit::Even => "even",
            HeadSplit::Ada { .. } => "ada",
        }
    }
}

/// The scores a head's middle positions are ranked by, over `0..mid_end`
/// (larger is better), as the scorer defines them.
fn ranking(scorer: Scorer, kernel: usize, raw: &[f32], mid_end: usize) -> Vec<f32> {
    let score = |i: usize| raw.get(i).copied().filter(|v| !v.is_nan()).unwrap_or(f32::NEG_INFINITY);
    match scorer {
        Scorer::SnapKv => pool_1d(&(0..mid_end).map(score).collect::<Vec<_>>(), kernel, Pooling::Avg),
        Scorer::H2o => (0..mid_end).map(score).collect(),
        Scorer::KeyNorm => (0..mid_end).map(|i| -score(i)).collect(),
        Scorer::Streaming => vec![0.0; mid_end],
    }
}

/// Kept positions of every KV head of one layer under `split`: sorted and
/// unique per head, `heads × min(keep, len)` in all, split by `cfg.heads`. Streaming has no scores
/// to share by and always splits evenly.
pub fn select_layer_split(cfg: &SelectConfig, stats: &LayerStats, len: usize, keep: usize) -> Vec<Vec<u32>> {
    let HeadSplit::Ada { safeguard } = cfg.heads else { return select_layer(cfg, stats, len, keep) };
    let source = match cfg.scorer {
        Scorer::SnapKv => stats.window_attention,
        Scorer::H2o => stats.accumulated,
        Scorer::KeyNorm => stats.key_norms,
        Scorer::Streaming => return select_layer(cfg, stats, len, keep),
    };
    let keep = keep.min(len);
    if keep == len || source.is_empty() {
        return select_layer(cfg, stats, len, keep);
    }
    let sinks = cfg.sinks.min(keep);
    let recent = cfg.window.min(keep - sinks);
    let mid_end = len - recent;
    let middle = keep - sinks - recent;
    let mid_len = mid_end - sinks;
    let guard = ((safeguard.clamp(0.0, 1.0) * middle as f64).floor() as usize).min(middle);

    // Each head's middle positions, best first.
    let ranked: Vec<Vec<(f32, usize)>> = source
        .iter()
        .map(|raw| {
            let r = ranking(cfg.scorer, cfg.kernel, raw, mid_end);
            let mut mid: Vec<(f32, usize)> = (sinks..mid_end).map(|p| (r[p], p)).collect();
            mid.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            mid
        })
        .collect();
    // Safeguard first, then the layer's remaining middle budget to the best
    // positions of any head (ties to the lower head, then position).
    let taken = vec![guard.min(mid_len); ranked.len()];
    let mut pool: Vec<(f32, usize, usize)> =
        ranked.iter().enumerate().flat_map(|(h, mid)| mid.iter().skip(guard).map(move |&(s, p)| (s, h, p))).collect();
    let shared = ranked.len() * middle - taken.iter().sum::<usize>();
    let better = |a: &(f32, usize, usize), b: &(f32, usize, usize)| -> Ordering {
        b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
    };
    if shared > 0 && shared < pool.len() {
        pool.select_nth_unstable_by(shared - 1, better);
    }
    pool.truncate(shared);
    let mut extra: Vec<Vec<usize>> = vec![Vec::new(); ranked.len()];
    for (_, h, p) in pool {
        extra[h].push(p);
    }
    ranked
        .iter()
        .enumerate()
        .map(|(h, mid)| {
            let mut kept: Vec<u32> = (0..sinks as u32).collect();
            kept.extend(mid.iter().take(taken[h]).map(|&(_, p)| p as u32));
            kept.extend(extra[h].iter().map(|&p| p as u32));
            kept.extend((mid_end as u32)..(len as u32));
            kept.sort_unstable();
            kept
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SelectConfig {
        SelectConfig { scorer: Scorer::H2o, sinks: 2, window: 3, kernel: 1, heads: HeadSplit::Even }
    }

    fn ada(safeguard: f64) -> SelectConfig {
        SelectConfig { heads: HeadSplit::Ada { safeguard }, ..cfg() }
    }

    /// Head 0 spreads its attention evenly, head 1 on two positions.
    fn heads(len: usize) -> Vec<Vec<f32>> {
        let broad: Vec<f32> = (0..len).map(|p| 1.0 + (p % 5) as f32 * 0.01).collect();
        let mut focused = vec![0.01f32; len];
        focused[10] = 9.0;
        focused[20] = 8.0;
        vec![broad, focused]
    }

    fn stats(v: &[Vec<f32>]) -> LayerStats<'_> {
        LayerStats { window_attention: v, accumulated: v, key_norms: v }
    }

    #[test]
    fn the_layer_total_is_exact_and_heads_differ() {
        let h = heads(60);
        let kept = select_layer_split(&ada(ADA_SAFEGUARD), &stats(&h), 60, 25);
        assert_eq!(kept.iter().map(Vec::len).sum::<usize>(), 2 * 25);
        assert!(
            kept[0].len() > kept[1].len(),
            "the broad head keeps more: {:?}",
            kept.iter().map(Vec::len).collect::<Vec<_>>()
        );
        for k in &kept {
            assert!(k.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
            assert!(k.starts_with(&[0, 1]) && k.ends_with(&[57, 58, 59]), "sinks and window kept");
        }
        assert!(kept[1].contains(&10) && kept[1].contains(&20));
    }

    #[test]
    fn the_safeguard_is_respected() {
        let h = heads(60);
        for safeguard in [0.0, 0.2, 0.5, 1.0] {
            let kept = select_layer_split(&ada(safeguard), &stats(&h), 60, 25);
            let middle = 25 - 5;
            let guard = (safeguard * middle as f64).floor() as usize;
            for k in &kept {
                assert!(k.len() >= 5 + guard, "safeguard {safeguard}: head kept {}", k.len());
            }
            assert_eq!(kept.iter().map(Vec::len).sum::<usize>(), 50);
        }
        // A full safeguard is the even split.
        let even = select_layer(&cfg(), &stats(&h), 60, 25);
        assert_eq!(select_layer_split(&ada(1.0), &stats(&h), 60, 25), even);
    }

    #[test]
    fn even_split_and_full_budgets_match_plain_selection() {
        let h = heads(40);
        assert_eq!(select_layer_split(&cfg(), &stats(&h), 40, 12), select_layer(&cfg(), &stats(&h), 40, 12));
        let all = select_layer_split(&ada(0.2), &stats(&h), 40, 40);
        assert!(all.iter().all(|k| k.len() == 40));
    }
}
