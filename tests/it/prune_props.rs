//! Property tests for the budget allocator, the rebalancer and token selection.

use depthkv::prune::{
    allocate, feasible_total, rebalance, select_layer, DepthRule, LayerLimits, LayerStats, PruneError, Scorer,
    SelectConfig, Strategy as Alloc,
};
use proptest::prelude::*;

/// Fixed case count; no regression files (this crate keeps none).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Layer count, limits and a feasible total.
fn setup() -> impl Strategy<Value = (usize, LayerLimits, usize)> {
    (1usize..40, 0usize..300, 0usize..300, any::<u64>()).prop_map(|(n, a, b, r)| {
        let limits = LayerLimits { min: a.min(b), max: a.max(b) };
        let lo = n * limits.min;
        let hi = n * limits.max;
        let total = lo + (r as usize) % (hi - lo + 1);
        (n, limits, total)
    })
}

fn rule() -> impl Strategy<Value = DepthRule> {
    prop_oneof![
        Just(DepthRule::Proportional),
        Just(DepthRule::Rank),
        (0.01f64..10.0).prop_map(|temperature| DepthRule::Softmax { temperature }),
    ]
}

/// Any valid strategy for `n` layers.
pub fn strategy(n: usize) -> impl Strategy<Value = Alloc> {
    prop_oneof![
        Just(Alloc::Uniform),
        (1.0f64..50.0).prop_map(|beta| Alloc::Pyramid { beta }),
        (
            prop::collection::vec(-2.0f64..10.0, n),
            rule(),
            prop_oneof![Just(0.0), 0.0f64..=1.0],
            prop_oneof![Just(0.0), 0.0f64..0.99],
        )
            .prop_map(|(sensitivity, rule, mix, floor)| Alloc::DepthKv { sensitivity, rule, mix, floor }),
        prop::collection::vec(0.0f64..1.0, n).prop_map(|fractions| Alloc::Manual { fractions }),
    ]
}

fn setup_with_strategy() -> impl Strategy<Value = (usize, LayerLimits, usize, Alloc)> {
    setup().prop_flat_map(|(n, l, t)| (Just(n), Just(l), Just(t), strategy(n)))
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn allocate_sums_exactly_within_limits((n, limits, total, s) in setup_with_strategy()) {
        let b = allocate(&s, n, total, limits).unwrap();
        prop_assert_eq!(b.len(), n);
        prop_assert_eq!(b.iter().sum::<usize>(), total);
        prop_assert!(b.iter().all(|&v| v >= limits.min && v <= limits.max), "{:?}", b);
        // Deterministic.
        prop_assert_eq!(allocate(&s, n, total, limits).unwrap(), b);
    }

    #[test]
    fn allocate_rejects_infeasible_totals(
        (n, limits, _t) in setup(), below in any::<bool>(), off in 1usize..100
    ) {
        let total = if below {
            prop_assume!(n * limits.min >= off);
            n * limits.min - off
        } else {
            n * limits.max + off
        };
        let is_infeasible = matches!(
            allocate(&Alloc::Uniform, n, total, limits),
            Err(PruneError::InfeasibleTotal { .. })
        );
        prop_assert!(is_infeasible);
        let fixed = feasible_total(total, n, limits);
        prop_assert!(allocate(&Alloc::Uniform, n, fixed, limits).is_ok());
    }

    #[test]
    fn feasible_total_is_identity_inside_range((n, limits, total) in setup()) {
        prop_assert_eq!(feasible_total(total, n, limits), total);
    }

    #[test]
    fn uniform_is_as_even_as_possible((n, limits, total) in setup()) {
        let b = allocate(&Alloc::Uniform, n, total, limits).unwrap();
        let (lo, hi) = (b.iter().min().unwrap(), b.iter().max().unwrap());
        prop_assert!(hi - lo <= 1, "{:?}", b);
        prop_assert!(b.windows(2).all(|w| w[0] >= w[1]), "extra slots go to lower layers: {:?}", b);
        if total % n == 0 {
            prop_assert!(b.iter().all(|&v| v == total / n));
        }
    }

    #[test]
    fn depthkv_equal_sensitivity_is_uniform(
        (n, limits, total) in setup(), s in -3.0f64..3.0, rule in rule(),
        mix in 0.0f64..=1.0, floor in 0.0f64..0.99
    ) {
        let d = Alloc::DepthKv { sensitivity: vec![s; n], rule, mix, floor };
        prop_assert_eq!(
            allocate(&d, n, total, limits).unwrap(),
            allocate(&Alloc::Uniform, n, total, limits).unwrap()
        );
    }

    #[test]
    fn depthkv_mix_one_is_uniform(
        (n, limits, total) in setup(), rule in rule(), seed in prop::collection::vec(-1.0f64..5.0, 40)
    ) {
        let d = Alloc::DepthKv { sensitivity: seed[..n].to_vec(), rule, mix: 1.0, floor: 0.0 };
        prop_assert_eq!(
            allocate(&d, n, total, limits).unwrap(),
            allocate(&Alloc::Uniform, n, total, limits).unwrap()
        );
    }

    #[test]
    fn more_sensitive_layers_never_get_less(
        (n, limits, total) in setup(), rule in rule(), mix in 0.0f64..=1.0,
        seed in prop::collection::vec(-1.0f64..5.0, 40)
    ) {
        let s = seed[..n].to_vec();
        // Proportional treats negative sensitivities as zero weight.
        let eff: Vec<f64> = match rule {
            DepthRule::Proportional => s.iter().map(|x| x.max(0.0)).collect(),
            _ => s.clone(),
        };
        let d = Alloc::DepthKv { sensitivity: s.clone(), rule, mix, floor: 0.0 };
        let b = allocate(&d, n, total, limits).unwrap();
        for i in 0..n {
            for j in 0..n {
                if eff[i] > eff[j] {
                    prop_assert!(b[i] >= b[j], "s={:?} b={:?}", s, b);
                }
            }
        }
    }

    #[test]
    fn proportional_is_scale_invariant(
        (n, limits, total) in setup(), k in -3i32..4, mix in 0.0f64..=1.0,
        seed in prop::collection::vec(0.0f64..5.0, 40)
    ) {
        // Powers of two scale exactly in floating point.
        let c = 2f64.powi(k);
        let make = |f: f64| Alloc::DepthKv {
            sensitivity: seed[..n].iter().map(|x| x * f).collect(),
            rule: DepthRule::Proportional,
            mix,
            floor: 0.0,
        };
        prop_assert_eq!(
            allocate(&make(1.0), n, total, limits).unwrap(),
            allocate(&make(c), n, total, limits).unwrap()
        );
    }

    #[test]
    fn depthkv_floor_is_a_per_layer_minimum(
        (n, limits, total, s) in setup_with_strategy(), floor in 0.0f64..0.99
    ) {
        let sensitivity = match s {
            Alloc::DepthKv { sensitivity, .. } => sensitivity,
            _ => vec![1.0; n],
        };
        let d = Alloc::DepthKv { sensitivity, rule: DepthRule::Proportional, mix: 0.0, floor };
        let b = allocate(&d, n, total, limits).unwrap();
        let want = ((floor * limits.max as f64 - 1e-7).ceil() as usize).min(total / n).max(limits.min);
        prop_assert!(b.iter().all(|&v| v >= want), "floor {} -> {} but {:?}", floor, want, b);
    }

    #[test]
    fn pyramid_is_non_increasing_with_depth((n, limits, total) in setup(), beta in 1.0f64..50.0) {
        let b = allocate(&Alloc::Pyramid { beta }, n, total, limits).unwrap();
        prop_assert!(b.windows(2).all(|w| w[0] >= w[1]), "{:?}", b);
    }

    #[test]
    fn water_filling_leaves_no_profitable_transfer(
        (n, limits, total) in setup(), seed in prop::collection::vec(0.0f64..1.0, 40)
    ) {
        // Ideal x_i = clamp(lambda * f_i, min, max). A layer below max has
        // lambda * f_i < b_i + 1; a layer above min has lambda * f_j > b_j - 1.
        // So no slot could move from j to i and get closer to proportional:
        // clamped excess really went to the unclamped layers.
        let f = seed[..n].to_vec();
        let b = allocate(&Alloc::Manual { fractions: f.clone() }, n, total, limits).unwrap();
        let sum_f: f64 = f.iter().sum();
        prop_assume!(sum_f > 0.0);
        for i in (0..n).filter(|&i| b[i] < limits.max && f[i] > 0.0) {
            for j in (0..n).filter(|&j| b[j] > limits.min && f[j] > 0.0) {
                let lhs = (b[j] as f64 - 1.0) * f[i];
                let rhs = (b[i] as f64 + 1.0) * f[j];
                prop_assert!(lhs <= rhs * (1.0 + 1e-9), "i={} j={} f={:?} b={:?}", i, j, f, b);
            }
        }
    }

    #[test]
    fn manual_follows_fraction_order(
        (n, limits, total) in setup(), seed in prop::collection::vec(0.0f64..1.0, 40)
    ) {
        let f = seed[..n].to_vec();
        let b = allocate(&Alloc::Manual { fractions: f.clone() }, n, total, limits).unwrap();
        for i in 0..n {
            for j in 0..n {
                if f[i] > f[j] {
                    prop_assert!(b[i] >= b[j], "f={:?} b={:?}", f, b);
                }
            }
        }
    }
}

/// Budgets within limits, a lock mask, a layer and a target.
fn rebalance_case() -> impl Strategy<Value = (Vec<usize>, Vec<bool>, usize, usize, LayerLimits)> {
    (1usize..30, 0usize..200, 0usize..200).prop_flat_map(|(n, a, b)| {
        let limits = LayerLimits { min: a.min(b), max: a.max(b) };
        (
            prop::collection::vec(limits.min..=limits.max, n),
            prop::collection::vec(prop::bool::weighted(0.25), n),
            0..n,
            0..limits.max + 50,
            Just(limits),
        )
    })
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn rebalance_preserves_total_limits_and_locks(
        (budgets, locked, layer, target, limits) in rebalance_case()
    ) {
        let res = rebalance(&budgets, layer, target, &locked, limits);
        if locked[layer] {
            prop_assert_eq!(res, Err(PruneError::LayerLocked { layer }));
            return Ok(());
        }
        let out = res.unwrap();
        prop_assert_eq!(out.iter().sum::<usize>(), budgets.iter().sum::<usize>());
        prop_assert!(out.iter().all(|&v| v >= limits.min && v <= limits.max));
        for i in 0..budgets.len() {
            if locked[i] {
                prop_assert_eq!(out[i], budgets[i]);
            }
        }
        // The edited layer moves towards the target and gets exactly as close
        // as the limits and the unlocked layers allow.
        let others = (0..budgets.len()).filter(|&i| i != layer && !locked[i]);
        let take: usize = others.clone().map(|i| budgets[i] - limits.min).sum();
        let give: usize = others.map(|i| limits.max - budgets[i]).sum();
        let lo = limits.min.max(budgets[layer].saturating_sub(give));
        let hi = limits.max.min(budgets[layer] + take);
        prop_assert_eq!(out[layer], target.clamp(lo, hi));
        // Everyone else moves the opposite way (or not at all).
        for i in (0..budgets.len()).filter(|&i| i != layer) {
            if out[layer] > budgets[layer] {
                prop_assert!(out[i] <= budgets[i]);
            } else {
                prop_assert!(out[i] >= budgets[i]);
            }
        }
        if out[layer] == budgets[layer] {
            prop_assert_eq!(&out, &budgets);
        }
        // Re-applying the reached value is a no-op.
        prop_assert_eq!(rebalance(&out, layer, out[layer], &locked, limits).unwrap(), out);
    }

    #[test]
    fn rebalance_rejects_bad_layer(
        (budgets, locked, _layer, target, limits) in rebalance_case(), extra in 0usize..5
    ) {
        let n = budgets.len();
        prop_assert_eq!(
            rebalance(&budgets, n + extra, target, &locked, limits),
            Err(PruneError::LayerOutOfRange { layer: n + extra, n_layers: n })
        );
    }
}

fn scorer() -> impl Strategy<Value = Scorer> {
    prop_oneof![Just(Scorer::SnapKv), Just(Scorer::H2o), Just(Scorer::Streaming), Just(Scorer::KeyNorm),]
}

/// Config, prompt length, per-head scores (sometimes ragged or NaN) and keep.
fn select_case() -> impl Strategy<Value = (SelectConfig, usize, Vec<Vec<f32>>, usize)> {
    (scorer(), 0usize..8, 0usize..40, 0usize..10, 0usize..200, 1usize..4).prop_flat_map(
        |(scorer, sinks, window, kernel, len, heads)| {
            let cfg = SelectConfig { scorer, sinks, window, kernel, heads: Default::default() };
            let score = prop_oneof![
                10 => (0u8..20).prop_map(|v| v as f32 / 4.0),
                1 => Just(f32::NAN),
            ];
            let lens = prop_oneof![10 => Just(len), 1 => 0..len + 1];
            let head = lens.prop_flat_map(move |l| prop::collection::vec(score.clone(), l));
            (Just(cfg), Just(len), prop::collection::vec(head, heads), 0..len + 20)
        },
    )
}

fn stats(scores: &[Vec<f32>]) -> LayerStats<'_> {
    LayerStats { window_attention: scores, accumulated: scores, key_norms: scores }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn select_keeps_exact_sorted_count_with_sinks_and_window(
        (cfg, len, scores, keep) in select_case()
    ) {
        let out = select_layer(&cfg, &stats(&scores), len, keep);
        prop_assert_eq!(out.len(), scores.len());
        let k = keep.min(len);
        let sinks = cfg.sinks.min(k);
        let recent = if cfg.scorer == Scorer::Streaming { k - sinks } else { cfg.window.min(k - sinks) };
        for head in &out {
            prop_assert_eq!(head.len(), k);
            prop_assert!(head.windows(2).all(|w| w[0] < w[1]), "{:?}", head);
            prop_assert!(head.iter().all(|&p| (p as usize) < len));
            for p in 0..sinks {
                prop_assert!(head.contains(&(p as u32)), "sink {} missing: {:?}", p, head);
            }
            for p in len - recent..len {
                prop_assert!(head.contains(&(p as u32)), "recent {} missing: {:?}", p, head);
            }
        }
    }

    #[test]
    fn select_middle_is_top_k_by_score(
        (mut cfg, len, scores, keep) in select_case(), key_norm in any::<bool>()
    ) {
        // Scorers whose ranking is the raw statistic (no pooling).
        cfg.scorer = if key_norm { Scorer::KeyNorm } else { Scorer::H2o };
        let fixed = cfg.sinks + cfg.window;
        prop_assume!(len > fixed + 1);
        // Some, but not all, middle positions are kept.
        let keep = fixed + 1 + keep % (len - fixed - 1);
        let out = select_layer(&cfg, &stats(&scores), len, keep);
        let mid = cfg.sinks..len - cfg.window;
        for (h, head) in out.iter().enumerate() {
            // Higher is better; NaN and missing rank last.
            let key = |p: usize| -> f32 {
                match scores[h].get(p) {
                    Some(v) if !v.is_nan() => if cfg.scorer == Scorer::KeyNorm { -v } else { *v },
                    _ => f32::NEG_INFINITY,
                }
            };
            let worst_kept = head.iter().map(|&p| p as usize).filter(|p| mid.contains(p))
                .map(key).fold(f32::INFINITY, f32::min);
            let best_dropped = mid.clone().filter(|p| !head.contains(&(*p as u32)))
                .map(key).fold(f32::NEG_INFINITY, f32::max);
            prop_assert!(worst_kept >= best_dropped, "head {}: kept {} < dropped {}", h, worst_kept, best_dropped);
        }
    }

    #[test]
    fn select_grows_by_adding_positions((cfg, len, scores, keep) in select_case()) {
        // Above sinks + window the selection for keep is a subset of keep + 1.
        prop_assume!(keep >= cfg.sinks + cfg.window);
        let small = select_layer(&cfg, &stats(&scores), len, keep);
        let big = select_layer(&cfg, &stats(&scores), len, keep + 1);
        for (a, b) in small.iter().zip(&big) {
            prop_assert!(a.iter().all(|p| b.contains(p)), "{:?} not in {:?}", a, b);
        }
    }
}

/// A prompt, each layer's ceiling (global: the prompt; local: a window below it), selection
/// settings and a budget fraction anywhere in [0, 1].
fn ceilinged() -> impl Strategy<Value = (usize, Vec<usize>, SelectConfig, f64)> {
    (1usize..400, 1usize..24, 0usize..12, 0usize..48, 0.0f64..=1.0).prop_flat_map(|(prompt, n, sinks, window, b)| {
        let layer = prop_oneof![Just(None), (1usize..400).prop_map(Some)];
        let budget = prop_oneof![Just(b), Just(b * b * b), Just(1.0)];
        (Just(prompt), prop::collection::vec(layer, n), Just(sinks), Just(window), budget).prop_map(
            |(prompt, windows, sinks, window, budget)| {
                let ceilings = windows.iter().map(|w| w.map_or(prompt, |w| w.min(prompt))).collect();
                (prompt, ceilings, SelectConfig { sinks, window, ..SelectConfig::default() }, budget)
            },
        )
    })
}

/// What a layer always keeps, derived here from the selection rule rather than from `apply`:
/// a layer that sees the whole prompt keeps sinks and window, a local one (ceiling below the
/// prompt) cannot see the sinks and keeps its window; never more than the ceiling.
fn floor(cfg: &SelectConfig, prompt: usize, ceiling: usize) -> usize {
    let keeps = if ceiling < prompt { cfg.window } else { cfg.sinks + cfg.window };
    keeps.min(ceiling)
}

/// The smallest budget an error message names (`[x, 1]`).
fn named_smallest(message: &str) -> f64 {
    let start = message.find("the valid range there is [").expect("range in message") + 26;
    message[start..].split(',').next().unwrap().parse().expect("a number")
}

proptest! {
    #![proptest_config(config(768))]

    /// Every budget `check_reachable` accepts splits, under every strategy, into budgets that sum
    /// to exactly the requested share of the unpruned total (the sum of ceilings) and keep each
    /// layer within [its floor, its ceiling]; every budget it refuses really is below the floors,
    /// and the smallest budget its message names is accepted while one step less is not.
    #[test]
    fn accepted_budgets_split_exactly_within_floors_and_ceilings(
        ((prompt, ceilings, cfg, budget), s) in ceilinged().prop_flat_map(|c| {
            let n = c.1.len();
            (Just(c), strategy(n))
        })
    ) {
        use depthkv::prune::apply;
        let unpruned: usize = ceilings.iter().sum();
        let floors: Vec<usize> = ceilings.iter().map(|&c| floor(&cfg, prompt, c)).collect();
        let requested = ((budget * unpruned as f64).round() as usize).min(unpruned);
        match apply::check_reachable(budget, prompt, &ceilings, &cfg) {
            Ok(()) => {
                let split = apply::budgets_within(&s, budget, prompt, &ceilings, &cfg).unwrap();
                prop_assert_eq!(split.iter().sum::<usize>(), requested, "{:?} at {} on {:?}", s, budget, ceilings);
                for i in 0..split.len() {
                    prop_assert!(floors[i] <= split[i] && split[i] <= ceilings[i],
                        "layer {}: {} outside [{}, {}] ({:?})", i, split[i], floors[i], ceilings[i], split);
                }
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(requested < floors.iter().sum::<usize>(), "refused a reachable {}: {}", budget, message);
                match e {
                    PruneError::BudgetBelowFloor { smallest, .. } => {
                        prop_assert_eq!(named_smallest(&message), smallest);
                        prop_assert!(apply::check_reachable(smallest, prompt, &ceilings, &cfg).is_ok(), "{}", message);
                        let less = apply::check_reachable(smallest - 1e-4, prompt, &ceilings, &cfg);
                        prop_assert!(less.is_err(), "{}", message);
                    }
                    // Floors cover everything: no budget below 1 prunes anything.
                    _ => prop_assert_eq!(floors.iter().sum::<usize>(), unpruned, "{}", message),
                }
            }
        }
    }
}
