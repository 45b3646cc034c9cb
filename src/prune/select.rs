//! Choosing which prompt positions a layer keeps, right after prefill.
//!
//! Every scorer keeps the first `sinks` positions (attention sinks) and the
//! last `window` positions (the observation window) unconditionally; they
//! count inside `keep`. The remaining slots go to the best-scoring middle
//! positions. Ties go to the lower position so results are reproducible.
//!
//! NVIDIA kvpress (0.5.5) differs on purpose in two places, and
//! [`SelectConfig::kvpress`] plus [`kvpress_n_kept`] / [`kvpress_pyramid_n_kept`]
//! reproduce it exactly: its SnapKV and PyramidKV force no sinks, and it sizes
//! each layer by itself (`int(L * keep)`, PyramidKV's own schedule) rather than
//! rounding one global total. Scores, pooling and the window are the same.
//! Our default keeps 4 sinks: on the default model the first tokens draw a
//! large share of attention from every later query, and dropping them is the
//! classic way pruned caches derail (StreamingLLM).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::PruneError;

/// How middle positions are ranked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scorer {
    /// SnapKV: attention from the observation window, avg-pooled to keep
    /// neighbouring tokens together.
    SnapKv,
    /// H2O: attention accumulated over all prefill queries ("heavy hitters").
    H2o,
    /// StreamingLLM: sinks plus the most recent tokens, no scores needed.
    Streaming,
    /// Keep the keys with the lowest L2 norm (low-norm keys draw high attention).
    KeyNorm,
}

impl Scorer {
    pub const ALL: [Scorer; 4] = [Scorer::SnapKv, Scorer::H2o, Scorer::Streaming, Scorer::KeyNorm];

    pub fn name(self) -> &'static str {
        match self {
            Scorer::SnapKv => "snapkv",
            Scorer::H2o => "h2o",
            Scorer::Streaming => "streaming",
            Scorer::KeyNorm => "keynorm",
        }
    }
}

impl fmt::Display for Scorer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scorer {
    type Err = PruneError;

    /// Case-insensitive; `-` and `_` are ignored (`snap-kv`, `key_norm` work).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted: String =
            s.trim().chars().filter(|c| *c != '-' && *c != '_').collect::<String>().to_ascii_lowercase();
        Self::ALL.into_iter().find(|k| k.name() == wanted).ok_or_else(|| PruneError::UnknownScorer {
            name: s.to_string(),
            valid: Self::ALL.map(Scorer::name).join(", "),
        })
    }
}

/// Attention sinks kept in every layer unless told otherwise.
pub const DEFAULT_SINKS: usize = 4;
/// Observation window (trailing tokens always kept) unless told otherwise.
pub const DEFAULT_WINDOW: usize = 32;
/// SnapKV pooling kernel unless told otherwise.
pub const DEFAULT_KERNEL: usize = 7;

/// Token selection settings for every layer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectConfig {
    pub scorer: Scorer,
    /// Leading positions always kept.
    pub sinks: usize,
    /// Trailing positions always kept (SnapKV's observation window).
    pub window: usize,
    /// Avg-pooling kernel for SnapKV scores; 0 or 1 disables pooling.
    pub kernel: usize,
    /// How a layer's budget is shared among its KV heads.
    #[serde(default)]
    pub heads: super::heads::HeadSplit,
}

impl Default for SelectConfig {
    /// SnapKV with [`DEFAULT_SINKS`], [`DEFAULT_WINDOW`] and [`DEFAULT_KERNEL`].
    fn default() -> Self {
        SelectConfig {
            scorer: Scorer::SnapKv,
            sinks: DEFAULT_SINKS,
            window: DEFAULT_WINDOW,
            kernel: DEFAULT_KERNEL,
            heads: Default::default(),
        }
    }
}

impl SelectConfig {
    /// kvpress's selection for `scorer`: SnapKV (and PyramidKV, which scores
    /// like SnapKV) with no forced sinks; StreamingLLM with its 4 sinks.
    pub fn kvpress(scorer: Scorer, window: usize, kernel: usize) -> Self {
        let sinks = if scorer == Scorer::Streaming { KVPRESS_STREAMING_SINKS } else { 0 };
        SelectConfig { scorer, sinks, window, kernel, heads: Default::default() }
    }
}

/// kvpress StreamingLLMPress's default `n_sink`.
pub const KVPRESS_STREAMING_SINKS: usize = 4;

/// kvpress's `1 - compression_ratio` for a kept fraction, with the same
/// float rounding (`1 - (1 - keep)` is not always `keep` in f64, and kvpress
/// truncates the product: at L = 2000, keep 0.1 gives 199, not 200).
fn kvpress_keep(keep: f64) -> f64 {
    let compression_ratio = 1.0 - keep;
    1.0 - compression_ratio
}

/// Positions every layer keeps under kvpress's ScorerPress (uniform SnapKV,
/// StreamingLLM): `max(1, int(L * (1 - compression_ratio)))`.
pub fn kvpress_n_kept(prompt_len: usize, keep: f64) -> usize {
    ((prompt_len as f64 * kvpress_keep(keep)) as usize).max(1).min(prompt_len)
}

/// Positions layer `layer` keeps under kvpress's PyramidKVPress (window
/// included), following its `get_layer_budget`: a linear schedule from
/// `max_num` at the bottom to `max_num / (2 beta - 1)` at the top, falling back
/// to the uniform count when the schedule's smallest layer would not hold the
/// window. Python's `round` rounds halves to even, hence `round_ties_even`.
pub fn kvpress_pyramid_n_kept(
    prompt_len: usize,
    keep: f64,
    window: usize,
    beta: f64,
    layer: usize,
    n_layers: usize,
) -> usize {
    let (q_len, w) = (prompt_len as f64, window as f64);
    let max_capacity = w + q_len * kvpress_keep(keep);
    let mut min_num = (max_capacity - w) / beta;
    let mut max_num = (max_capacity - w) * 2.0 - min_num;
    if max_num >= q_len - w {
        max_num = q_len - w;
        min_num = (max_capacity - w) * 2.0 - max_num;
    }
    let n = if !(q_len >= max_num && max_num >= min_num && min_num >= w) {
        (q_len * kvpress_keep(keep)).round_ties_even().max(1.0)
    } else {
        let steps = if n_layers > 1 { (max_num - min_num) / (n_layers - 1) as f64 } else { 0.0 };
        (max_num - layer as f64 * steps).round_ties_even()
    };
    (n.max(0.0) as usize).min(prompt_len)
}

/// Per-layer statistics gathered during prefill, each indexed `[kv_head][pos]`.
///
/// Only the one the scorer needs has to be filled; the others may be empty.
#[derive(Clone, Copy, Debug, Default)]
pub struct LayerStats<'a> {
    /// Attention mass each position received from the last `window` queries.
    pub window_attention: &'a [Vec<f32>],
    /// Attention mass each position received from all prefill queries.
    pub accumulated: &'a [Vec<f32>],
    /// L2 norm of each position's key.
    pub key_norms: &'a [Vec<f32>],
}

/// Pooling used to smooth scores before top-k.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    Avg,
    Max,
}

/// 1-D pooling with stride 1 and 'same' output length.
///
/// Avg pads with zeros and divides by the full kernel (as PyTorch's
/// `avg_pool1d` with `count_include_pad`, which SnapKV uses); Max ignores
/// padding. Even kernels put the extra element on the right.
pub fn pool_1d(scores: &[f32], kernel: usize, pooling: Pooling) -> Vec<f32> {
    let n = scores.len();
    if kernel <= 1 || n == 0 {
        return scores.to_vec();
    }
    let left = (kernel - 1) / 2;
    let right = kernel - 1 - left;
    (0..n)
        .map(|i| {
            let a = i.saturating_sub(left);
            let b = (i + right).min(n - 1);
            let win = &scores[a..=b];
            match pooling {
                Pooling::Avg => win.iter().sum::<f32>() / kernel as f32,
                Pooling::Max => win.iter().cloned().fold(f32::NEG_INFINITY, f32::max),
            }
        })
        .collect()
}

/// Kept positions for every KV head of one layer: sorted, unique, exactly
/// `min(keep, prompt_len)` each.
///
/// The head count comes from the statistics the scorer reads (Streaming,
/// which reads none, uses whichever is non-empty, else one head). Missing or
/// NaN scores rank last rather than panicking.
pub fn select_layer(cfg: &SelectConfig, stats: &LayerStats, prompt_len: usize, keep: usize) -> Vec<Vec<u32>> {
    let source: &[Vec<f32>] = match cfg.scorer {
        Scorer::SnapKv => stats.window_attention,
        Scorer::H2o => stats.accumulated,
        Scorer::KeyNorm => stats.key_norms,
        Scorer::Streaming => [stats.window_attention, stats.accumulated, stats.key_norms]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or(&[]),
    };
    let n_heads = if cfg.scorer == Scorer::Streaming { source.len().max(1) } else { source.len() };
    (0..n_heads)
        .map(|h| {
            let scores = source.get(h).map(Vec::as_slice).unwrap_or(&[]);
            select_head(cfg, scores, prompt_len, keep)
        })
        .collect()
}

fn select_head(cfg: &SelectConfig, raw: &[f32], len: usize, keep: usize) -> Vec<u32> {
    let keep = keep.min(len);
    if keep == len {
        return (0..len as u32).collect();
    }
    // Sinks first, then the most recent tokens, when they do not all fit.
    let sinks = cfg.sinks.min(keep);
    let recent = if cfg.scorer == Scorer::Streaming { keep - sinks } else { cfg.window.min(keep - sinks) };
    let mid_start = sinks;
    let mid_end = len - recent; // > sinks, since sinks + recent <= keep < len
    let fill = keep - sinks - recent;

    let mut kept: Vec<u32> = (0..sinks as u32).collect();
    if fill > 0 {
        let score = |i: usize| -> f32 {
            match raw.get(i) {
                Some(v) if !v.is_nan() => *v,
                _ => f32::NEG_INFINITY,
            }
        };
        let ranked: Vec<f32> = match cfg.scorer {
            // Pool over the prefix before the window, as SnapKV does.
            Scorer::SnapKv => {
                let prefix: Vec<f32> = (0..mid_end).map(score).collect();
                pool_1d(&prefix, cfg.kernel, Pooling::Avg)
            }
            Scorer::H2o => (0..mid_end).map(score).collect(),
            Scorer::KeyNorm => (0..mid_end)
                .map(|i| match raw.get(i) {
                    Some(v) if !v.is_nan() => -*v,
                    _ => f32::NEG_INFINITY,
                })
                .collect(),
            Scorer::Streaming => unreachable!("streaming never fills the middle"),
        };
        let key = |i: usize| -> f32 {
            let v = ranked[i];
            if v.is_nan() {
                f32::NEG_INFINITY
            } else {
                v
            }
        };
        let better = |a: &usize, b: &usize| -> Ordering { key(*b).total_cmp(&key(*a)).then(a.cmp(b)) };
        let mut mid: Vec<usize> = (mid_start..mid_end).collect();
        if fill < mid.len() {
            mid.select_nth_unstable_by(fill - 1, better);
            mid.truncate(fill);
        }
        mid.sort_unstable();
        kept.extend(mid.into_iter().map(|i| i as u32));
    }
    kept.extend((mid_end as u32)..(len as u32));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(scorer: Scorer, sinks: usize, window: usize, kernel: usize) -> SelectConfig {
        SelectConfig { scorer, sinks, window, kernel, heads: Default::default() }
    }

    fn stats_one(v: &[Vec<f32>]) -> LayerStats<'_> {
        LayerStats { window_attention: v, accumulated: v, key_norms: v }
    }

    #[test]
    fn kvpress_counts_follow_its_float_rounding() {
        // 1 - (1 - 0.1) = 0.09999999999999998 in f64: kvpress keeps 199 of 2000.
        assert_eq!(kvpress_n_kept(2000, 0.1), 199);
        assert_eq!(kvpress_n_kept(2000, 0.5), 1000);
        assert_eq!(kvpress_n_kept(3, 0.1), 1);
        assert_eq!(SelectConfig::kvpress(Scorer::SnapKv, 32, 7).sinks, 0);
        assert_eq!(SelectConfig::kvpress(Scorer::Streaming, 32, 7).sinks, 4);
    }

    #[test]
    fn kvpress_pyramid_schedule() {
        // L = 4000, keep 0.4, window 32, beta 20, 30 layers: min 80, max 3120
        // (capped at L - window = 3968 is not hit), step (3120 - 80) / 29.
        let n: Vec<usize> = (0..30).map(|l| kvpress_pyramid_n_kept(4000, 0.4, 32, 20.0, l, 30)).collect();
        assert_eq!(n[0], 3120);
        assert_eq!(n[29], 80);
        assert!(n.windows(2).all(|w| w[0] >= w[1]));
        let total: usize = n.iter().sum();
        assert!((total as f64 - 1600.0 * 30.0).abs() <= 30.0, "{total}");
        // keep 0.1 at L = 2000: min_num = 200 / 20 = 10 < window -> uniform round(L * keep).
        assert!((0..30).all(|l| kvpress_pyramid_n_kept(2000, 0.1, 32, 20.0, l, 30) == 200));
        // Capped bottom layer: keep 0.6 at L = 1000 hits max_num = L - window.
        assert_eq!(kvpress_pyramid_n_kept(1000, 0.6, 32, 20.0, 0, 30), 968);
    }

    #[test]
    fn default_is_snapkv_4_32_7() {
        assert_eq!(SelectConfig::default(), cfg(Scorer::SnapKv, 4, 32, 7));
    }

    #[test]
    fn scorer_names() {
        for s in Scorer::ALL {
            assert_eq!(s.to_string().parse::<Scorer>().unwrap(), s);
        }
        assert_eq!("Snap-KV".parse::<Scorer>().unwrap(), Scorer::SnapKv);
        assert_eq!("key_norm".parse::<Scorer>().unwrap(), Scorer::KeyNorm);
        let e = "pyramid".parse::<Scorer>().unwrap_err().to_string();
        assert!(e.contains("'pyramid'") && e.contains("snapkv, h2o"), "{e}");
    }

    #[test]
    fn pooling_same_size() {
        let v = [0.0, 3.0, 0.0, 0.0, 6.0];
        assert_eq!(pool_1d(&v, 3, Pooling::Avg), vec![1.0, 1.0, 1.0, 2.0, 2.0]);
        assert_eq!(pool_1d(&v, 3, Pooling::Max), vec![3.0, 3.0, 3.0, 6.0, 6.0]);
        assert_eq!(pool_1d(&v, 1, Pooling::Avg), v.to_vec());
        assert_eq!(pool_1d(&v, 2, Pooling::Max), vec![3.0, 3.0, 0.0, 6.0, 6.0]);
        assert!(pool_1d(&[], 7, Pooling::Avg).is_empty());
    }

    #[test]
    fn snapkv_keeps_sinks_window_and_top_scores() {
        let mut s = vec![0.0f32; 20];
        s[9] = 5.0;
        s[5] = 1.0;
        let st = [s];
        let out = select_layer(&cfg(Scorer::SnapKv, 2, 3, 1), &stats_one(&st), 20, 7);
        assert_eq!(out, vec![vec![0, 1, 5, 9, 17, 18, 19]]);
    }

    #[test]
    fn snapkv_pooling_pulls_in_neighbours() {
        let mut s = vec![0.0f32; 20];
        s[10] = 9.0; // pooled: 8..=12 get 3.0 with kernel 3 -> 9,10,11
        s[3] = 2.0;
        let st = [s];
        let out = select_layer(&cfg(Scorer::SnapKv, 1, 2, 3), &stats_one(&st), 20, 6);
        assert_eq!(out, vec![vec![0, 9, 10, 11, 18, 19]]);
    }

    #[test]
    fn ties_prefer_lower_positions() {
        let st = [vec![1.0f32; 10]];
        let out = select_layer(&cfg(Scorer::H2o, 1, 1, 7), &stats_one(&st), 10, 4);
        assert_eq!(out, vec![vec![0, 1, 2, 9]]);
    }

    #[test]
    fn h2o_uses_accumulated() {
        let win = [vec![0.0f32, 9.0, 0.0, 0.0, 0.0]];
        let acc = [vec![0.0f32, 0.0, 0.0, 9.0, 0.0]];
        let st = LayerStats { window_attention: &win, accumulated: &acc, key_norms: &[] };
        let out = select_layer(&cfg(Scorer::H2o, 1, 1, 1), &st, 5, 3);
        assert_eq!(out, vec![vec![0, 3, 4]]);
        let out = select_layer(&cfg(Scorer::SnapKv, 1, 1, 1), &st, 5, 3);
        assert_eq!(out, vec![vec![0, 1, 4]]);
    }

    #[test]
    fn keynorm_keeps_lowest_norms() {
        let st = [vec![5.0f32, 3.0, 0.1, 4.0, 0.2, 2.0, 9.0]];
        let out = select_layer(&cfg(Scorer::KeyNorm, 1, 1, 7), &stats_one(&st), 7, 4);
        assert_eq!(out, vec![vec![0, 2, 4, 6]]);
    }

    #[test]
    fn streaming_keeps_sinks_and_recent() {
        let out = select_layer(&cfg(Scorer::Streaming, 2, 1, 7), &LayerStats::default(), 10, 5);
        assert_eq!(out, vec![vec![0, 1, 7, 8, 9]]);
    }

    #[test]
    fn small_keep_takes_sinks_then_recent() {
        let st = [vec![1.0f32; 50]];
        let c = cfg(Scorer::SnapKv, 4, 32, 7);
        assert_eq!(select_layer(&c, &stats_one(&st), 50, 3), vec![vec![0, 1, 2]]);
        let out = select_layer(&c, &stats_one(&st), 50, 10);
        assert_eq!(out, vec![vec![0, 1, 2, 3, 44, 45, 46, 47, 48, 49]]);
    }

    #[test]
    fn keep_at_least_len_keeps_all() {
        let st = [vec![1.0f32; 5], vec![2.0f32; 5]];
        let out = select_layer(&SelectConfig::default(), &stats_one(&st), 5, 99);
        assert_eq!(out, vec![vec![0, 1, 2, 3, 4]; 2]);
    }

    #[test]
    fn empty_and_ragged_inputs_do_not_panic() {
        let c = SelectConfig::default();
        assert!(select_layer(&c, &LayerStats::default(), 0, 10).is_empty());
        assert!(select_layer(&c, &LayerStats::default(), 100, 10).is_empty());
        let st = [vec![], vec![f32::NAN; 3]];
        let out = select_layer(&cfg(Scorer::H2o, 1, 1, 3), &stats_one(&st), 100, 4);
        assert_eq!(out, vec![vec![0, 1, 2, 99]; 2]);
        let out = select_layer(&c, &stats_one(&[vec![1.0]]), 0, 0);
        assert_eq!(out, vec![Vec::<u32>::new()]);
    }
}
