//! Splitting one global KV budget across layers.
//!
//! Every strategy reduces to a non-negative weight per layer plus per-layer
//! bounds. The weights are turned into real-valued targets by water-filling
//! (`x_i = clamp(lambda * w_i, lo_i, hi_i)` with `lambda` chosen so the targets
//! sum to the total: whatever a clamped layer cannot hold flows to the
//! unclamped ones), then into integers by largest-remainder rounding so the sum
//! is exact.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::bounds::LayerBounds;
use super::error::PruneError;

/// Default PyramidKV steepness, as in kvpress.
pub const PYRAMID_BETA: f64 = 20.0;

/// Targets this close to an integer are treated as that integer, so float
/// noise never flips a floor() and breaks "equal weights give equal counts".
const SNAP_EPS: f64 = 1e-7;

/// Global number of kept token slots: `round(budget * prompt_len * n_layers)`.
///
/// The budget is clamped to `[0, 1]` (NaN counts as 0) because a kept fraction
/// outside that range has no meaning; callers validate user input earlier.
pub fn total_slots(budget: f64, prompt_len: usize, n_layers: usize) -> usize {
    let b = if budget.is_nan() { 0.0 } else { budget.clamp(0.0, 1.0) };
    let cells = prompt_len.saturating_mul(n_layers);
    ((b * cells as f64).round() as usize).min(cells)
}

/// Per-layer bounds on the number of kept tokens.
///
/// `min` is what the selector always keeps (attention sinks plus the recent
/// window), `max` is the whole prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerLimits {
    pub min: usize,
    pub max: usize,
}

impl LayerLimits {
    /// Limits for a prompt of `prompt_len` tokens: `min = min(sinks + window, L)`, `max = L`.
    pub fn new(sinks: usize, window: usize, prompt_len: usize) -> Self {
        LayerLimits { min: sinks.saturating_add(window).min(prompt_len), max: prompt_len }
    }

    fn validate(&self) -> Result<(), PruneError> {
        if self.min > self.max {
            return Err(PruneError::InvalidLimits { min: self.min, max: self.max });
        }
        Ok(())
    }
}

/// Clamps `total` into the feasible range `[n * min, n * max]`.
///
/// `allocate` refuses infeasible totals rather than silently changing the
/// budget; this is the explicit way to accept the nearest feasible one.
pub fn feasible_total(total: usize, n_layers: usize, limits: LayerLimits) -> usize {
    let lo = n_layers.saturating_mul(limits.min);
    let hi = n_layers.saturating_mul(limits.max);
    total.max(lo).min(hi)
}

/// How a DepthKV sensitivity vector becomes layer weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DepthRule {
    /// Weight = sensitivity (negatives count as 0; all zero falls back to uniform).
    Proportional,
    /// Weight = exp(s / max|s| / temperature): smaller temperature, sharper split.
    Softmax { temperature: f64 },
    /// Weight = rank: most sensitive layer gets N, least gets 1 (ties share the mean rank).
    Rank,
}

/// How the global budget is split across layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Strategy {
    /// Same count for every layer.
    Uniform,
    /// PyramidKV linear schedule: most tokens at the bottom layer, fewest at the
    /// top (`top = total / (N * beta)`, `bottom = 2 * total / N - top`).
    Pyramid { beta: f64 },
    /// DepthKV: layers that degrade more when pruned get more slots.
    DepthKv {
        sensitivity: Vec<f64>,
        rule: DepthRule,
        /// Weight of the uniform split blended in, in [0, 1].
        mix: f64,
        /// Minimum kept fraction of the prompt per layer, in [0, 1).
        floor: f64,
    },
    /// Explicit per-layer kept fractions, rescaled to the total.
    Manual { fractions: Vec<f64> },
    /// Per prompt, from its own attention: the split that keeps the most
    /// observation-window attention mass (see `adaptive`), each layer's mass
    /// scaled by `weights` (e.g. calibrated sensitivity) when given.
    Adaptive { weights: Option<Vec<f64>>, mix: f64 },
}

impl Strategy {
    /// The short name this strategy is selected by on the command line.
    pub fn kind(&self) -> StrategyKind {
        match self {
            Strategy::Uniform => StrategyKind::Uniform,
            Strategy::Pyramid { .. } => StrategyKind::Pyramid,
            Strategy::DepthKv { rule, .. } => match rule {
                DepthRule::Proportional => StrategyKind::DepthKv,
                DepthRule::Softmax { .. } => StrategyKind::DepthKvSoftmax,
                DepthRule::Rank => StrategyKind::DepthKvRank,
            },
            Strategy::Manual { .. } => StrategyKind::Manual,
            Strategy::Adaptive { weights: None, .. } => StrategyKind::Adaptive,
            Strategy::Adaptive { weights: Some(_), .. } => StrategyKind::AdaptiveDepthKv,
        }
    }
}

/// Strategy names without their parameters, for CLI flags, menus and
/// profiles. Serialized as its [`name`](StrategyKind::name); read
/// case-insensitively with `_` for `-`, as older profiles may spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrategyKind {
    Uniform,
    Pyramid,
    DepthKv,
    DepthKvSoftmax,
    DepthKvRank,
    Manual,
    Adaptive,
    AdaptiveDepthKv,
}

impl StrategyKind {
    pub const ALL: [StrategyKind; 8] = [
        StrategyKind::Uniform,
        StrategyKind::Pyramid,
        StrategyKind::DepthKv,
        StrategyKind::DepthKvSoftmax,
        StrategyKind::DepthKvRank,
        StrategyKind::Manual,
        StrategyKind::Adaptive,
        StrategyKind::AdaptiveDepthKv,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Uniform => "uniform",
            StrategyKind::Pyramid => "pyramid",
            StrategyKind::DepthKv => "depthkv",
            StrategyKind::DepthKvSoftmax => "depthkv-softmax",
            StrategyKind::DepthKvRank => "depthkv-rank",
            StrategyKind::Manual => "manual",
            StrategyKind::Adaptive => "adaptive",
            StrategyKind::AdaptiveDepthKv => "adaptive-depthkv",
        }
    }

    fn valid_names() -> String {
        Self::ALL.map(StrategyKind::name).join(", ")
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StrategyKind {
    type Err = PruneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|k| k.name() == wanted)
            .ok_or_else(|| PruneError::UnknownStrategy { name: s.to_string(), valid: Self::valid_names() })
    }
}

impl Serialize for StrategyKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for StrategyKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a strategy name (case-insensitive; `_` accepted for `-`).
pub fn parse_strategy_name(name: &str) -> Result<StrategyKind, PruneError> {
    name.parse()
}

/// Splits `total` kept slots across `n_layers` layers.
///
/// The result sums exactly to `total` and every entry lies in
/// `[limits.min, limits.max]`. Infeasible totals are an error rather than
/// silently changed (see [`feasible_total`]).
pub fn allocate(
    strategy: &Strategy,
    n_layers: usize,
    total: usize,
    limits: LayerLimits,
) -> Result<Vec<usize>, PruneError> {
    limits.validate()?;
    let lo_total = n_layers.saturating_mul(limits.min);
    let hi_total = n_layers.saturating_mul(limits.max);
    if total < lo_total || total > hi_total {
        return Err(PruneError::InfeasibleTotal {
            total,
            n_layers,
            min: limits.min,
            max: limits.max,
            lo: lo_total,
            hi: hi_total,
        });
    }
    allocate_within(strategy, total, &LayerBounds::uniform(n_layers, limits))
}

/// Splits `total` kept slots across layers with their own bounds (e.g.
/// sliding-window layers capped at their window): the result sums exactly to
/// `total` and layer `i` lies in `[lo_i, hi_i]`.
pub fn allocate_within(strategy: &Strategy, total: usize, bounds: &LayerBounds) -> Result<Vec<usize>, PruneError> {
    let n_layers = bounds.n_layers();
    if total < bounds.lo_total() || total > bounds.hi_total() {
        return Err(bounds.infeasible(total));
    }
    if n_layers == 0 {
        return Ok(Vec::new());
    }
    let hi = bounds.hi();
    let mut lo = bounds.lo().to_vec();
    // Tie-break order for rounding: the strategy's raw preference (none once
    // mix = 1 has made DepthKV purely uniform).
    let priority: Vec<f64> = match strategy {
        Strategy::DepthKv { sensitivity, mix, .. } if *mix < 1.0 => sensitivity.clone(),
        Strategy::Manual { fractions } => fractions.clone(),
        _ => vec![0.0; n_layers],
    };
    let weights = match strategy {
        Strategy::Uniform => vec![1.0; n_layers],
        Strategy::Pyramid { beta } => pyramid_weights(*beta, n_layers)?,
        Strategy::DepthKv { sensitivity, rule, mix, floor } => {
            check_len("sensitivity", sensitivity, n_layers)?;
            check_finite("sensitivity", sensitivity)?;
            if !(0.0..=1.0).contains(mix) {
                return Err(PruneError::InvalidMix(*mix));
            }
            if !(0.0..1.0).contains(floor) {
                return Err(PruneError::InvalidFloor(*floor));
            }
            let raw = depth_weights(sensitivity, rule)?;
            let sum: f64 = raw.iter().sum();
            let n = n_layers as f64;
            let w = raw.iter().map(|&w| (1.0 - mix) * w / sum + mix / n).collect();
            // A floor the budget cannot afford for every layer is lowered to the
            // uniform share: the total is the user's hard constraint. The floor
            // is a fraction of the prompt (the largest ceiling), capped at each
            // layer's own ceiling.
            let prompt = hi.iter().copied().max().unwrap_or(0);
            let floor_slots = snapped_ceil(floor * prompt as f64).min(total / n_layers);
            let floored: Vec<usize> = lo.iter().zip(hi).map(|(&l, &h)| l.max(floor_slots).min(h)).collect();
            if floored.iter().sum::<usize>() <= total {
                lo = floored;
            }
            w
        }
        Strategy::Manual { fractions } => manual_weights(fractions, n_layers)?,
        Strategy::Adaptive { .. } => return Err(PruneError::NeedsPrompt),
    };

    let targets = water_fill(&weights, &lo, hi, total);
    Ok(round_to_total(&targets, &lo, hi, total, &priority))
}

/// The uniform split of `total` within `bounds` (real-valued): equal shares,
/// what a capped layer cannot hold flowing to the others.
pub(super) fn uniform_targets(total: usize, bounds: &LayerBounds) -> Vec<f64> {
    water_fill(&vec![1.0; bounds.n_layers()], bounds.lo(), bounds.hi(), total)
}

/// Per-layer kept fraction of the prompt (`budget / L`); an empty prompt loses
/// nothing, so it reports 1.0.
pub fn kept_fractions(budgets: &[usize], prompt_len: usize) -> Vec<f64> {
    budgets.iter().map(|&b| if prompt_len == 0 { 1.0 } else { b as f64 / prompt_len as f64 }).collect()
}

/// Applies a saved per-layer profile: kept fractions are rescaled so the
/// budgets sum exactly to `total` (only their ratios matter), within `limits`.
///
/// `prompt_len` is the length the fractions refer to; a zero-length prompt can
/// only hold a zero total.
pub fn budgets_from_fractions(
    fractions: &[f64],
    prompt_len: usize,
    total: usize,
    limits: LayerLimits,
) -> Result<Vec<usize>, PruneError> {
    let limits = LayerLimits { min: limits.min.min(prompt_len), max: limits.max.min(prompt_len) };
    allocate(&Strategy::Manual { fractions: fractions.to_vec() }, fractions.len(), total, limits)
}

/// As [`budgets_from_fractions`], within per-layer bounds.
pub fn budgets_from_fractions_within(
    fractions: &[f64],
    total: usize,
    bounds: &LayerBounds,
) -> Result<Vec<usize>, PruneError> {
    allocate_within(&Strategy::Manual { fractions: fractions.to_vec() }, total, bounds)
}

fn check_len(what: &'static str, v: &[f64], n: usize) -> Result<(), PruneError> {
    if v.len() != n {
        return Err(PruneError::LengthMismatch { what, expected: n, got: v.len() });
    }
    Ok(())
}

fn check_finite(what: &'static str, v: &[f64]) -> Result<(), PruneError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(PruneError::NonFinite { what, index, value: v[index] }),
        None => Ok(()),
    }
}

fn snapped_ceil(x: f64) -> usize {
    let r = x.round();
    if (x - r).abs() < SNAP_EPS {
        r.max(0.0) as usize
    } else {
        x.ceil().max(0.0) as usize
    }
}

/// Linear schedule from `2 - 1/beta` (bottom) down to `1/beta` (top); the
/// mean is 1, so it is the kvpress schedule divided by `total / N`.
fn pyramid_weights(beta: f64, n: usize) -> Result<Vec<f64>, PruneError> {
    if !beta.is_finite() || beta < 1.0 {
        return Err(PruneError::InvalidBeta(beta));
    }
    if n == 1 {
        return Ok(vec![1.0]);
    }
    let top = 1.0 / beta;
    let bottom = 2.0 - top;
    let step = (top - bottom) / (n - 1) as f64;
    Ok((0..n).map(|i| bottom + step * i as f64).collect())
}

/// Raw (unnormalised, non-negative, positive-sum) weights for a DepthKV rule.
fn depth_weights(s: &[f64], rule: &DepthRule) -> Result<Vec<f64>, PruneError> {
    let n = s.len();
    let w: Vec<f64> = match rule {
        DepthRule::Proportional => s.iter().map(|&x| x.max(0.0)).collect(),
        DepthRule::Softmax { temperature } => {
            let t = *temperature;
            if !t.is_finite() || t <= 0.0 {
                return Err(PruneError::InvalidTemperature(t));
            }
            // Scaling by the largest magnitude makes the temperature unit-free.
            let scale = s.iter().fold(0.0f64, |m, &x| m.max(x.abs()));
            if scale == 0.0 {
                vec![1.0; n]
            } else {
                let z: Vec<f64> = s.iter().map(|&x| x / scale / t).collect();
                let zmax = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                z.iter().map(|&v| (v - zmax).exp()).collect()
            }
        }
        DepthRule::Rank => {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| s[a].total_cmp(&s[b]).then(a.cmp(&b)));
            let mut w = vec![0.0; n];
            let mut i = 0;
            while i < n {
                let mut j = i;
                while j + 1 < n && s[order[j + 1]] == s[order[i]] {
                    j += 1;
                }
                // Ranks i+1..=j+1 shared equally, so equal sensitivities stay uniform.
                let mean_rank = (i + j) as f64 / 2.0 + 1.0;
                for &k in &order[i..=j] {
                    w[k] = mean_rank;
                }
                i = j + 1;
            }
            w
        }
    };
    let sum: f64 = w.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        Ok(w)
    } else {
        Ok(vec![1.0; n])
    }
}

fn manual_weights(fractions: &[f64], n: usize) -> Result<Vec<f64>, PruneError> {
    check_len("fractions", fractions, n)?;
    check_finite("fractions", fractions)?;
    if let Some(index) = fractions.iter().position(|&f| f < 0.0) {
        return Err(PruneError::Negative { what: "fractions", index, value: fractions[index] });
    }
    if fractions.iter().all(|&f| f == 0.0) {
        return Ok(vec![1.0; n]);
    }
    Ok(fractions.to_vec())
}

/// Real-valued targets `clamp(lambda * w_i, lo_i, hi_i)` summing to `total`.
///
/// Requires `sum(lo) <= total <= sum(hi)`. Layers with zero weight sit at their
/// lower bound unless the weighted layers are all full, in which case the rest
/// is spread evenly over them (so a feasible total is always met).
fn water_fill(w: &[f64], lo: &[usize], hi: &[usize], total: usize) -> Vec<f64> {
    let n = w.len();
    // Relative to the largest weight, anything below 1e-200 is treated as zero
    // so every kink (bound / weight) below stays finite.
    let wmax = w.iter().cloned().fold(0.0f64, f64::max);
    let w: Vec<f64> = w
        .iter()
        .map(|&v| {
            let r = if wmax > 0.0 { v / wmax } else { 0.0 };
            if r >= 1e-200 {
                r
            } else {
                0.0
            }
        })
        .collect();
    let (pos, zero): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| w[i] > 0.0);
    let mut x: Vec<f64> = lo.iter().map(|&v| v as f64).collect();
    let zero_lo: usize = zero.iter().map(|&i| lo[i]).sum();
    let pos_hi: usize = pos.iter().map(|&i| hi[i]).sum();
    let target = total - zero_lo;
    if target >= pos_hi {
        for &i in &pos {
            x[i] = hi[i] as f64;
        }
        if !zero.is_empty() {
            let zw = vec![1.0; zero.len()];
            let zlo: Vec<usize> = zero.iter().map(|&i| lo[i]).collect();
            let zhi: Vec<usize> = zero.iter().map(|&i| hi[i]).collect();
            let zx = water_fill(&zw, &zlo, &zhi, total - pos_hi);
            for (k, &i) in zero.iter().enumerate() {
                x[i] = zx[k];
            }
        }
        return x;
    }
    let t = target as f64;
    let pos_lo: f64 = pos.iter().map(|&i| lo[i] as f64).sum();
    if t <= pos_lo {
        return x;
    }
    // filled(lambda) = sum clamp(lambda * w_i, lo_i, hi_i) is piecewise linear
    // with kinks at lo_i / w_i and hi_i / w_i. Walk the kinks to the first one
    // that reaches the target; between it and the previous kink the set of
    // unclamped layers is fixed, and they share what the clamped ones leave
    // exactly by weight. This is the fixed point of iterative water-filling,
    // found without iterating (and without float bisection on a huge range).
    let filled = |lambda: f64| -> f64 { pos.iter().map(|&i| (lambda * w[i]).clamp(lo[i] as f64, hi[i] as f64)).sum() };
    let mut kinks: Vec<f64> = pos.iter().flat_map(|&i| [lo[i] as f64 / w[i], hi[i] as f64 / w[i]]).collect();
    kinks.sort_by(f64::total_cmp);
    kinks.dedup();
    let mut prev = 0.0f64;
    let mut next = None;
    for &k in &kinks {
        if k <= prev {
            continue;
        }
        if filled(k) >= t {
            next = Some(k);
            break;
        }
        prev = k;
    }
    let Some(next) = next else {
        for &i in &pos {
            x[i] = hi[i] as f64;
        }
        return x;
    };
    let mut rest = t;
    let mut wsum = 0.0;
    let mut free = Vec::new();
    for &i in &pos {
        let (klo, khi) = (lo[i] as f64 / w[i], hi[i] as f64 / w[i]);
        if khi <= prev {
            x[i] = hi[i] as f64;
            rest -= x[i];
        } else if klo >= next {
            rest -= x[i]; // already lo
        } else {
            free.push(i);
            wsum += w[i];
        }
    }
    for &i in &free {
        x[i] = (rest * w[i] / wsum).clamp(lo[i] as f64, hi[i] as f64);
    }
    x
}

/// Largest-remainder rounding of `x` (with `lo <= x <= hi`) to integers that
/// sum exactly to `total`.
///
/// Equal remainders go to the higher `priority` (the strategy's own ranking,
/// e.g. sensitivity, so float noise never lets a less sensitive layer win),
/// then to the lower layer index.
pub(super) fn round_to_total(x: &[f64], lo: &[usize], hi: &[usize], total: usize, priority: &[f64]) -> Vec<usize> {
    let n = x.len();
    let mut out = vec![0usize; n];
    let mut frac = vec![0.0f64; n];
    for i in 0..n {
        let mut v = x[i];
        if (v - v.round()).abs() < SNAP_EPS {
            v = v.round();
        }
        let f = v.floor().max(0.0);
        out[i] = (f as usize).clamp(lo[i], hi[i]);
        frac[i] = (v - out[i] as f64).clamp(-1.0, 1.0);
    }
    let sum: usize = out.iter().sum();
    if sum < total {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| frac[b].total_cmp(&frac[a]).then(priority[b].total_cmp(&priority[a])).then(a.cmp(&b)));
        let mut need = total - sum;
        while need > 0 {
            let mut moved = false;
            for &i in &order {
                if need == 0 {
                    break;
                }
                if out[i] < hi[i] {
                    out[i] += 1;
                    need -= 1;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    } else if sum > total {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| frac[a].total_cmp(&frac[b]).then(priority[a].total_cmp(&priority[b])).then(b.cmp(&a)));
        let mut extra = sum - total;
        while extra > 0 {
            let mut moved = false;
            for &i in &order {
                if extra == 0 {
                    break;
                }
                if out[i] > lo[i] {
                    out[i] -= 1;
                    extra -= 1;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(min: usize, max: usize) -> LayerLimits {
        LayerLimits { min, max }
    }

    fn dk(s: Vec<f64>, rule: DepthRule, mix: f64, floor: f64) -> Strategy {
        Strategy::DepthKv { sensitivity: s, rule, mix, floor }
    }

    #[test]
    fn total_slots_rounds_and_clamps() {
        assert_eq!(total_slots(0.5, 100, 4), 200);
        assert_eq!(total_slots(0.5, 3, 1), 2); // 1.5 rounds away from zero
        assert_eq!(total_slots(1.5, 10, 2), 20);
        assert_eq!(total_slots(f64::NAN, 10, 2), 0);
        assert_eq!(total_slots(0.3, 0, 8), 0);
    }

    #[test]
    fn limits_new_caps_min_at_prompt() {
        assert_eq!(LayerLimits::new(4, 32, 100), lim(36, 100));
        assert_eq!(LayerLimits::new(4, 32, 10), lim(10, 10));
    }

    #[test]
    fn feasible_total_clamps() {
        assert_eq!(feasible_total(5, 4, lim(3, 10)), 12);
        assert_eq!(feasible_total(50, 4, lim(3, 10)), 40);
        assert_eq!(feasible_total(20, 4, lim(3, 10)), 20);
    }

    #[test]
    fn uniform_divisible_is_equal() {
        assert_eq!(allocate(&Strategy::Uniform, 4, 40, lim(0, 100)).unwrap(), vec![10; 4]);
    }

    #[test]
    fn uniform_remainder_goes_to_lower_layers() {
        assert_eq!(allocate(&Strategy::Uniform, 3, 11, lim(0, 100)).unwrap(), vec![4, 4, 3]);
    }

    #[test]
    fn infeasible_total_is_an_error() {
        let e = allocate(&Strategy::Uniform, 4, 11, lim(3, 10)).unwrap_err();
        assert!(matches!(e, PruneError::InfeasibleTotal { lo: 12, hi: 40, .. }));
        let e = allocate(&Strategy::Uniform, 4, 41, lim(3, 10)).unwrap_err();
        assert!(e.to_string().contains("feasible_total"));
    }

    #[test]
    fn bad_limits_are_an_error() {
        assert_eq!(allocate(&Strategy::Uniform, 2, 5, lim(4, 3)), Err(PruneError::InvalidLimits { min: 4, max: 3 }));
    }

    #[test]
    fn zero_layers() {
        assert_eq!(allocate(&Strategy::Uniform, 0, 0, lim(1, 5)).unwrap(), Vec::<usize>::new());
        assert!(allocate(&Strategy::Uniform, 0, 1, lim(1, 5)).is_err());
    }

    #[test]
    fn pyramid_decreases_with_depth() {
        let b = allocate(&Strategy::Pyramid { beta: 20.0 }, 4, 400, lim(0, 1000)).unwrap();
        assert_eq!(b.iter().sum::<usize>(), 400);
        assert!(b.windows(2).all(|w| w[0] >= w[1]), "{b:?}");
        // kvpress: top = 400/(4*20) = 5, bottom = 200 - 5 = 195
        assert_eq!(b[3], 5);
        assert_eq!(b[0], 195);
    }

    #[test]
    fn pyramid_clamps_and_refills() {
        let b = allocate(&Strategy::Pyramid { beta: 20.0 }, 4, 200, lim(10, 60)).unwrap();
        assert_eq!(b.iter().sum::<usize>(), 200);
        assert!(b.iter().all(|&v| (10..=60).contains(&v)), "{b:?}");
        assert_eq!(b[0], 60);
        assert!(b.windows(2).all(|w| w[0] >= w[1]), "{b:?}");
    }

    #[test]
    fn pyramid_bad_beta() {
        for beta in [0.5, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                allocate(&Strategy::Pyramid { beta }, 4, 40, lim(0, 100)),
                Err(PruneError::InvalidBeta(_))
            ));
        }
    }

    #[test]
    fn depthkv_equal_sensitivity_is_uniform() {
        let u = allocate(&Strategy::Uniform, 5, 123, lim(3, 50)).unwrap();
        for rule in [DepthRule::Proportional, DepthRule::Softmax { temperature: 0.3 }, DepthRule::Rank] {
            for s in [0.7, 0.0, -2.0] {
                let d = allocate(&dk(vec![s; 5], rule.clone(), 0.2, 0.1), 5, 123, lim(3, 50));
                assert_eq!(d.unwrap(), u, "{rule:?} s={s}");
            }
        }
    }

    #[test]
    fn depthkv_proportional_follows_sensitivity() {
        let b =
            allocate(&dk(vec![1.0, 3.0, -1.0, 0.0], DepthRule::Proportional, 0.0, 0.0), 4, 40, lim(2, 100)).unwrap();
        // weights 1:3:0:0 over what is left after the two zero layers sit at min.
        assert_eq!(b, vec![9, 27, 2, 2]);
    }

    #[test]
    fn depthkv_zero_weight_layers_fill_when_others_full() {
        let b = allocate(&dk(vec![1.0, 0.0, 0.0], DepthRule::Proportional, 0.0, 0.0), 3, 25, lim(0, 10)).unwrap();
        assert_eq!(b, vec![10, 8, 7]);
    }

    #[test]
    fn depthkv_rank_weights() {
        let b = allocate(&dk(vec![0.5, 0.1, 0.9], DepthRule::Rank, 0.0, 0.0), 3, 60, lim(0, 100)).unwrap();
        assert_eq!(b, vec![20, 10, 30]);
    }

    #[test]
    fn depthkv_softmax_sharpens_with_low_temperature() {
        let s = vec![0.1, 0.2, 1.0];
        let hot =
            allocate(&dk(s.clone(), DepthRule::Softmax { temperature: 10.0 }, 0.0, 0.0), 3, 300, lim(0, 300)).unwrap();
        let cold = allocate(&dk(s, DepthRule::Softmax { temperature: 0.1 }, 0.0, 0.0), 3, 300, lim(0, 300)).unwrap();
        assert!(cold[2] > hot[2]);
        assert!(hot.iter().all(|&v| (90..=110).contains(&v)), "{hot:?}");
    }

    #[test]
    fn rounding_ties_favour_the_more_sensitive_layer() {
        // At T = 0.01 the two small weights vanish next to the mixed-in uniform
        // part, so their targets are float-equal; sensitivity breaks the tie.
        let b = allocate(
            &dk(vec![0.0, 0.0, 0.5, 1.0], DepthRule::Softmax { temperature: 0.01 }, 0.5, 0.0),
            4,
            29,
            lim(0, 100),
        )
        .unwrap();
        assert!(b[2] >= b[0] && b[2] >= b[1], "{b:?}");
        assert_eq!(b.iter().sum::<usize>(), 29);
    }

    #[test]
    fn extreme_weights_still_sum_exactly() {
        let tiny = Strategy::Manual { fractions: vec![1e-310, 1.0, 1e-300] };
        assert_eq!(allocate(&tiny, 3, 50, lim(5, 40)).unwrap(), vec![5, 40, 5]);
        let b = allocate(&tiny, 3, 100, lim(5, 40)).unwrap();
        assert_eq!(b.iter().sum::<usize>(), 100);
        assert_eq!(b[1], 40);
        let sharp = dk(vec![0.1, 0.5, 1.0], DepthRule::Softmax { temperature: 1e-6 }, 0.0, 0.0);
        assert_eq!(allocate(&sharp, 3, 60, lim(2, 50)).unwrap(), vec![5, 5, 50]);
    }

    #[test]
    fn depthkv_mix_one_is_uniform() {
        let b = allocate(&dk(vec![0.0, 5.0, 1.0], DepthRule::Proportional, 1.0, 0.0), 3, 30, lim(0, 100)).unwrap();
        assert_eq!(b, vec![10, 10, 10]);
    }

    #[test]
    fn depthkv_floor_is_a_minimum() {
        let b =
            allocate(&dk(vec![1.0, 0.0, 0.0, 0.0], DepthRule::Proportional, 0.0, 0.1), 4, 100, lim(2, 100)).unwrap();
        assert_eq!(b, vec![70, 10, 10, 10]);
    }

    #[test]
    fn depthkv_unaffordable_floor_drops_to_uniform_share() {
        let b =
            allocate(&dk(vec![1.0, 0.0, 0.0, 0.0], DepthRule::Proportional, 0.0, 0.9), 4, 100, lim(2, 100)).unwrap();
        assert_eq!(b, vec![25; 4]);
    }

    #[test]
    fn depthkv_validation() {
        let l = lim(0, 10);
        let e = |s: Strategy| allocate(&s, 3, 9, l).unwrap_err();
        assert_eq!(
            e(dk(vec![1.0; 2], DepthRule::Rank, 0.0, 0.0)),
            PruneError::LengthMismatch { what: "sensitivity", expected: 3, got: 2 }
        );
        assert!(matches!(
            e(dk(vec![1.0, f64::NAN, 1.0], DepthRule::Rank, 0.0, 0.0)),
            PruneError::NonFinite { index: 1, .. }
        ));
        assert!(matches!(e(dk(vec![1.0; 3], DepthRule::Rank, 1.5, 0.0)), PruneError::InvalidMix(_)));
        assert!(matches!(e(dk(vec![1.0; 3], DepthRule::Rank, f64::NAN, 0.0)), PruneError::InvalidMix(_)));
        assert!(matches!(e(dk(vec![1.0; 3], DepthRule::Rank, 0.0, 1.0)), PruneError::InvalidFloor(_)));
        assert!(matches!(
            e(dk(vec![1.0; 3], DepthRule::Softmax { temperature: 0.0 }, 0.0, 0.0)),
            PruneError::InvalidTemperature(_)
        ));
    }

    #[test]
    fn manual_rescales_and_validates() {
        let b = allocate(&Strategy::Manual { fractions: vec![0.1, 0.3] }, 2, 40, lim(0, 100)).unwrap();
        assert_eq!(b, vec![10, 30]);
        assert!(matches!(
            allocate(&Strategy::Manual { fractions: vec![0.1, -0.3] }, 2, 40, lim(0, 100)),
            Err(PruneError::Negative { index: 1, .. })
        ));
    }

    #[test]
    fn fractions_round_trip() {
        let budgets = vec![10, 30, 20];
        let f = kept_fractions(&budgets, 100);
        assert_eq!(f, vec![0.1, 0.3, 0.2]);
        assert_eq!(budgets_from_fractions(&f, 100, 60, lim(5, 100)).unwrap(), budgets);
        assert_eq!(budgets_from_fractions(&f, 100, 120, lim(5, 100)).unwrap(), vec![20, 60, 40]);
        assert_eq!(kept_fractions(&[0, 0], 0), vec![1.0, 1.0]);
    }

    #[test]
    fn strategy_names() {
        for k in StrategyKind::ALL {
            assert_eq!(parse_strategy_name(k.name()).unwrap(), k);
            assert_eq!(k.to_string(), k.name());
        }
        assert_eq!(parse_strategy_name(" DepthKV_Rank ").unwrap(), StrategyKind::DepthKvRank);
        let e = parse_strategy_name("snapkv").unwrap_err().to_string();
        assert!(e.contains("'snapkv'") && e.contains("depthkv-softmax"), "{e}");
    }

    #[test]
    fn strategy_kind_of_strategy() {
        assert_eq!(dk(vec![], DepthRule::Softmax { temperature: 1.0 }, 0.0, 0.0).kind(), StrategyKind::DepthKvSoftmax);
        assert_eq!(Strategy::Uniform.kind(), StrategyKind::Uniform);
    }

    #[test]
    fn strategy_serde_round_trip() {
        let s = dk(vec![0.5, 1.0], DepthRule::Softmax { temperature: 0.5 }, 0.1, 0.05);
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains("\"kind\":\"depthkv\""), "{j}");
        assert_eq!(serde_json::from_str::<Strategy>(&j).unwrap(), s);
        let u: Strategy = serde_json::from_str(r#"{"kind":"uniform"}"#).unwrap();
        assert_eq!(u, Strategy::Uniform);
    }
}
