//! Editing one layer's budget by hand while the global total stays fixed.
//!
//! The difference is taken from (or given to) the other unlocked layers:
//! - taking is proportional to each layer's budget above `min`, so nobody is
//!   pushed below its floor and layers with more to spare give more;
//! - giving is proportional to each layer's room below `max`, the mirror
//!   image, so nobody overflows and a single pass always places everything.
//!
//! Both are exact integer apportionments (largest remainder, ties to the lower
//! layer index), so the total is preserved exactly.

use super::allocate::LayerLimits;
use super::bounds::LayerBounds;
use super::error::PruneError;

/// Sets `budgets[layer]` to `target` (clamped to the limits and to what the
/// other unlocked layers can give or absorb) and compensates on those layers.
///
/// Locked layers are never touched. If nothing can move, the input comes back
/// unchanged.
pub fn rebalance(
    budgets: &[usize],
    layer: usize,
    target: usize,
    locked: &[bool],
    limits: LayerLimits,
) -> Result<Vec<usize>, PruneError> {
    if limits.min > limits.max {
        return Err(PruneError::InvalidLimits { min: limits.min, max: limits.max });
    }
    rebalance_within(budgets, layer, target, locked, &LayerBounds::uniform(budgets.len(), limits))
}

/// As [`rebalance`], each layer within its own bounds (a sliding-window
/// layer never above its window).
pub fn rebalance_within(
    budgets: &[usize],
    layer: usize,
    target: usize,
    locked: &[bool],
    bounds: &LayerBounds,
) -> Result<Vec<usize>, PruneError> {
    let n = budgets.len();
    if locked.len() != n {
        return Err(PruneError::LengthMismatch { what: "locked", expected: n, got: locked.len() });
    }
    if layer >= n {
        return Err(PruneError::LayerOutOfRange { layer, n_layers: n });
    }
    if locked[layer] {
        return Err(PruneError::LayerLocked { layer });
    }
    bounds.check(budgets)?;
    let (lo, hi) = (bounds.lo(), bounds.hi());

    let others: Vec<usize> = (0..n).filter(|&i| i != layer && !locked[i]).collect();
    let can_take: usize = others.iter().map(|&i| budgets[i] - lo[i]).sum();
    let can_absorb: usize = others.iter().map(|&i| hi[i] - budgets[i]).sum();
    let current = budgets[layer];
    let lowest = lo[layer].max(current.saturating_sub(can_absorb));
    let highest = hi[layer].min(current + can_take);
    let target = target.clamp(lowest, highest);

    let mut out = budgets.to_vec();
    if target == current {
        return Ok(out);
    }
    out[layer] = target;
    if target > current {
        let room: Vec<usize> = others.iter().map(|&i| budgets[i] - lo[i]).collect();
        for (k, d) in apportion(target - current, &room).into_iter().enumerate() {
            out[others[k]] -= d;
        }
    } else {
        let room: Vec<usize> = others.iter().map(|&i| hi[i] - budgets[i]).collect();
        for (k, d) in apportion(current - target, &room).into_iter().enumerate() {
            out[others[k]] += d;
        }
    }
    Ok(out)
}

/// Splits `amount` in proportion to `room`, never exceeding any `room[k]`.
/// Requires `amount <= sum(room)`.
fn apportion(amount: usize, room: &[usize]) -> Vec<usize> {
    let total: u128 = room.iter().map(|&r| r as u128).sum();
    if total == 0 || amount == 0 {
        return vec![0; room.len()];
    }
    let a = amount as u128;
    let mut share: Vec<usize> = room.iter().map(|&r| (a * r as u128 / total) as usize).collect();
    let rem: Vec<u128> = room.iter().map(|&r| a * r as u128 % total).collect();
    let mut left = amount - share.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..room.len()).collect();
    order.sort_by(|&x, &y| rem[y].cmp(&rem[x]).then(x.cmp(&y)));
    // A non-zero remainder means share < room there, so +1 always fits; the
    // loop still checks, to stay safe under any rounding.
    while left > 0 {
        let mut moved = false;
        for &k in &order {
            if left == 0 {
                break;
            }
            if share[k] < room[k] {
                share[k] += 1;
                left -= 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    share
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: LayerLimits = LayerLimits { min: 2, max: 20 };

    #[test]
    fn raise_takes_proportionally_to_budget_above_min() {
        // above-min: 8, 4 -> take 6 as 4 and 2
        let out = rebalance(&[10, 10, 6], 0, 16, &[false; 3], L).unwrap();
        assert_eq!(out, vec![16, 6, 4]);
    }

    #[test]
    fn lower_gives_proportionally_to_room_below_max() {
        // room: 10, 5 -> give 6 as 4 and 2
        let out = rebalance(&[10, 10, 15], 0, 4, &[false; 3], L).unwrap();
        assert_eq!(out, vec![4, 14, 17]);
    }

    #[test]
    fn locked_layers_are_untouched() {
        let out = rebalance(&[10, 10, 10], 0, 15, &[false, true, false], L).unwrap();
        assert_eq!(out, vec![15, 10, 5]);
    }

    #[test]
    fn target_clamped_to_what_others_can_give() {
        let out = rebalance(&[10, 10, 3], 2, 20, &[false, true, false], L).unwrap();
        assert_eq!(out, vec![2, 10, 11]);
        let out = rebalance(&[10, 10, 10], 0, 100, &[false; 3], L).unwrap();
        assert_eq!(out, vec![20, 5, 5]);
        let out = rebalance(&[10, 10, 10], 0, 0, &[false; 3], L).unwrap();
        assert_eq!(out, vec![2, 14, 14]);
    }

    #[test]
    fn nothing_can_move_returns_input() {
        let b = [10, 10, 10];
        assert_eq!(rebalance(&b, 0, 15, &[false, true, true], L).unwrap(), b);
        assert_eq!(rebalance(&[5], 0, 9, &[false], L).unwrap(), vec![5]);
        assert_eq!(rebalance(&b, 1, 10, &[false; 3], L).unwrap(), b);
    }

    #[test]
    fn remainder_ties_go_to_lower_index() {
        let out = rebalance(&[10, 10, 10], 0, 11, &[false; 3], L).unwrap();
        assert_eq!(out, vec![11, 9, 10]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            rebalance(&[10, 10], 2, 5, &[false; 2], L),
            Err(PruneError::LayerOutOfRange { layer: 2, n_layers: 2 })
        );
        assert_eq!(rebalance(&[10, 10], 1, 5, &[false, true], L), Err(PruneError::LayerLocked { layer: 1 }));
        assert!(matches!(
            rebalance(&[10, 10], 0, 5, &[false], L),
            Err(PruneError::LengthMismatch { what: "locked", .. })
        ));
        assert!(matches!(
            rebalance(&[10, 1], 0, 5, &[false; 2], L),
            Err(PruneError::BudgetOutOfLimits { layer: 1, .. })
        ));
        assert!(matches!(rebalance(&[], 0, 5, &[], L), Err(PruneError::LayerOutOfRange { .. })));
    }

    #[test]
    fn a_windowed_layer_never_rises_above_its_window() {
        let b = LayerBounds::with_ceilings(2, &[8, 20, 20]);
        let out = rebalance_within(&[6, 10, 10], 0, 15, &[false; 3], &b).unwrap();
        assert_eq!(out, vec![8, 9, 9]);
        // Lowering a global layer fills the windowed one only up to its window.
        let out = rebalance_within(&[6, 10, 10], 1, 2, &[false; 3], &b).unwrap();
        assert_eq!(out, vec![7, 2, 17]);
    }
}
