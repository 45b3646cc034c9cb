//! Resampling statistics for calibration and evaluation: bootstrap
//! confidence intervals and permutation tests. Every function takes a seed
//! and gives the same answer for the same inputs and seed.
//!
//! Permutation p-values use the `(b + 1) / (m + 1)` form, where `b` counts
//! the `m` random rearrangements whose statistic is at least the observed
//! one. Counting the observed arrangement as one of the possibilities keeps
//! the test valid and means a p-value is never zero.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Relative slack when comparing a resampled statistic with the observed one,
/// so that rearrangements that leave the statistic unchanged up to rounding
/// count as "at least as extreme".
const TIE_EPS: f64 = 1e-9;

/// Percentile bootstrap confidence interval for the mean.
///
/// Returns `(mean, lo, hi)` where `lo`/`hi` are the `(1 - level)/2` and
/// `(1 + level)/2` quantiles (linearly interpolated) of `n_boot` resampled
/// means. With no samples all three are NaN; with one sample, or
/// `n_boot == 0`, the interval collapses onto the mean.
///
/// # Panics
/// If `level` is not strictly between 0 and 1.
pub fn bootstrap_mean_ci(samples: &[f64], n_boot: usize, level: f64, seed: u64) -> (f64, f64, f64) {
    assert!(level > 0.0 && level < 1.0, "confidence level must be in (0, 1), got {level}");
    let n = samples.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mean = mean(samples);
    if n == 1 || n_boot == 0 {
        return (mean, mean, mean);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..n_boot)
        .map(|_| {
            let sum: f64 = (0..n).map(|_| samples[rng.random_range(0..n)]).sum();
            sum / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    (mean, quantile_sorted(&means, alpha), quantile_sorted(&means, 1.0 - alpha))
}

/// Permutation test of "all layers are equally sensitive".
///
/// `matrix[p][l]` is the damage measured on prompt `p` when layer `l` alone
/// is pruned. The statistic is the variance across layers of the per-layer
/// means. Under the null hypothesis the layer labels are exchangeable within
/// each prompt, so each of the `n_perm` rearrangements shuffles every row
/// independently. Returns `(b + 1) / (n_perm + 1)`.
///
/// With fewer than two layers or no prompts there is nothing to compare and
/// the result is 1. If any measurement is NaN or infinite the result is NaN
/// (a broken measurement must not read as a significant one).
///
/// # Panics
/// If the rows do not all have the same length.
pub fn permutation_test_equal_layers(matrix: &[Vec<f64>], n_perm: usize, seed: u64) -> f64 {
    let n_layers = matrix.first().map_or(0, Vec::len);
    for (p, row) in matrix.iter().enumerate() {
        assert_eq!(row.len(), n_layers, "prompt {p} has {} layers, prompt 0 has {n_layers}", row.len());
    }
    if n_layers < 2 || matrix.is_empty() {
        return 1.0;
    }
    if matrix.iter().flatten().any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    let mut sums = vec![0.0; n_layers];
    for row in matrix {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s += v;
        }
    }
    // Means share the divisor n_prompts, so the variance of the sums ranks
    // arrangements exactly as the variance of the means does.
    let observed = variance(&sums);
    let threshold = observed * (1.0 - TIE_EPS);

    let mut rng = StdRng::seed_from_u64(seed);
    let mut row_buf = vec![0.0; n_layers];
    let mut at_least = 0usize;
    for _ in 0..n_perm {
        sums.iter_mut().for_each(|s| *s = 0.0);
        for row in matrix {
            row_buf.copy_from_slice(row);
            row_buf.shuffle(&mut rng);
            for (s, &v) in sums.iter_mut().zip(&row_buf) {
                *s += v;
            }
        }
        if variance(&sums) >= threshold {
            at_least += 1;
        }
    }
    (at_least + 1) as f64 / (n_perm + 1) as f64
}

/// Two-sided paired sign-flip permutation test of "a and b have the same
/// mean". Returns `(mean(a - b), p)`, where `p = (b + 1) / (n_perm + 1)` and
/// `b` counts random sign flips of the differences whose mean is at least as
/// far from zero as the observed mean.
///
/// With no pairs the mean difference is NaN and p is 1. If any difference is
/// NaN or infinite, p is NaN.
///
/// # Panics
/// If `a` and `b` differ in length.
pub fn paired_permutation_test(a: &[f64], b: &[f64], n_perm: usize, seed: u64) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "paired samples must have the same length ({} vs {})", a.len(), b.len());
    if a.is_empty() {
        return (f64::NAN, 1.0);
    }
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = diffs.len() as f64;
    let mean_diff = diffs.iter().sum::<f64>() / n;
    if diffs.iter().any(|d| !d.is_finite()) {
        return (mean_diff, f64::NAN);
    }
    let threshold = mean_diff.abs() * (1.0 - TIE_EPS);

    let mut rng = StdRng::seed_from_u64(seed);
    let mut at_least = 0usize;
    for _ in 0..n_perm {
        let sum: f64 = diffs.iter().map(|&d| if rng.random::<bool>() { d } else { -d }).sum();
        if (sum / n).abs() >= threshold {
            at_least += 1;
        }
    }
    (mean_diff, (at_least + 1) as f64 / (n_perm + 1) as f64)
}

/// Arithmetic mean; NaN for an empty slice.
pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Population variance (divisor n).
fn variance(xs: &[f64]) -> f64 {
    let m = mean(xs);
    xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64
}

/// Linear-interpolation quantile of sorted, non-empty data.
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::Rng;

    /// Deterministic pseudo-noise in [-0.5, 0.5) for building test data.
    fn noise(seed: u64, n: usize) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random::<f64>() - 0.5).collect()
    }

    #[test]
    fn quantiles_interpolate() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile_sorted(&xs, 0.0), 1.0);
        assert_eq!(quantile_sorted(&xs, 0.5), 3.0);
        assert_eq!(quantile_sorted(&xs, 1.0), 5.0);
        assert!((quantile_sorted(&xs, 0.125) - 1.5).abs() < 1e-12);
        assert!((variance(&xs) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_edge_cases() {
        let (m, lo, hi) = bootstrap_mean_ci(&[], 100, 0.95, 1);
        assert!(m.is_nan() && lo.is_nan() && hi.is_nan());
        assert_eq!(bootstrap_mean_ci(&[3.5], 100, 0.95, 1), (3.5, 3.5, 3.5));
        assert_eq!(bootstrap_mean_ci(&[1.0, 3.0], 0, 0.95, 1), (2.0, 2.0, 2.0));
        assert_eq!(bootstrap_mean_ci(&[2.0; 10], 500, 0.9, 7), (2.0, 2.0, 2.0));
    }

    #[test]
    #[should_panic(expected = "confidence level")]
    fn bootstrap_rejects_bad_level() {
        bootstrap_mean_ci(&[1.0, 2.0], 10, 1.0, 0);
    }

    #[test]
    fn bootstrap_interval_matches_normal_theory() {
        // 1..=100: mean 50.5, population sd 28.866, standard error 2.887,
        // so the 95% interval is about 50.5 +- 5.66.
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        let (m, lo, hi) = bootstrap_mean_ci(&xs, 4000, 0.95, 42);
        assert_eq!(m, 50.5);
        assert!((44.0..46.0).contains(&lo), "lo {lo}");
        assert!((55.0..57.0).contains(&hi), "hi {hi}");
        // A narrower level gives a narrower interval.
        let (_, lo80, hi80) = bootstrap_mean_ci(&xs, 4000, 0.80, 42);
        assert!(lo80 > lo && hi80 < hi);
        assert!((hi80 - lo80) < 0.8 * (hi - lo));
    }

    #[test]
    fn bootstrap_is_deterministic_per_seed() {
        let xs = noise(3, 40);
        let a = bootstrap_mean_ci(&xs, 500, 0.95, 9);
        assert_eq!(a, bootstrap_mean_ci(&xs, 500, 0.95, 9));
        assert_ne!(a, bootstrap_mean_ci(&xs, 500, 0.95, 10));
    }

    #[test]
    fn identical_layers_give_p_one() {
        // Every layer equal within each prompt: no rearrangement can differ.
        let matrix: Vec<Vec<f64>> = (0..12).map(|p| vec![p as f64 * 0.3; 8]).collect();
        assert_eq!(permutation_test_equal_layers(&matrix, 499, 1), 1.0);
    }

    #[test]
    fn one_dominant_layer_gives_minimum_p() {
        let m = 999;
        let matrix: Vec<Vec<f64>> = (0..20)
            .map(|p| {
                let mut row = noise(100 + p, 10);
                row[3] += 10.0;
                row
            })
            .collect();
        let p = permutation_test_equal_layers(&matrix, m, 5);
        assert_eq!(p, 1.0 / (m as f64 + 1.0));
    }

    #[test]
    fn exchangeable_noise_gives_unremarkable_p() {
        let matrix: Vec<Vec<f64>> = (0..20).map(|p| noise(500 + p, 10)).collect();
        let p = permutation_test_equal_layers(&matrix, 999, 5);
        assert!(p > 0.05, "p = {p}");
        assert_eq!(p, permutation_test_equal_layers(&matrix, 999, 5));
    }

    #[test]
    fn equal_layers_test_degenerate_inputs() {
        assert_eq!(permutation_test_equal_layers(&[], 100, 0), 1.0);
        assert_eq!(permutation_test_equal_layers(&[vec![1.0], vec![5.0]], 100, 0), 1.0);
        // Zero permutations: (0 + 1) / (0 + 1).
        assert_eq!(permutation_test_equal_layers(&[vec![0.0, 9.0]], 0, 0), 1.0);
    }

    #[test]
    fn non_finite_measurements_give_nan_p() {
        let mut matrix: Vec<Vec<f64>> = (0..5).map(|p| noise(700 + p, 4)).collect();
        matrix[2][1] = f64::NAN;
        assert!(permutation_test_equal_layers(&matrix, 99, 0).is_nan());
        matrix[2][1] = f64::INFINITY;
        assert!(permutation_test_equal_layers(&matrix, 99, 0).is_nan());
        let (d, p) = paired_permutation_test(&[1.0, f64::NAN], &[0.0, 0.0], 99, 0);
        assert!(d.is_nan() && p.is_nan());
    }

    #[test]
    #[should_panic(expected = "prompt 1 has 2 layers")]
    fn equal_layers_test_rejects_ragged_rows() {
        permutation_test_equal_layers(&[vec![1.0, 2.0, 3.0], vec![1.0, 2.0]], 10, 0);
    }

    #[test]
    fn paired_identical_samples() {
        let a = noise(1, 15);
        assert_eq!(paired_permutation_test(&a, &a, 999, 3), (0.0, 1.0));
    }

    #[test]
    fn paired_constant_shift_is_significant() {
        let b = noise(2, 20);
        let a: Vec<f64> = b.iter().map(|x| x + 1.0).collect();
        let (d, p) = paired_permutation_test(&a, &b, 999, 3);
        assert!((d - 1.0).abs() < 1e-12);
        // Only the all-plus and all-minus flips (2 of 2^20) reach |mean| 1.
        assert_eq!(p, 1.0 / 1000.0);
        let (d2, p2) = paired_permutation_test(&b, &a, 999, 3);
        assert!((d2 + 1.0).abs() < 1e-12);
        assert_eq!(p2, p);
    }

    #[test]
    fn paired_small_sample_p_matches_exact_enumeration() {
        // Differences 1, 2, 3: of the 8 sign patterns, |mean| >= 2 only for
        // (+,+,+) and (-,-,-), so the exact p is 1/4. Monte Carlo should be near.
        let a = [1.0, 2.0, 3.0];
        let b = [0.0; 3];
        let (d, p) = paired_permutation_test(&a, &b, 20_000, 11);
        assert_eq!(d, 2.0);
        assert!((p - 0.25).abs() < 0.02, "p = {p}");
    }

    #[test]
    fn paired_degenerate_inputs() {
        let (d, p) = paired_permutation_test(&[], &[], 10, 0);
        assert!(d.is_nan());
        assert_eq!(p, 1.0);
    }

    #[test]
    #[should_panic(expected = "same length")]
    fn paired_rejects_unequal_lengths() {
        paired_permutation_test(&[1.0], &[1.0, 2.0], 10, 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn p_values_are_in_unit_interval_and_never_zero(
            rows in proptest::collection::vec(proptest::collection::vec(-5.0f64..5.0, 4), 1..6),
            seed in any::<u64>(),
        ) {
            let p = permutation_test_equal_layers(&rows, 50, seed);
            prop_assert!((1.0 / 51.0..=1.0).contains(&p));
            let a: Vec<f64> = rows.iter().map(|r| r[0]).collect();
            let b: Vec<f64> = rows.iter().map(|r| r[1]).collect();
            let (_, p2) = paired_permutation_test(&a, &b, 50, seed);
            prop_assert!((1.0 / 51.0..=1.0).contains(&p2));
        }

        #[test]
        fn bootstrap_interval_brackets_within_sample_range(
            xs in proptest::collection::vec(-100.0f64..100.0, 2..30),
            seed in any::<u64>(),
        ) {
            let (m, lo, hi) = bootstrap_mean_ci(&xs, 200, 0.9, seed);
            let min = xs.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(lo <= hi);
            prop_assert!(lo >= min - 1e-9 && hi <= max + 1e-9);
            prop_assert!(m >= min - 1e-9 && m <= max + 1e-9);
        }
    }
}
