//! Property tests for budgets split across layers that are not alike:
//! sliding-window layers hold at most their window (their ceiling), global
//! layers the whole prompt.

use crate::prune_props::strategy;
use depthkv::prune::adaptive::retained_mass_split_within;
use depthkv::prune::{allocate_within, rebalance_within, LayerBounds, Strategy as Alloc};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Bounds of a model whose layers are global (`None`) or windowed, and a
/// feasible total.
fn bounded() -> impl Strategy<Value = (LayerBounds, usize)> {
    (1usize..40, 0usize..80, 1usize..300)
        .prop_flat_map(|(n, min, prompt)| {
            let layer = prop_oneof![Just(None), (1usize..300).prop_map(Some)];
            (Just(min), Just(prompt), prop::collection::vec(layer, n), any::<u64>())
        })
        .prop_map(|(min, prompt, windows, r)| {
            let ceilings: Vec<usize> = windows.iter().map(|w| w.map_or(prompt, |w| w.min(prompt))).collect();
            let b = LayerBounds::with_ceilings(min.min(prompt), &ceilings);
            let total = b.lo_total() + (r as usize) % (b.hi_total() - b.lo_total() + 1);
            (b, total)
        })
}

fn with_strategy() -> impl Strategy<Value = (LayerBounds, usize, Alloc)> {
    bounded().prop_flat_map(|(b, t)| {
        let n = b.n_layers();
        (Just(b), Just(t), strategy(n))
    })
}

fn within(b: &LayerBounds, split: &[usize]) -> bool {
    split.len() == b.n_layers() && (0..split.len()).all(|i| split[i] >= b.lo()[i] && split[i] <= b.hi()[i])
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn every_strategy_sums_exactly_and_no_layer_passes_its_ceiling((b, total, s) in with_strategy()) {
        let split = allocate_within(&s, total, &b).unwrap();
        prop_assert_eq!(split.iter().sum::<usize>(), total);
        prop_assert!(within(&b, &split), "{:?} not within {:?}", split, b);
        prop_assert_eq!(allocate_within(&s, total, &b).unwrap(), split);
    }

    #[test]
    fn uniform_fills_evenly_up_to_each_ceiling((b, total) in bounded()) {
        let split = allocate_within(&Alloc::Uniform, total, &b).unwrap();
        // A layer below its ceiling is never more than one slot short of any
        // layer that holds more than its own minimum: capped layers' share
        // flows to the others.
        for i in (0..split.len()).filter(|&i| split[i] < b.hi()[i]) {
            for j in (0..split.len()).filter(|&j| split[j] > b.lo()[j]) {
                prop_assert!(split[i] + 1 >= split[j], "layer {} holds {} < layer {} holds {}: {:?} in {:?}",
                    i, split[i], j, split[j], split, b);
            }
        }
    }

    #[test]
    fn the_unpruned_budget_is_every_ceiling((b, _t) in bounded(), s in any::<u8>()) {
        let total = b.total_slots(1.0);
        prop_assert_eq!(total, b.hi_total());
        let strategy = if s % 2 == 0 { Alloc::Uniform } else { Alloc::Pyramid { beta: 20.0 } };
        prop_assert_eq!(allocate_within(&strategy, total, &b).unwrap(), b.hi().to_vec());
    }

    #[test]
    fn adaptive_sums_exactly_within_ceilings(
        (b, total) in bounded(), seed in prop::collection::vec(0.0f64..1.0, 40), mix in 0.0f64..=1.0
    ) {
        let n = b.n_layers();
        // Non-increasing gains per layer, as marginal_gains produces.
        let gains: Vec<Vec<f64>> = (0..n)
            .map(|l| (0..b.hi()[l]).map(|k| seed[l] / (1.0 + k as f64)).collect())
            .collect();
        let split = retained_mass_split_within(&gains, None, mix, total, &b).unwrap();
        prop_assert_eq!(split.iter().sum::<usize>(), total);
        prop_assert!(within(&b, &split), "{:?} not within {:?}", split, b);
    }

    #[test]
    fn rebalance_keeps_total_ceilings_and_locks(
        (b, total) in bounded(), pick in any::<prop::sample::Index>(), target in 0usize..400,
        locks in prop::collection::vec(any::<bool>(), 40)
    ) {
        let start = allocate_within(&Alloc::Uniform, total, &b).unwrap();
        let n = start.len();
        let layer = pick.index(n);
        let mut locked = locks[..n].to_vec();
        locked[layer] = false;
        let out = rebalance_within(&start, layer, target, &locked, &b).unwrap();
        prop_assert_eq!(out.iter().sum::<usize>(), total);
        prop_assert!(within(&b, &out), "{:?} not within {:?}", out, b);
        for i in (0..n).filter(|&i| locked[i]) {
            prop_assert_eq!(out[i], start[i]);
        }
        // The dragged layer moves toward the target, never past it.
        let (was, now) = (start[layer], out[layer]);
        prop_assert!(now.min(was) >= target.min(was) && now.max(was) <= target.max(was));
    }
}
