//! Per-layer bounds on kept tokens. Every layer keeps at least what the
//! selector always keeps (sinks + observation window) and at most its own
//! ceiling: the prompt, or for a sliding-window layer its window, since it
//! never attends further back. The unpruned total is the sum of ceilings.

use super::allocate::LayerLimits;
use super::error::PruneError;

/// Per-layer `[lo, hi]` on the number of kept tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerBounds {
    lo: Vec<usize>,
    hi: Vec<usize>,
}

impl LayerBounds {
    /// Explicit bounds, one pair per layer.
    pub fn new(lo: Vec<usize>, hi: Vec<usize>) -> Result<Self, PruneError> {
        if lo.len() != hi.len() {
            return Err(PruneError::LengthMismatch { what: "layer ceilings", expected: lo.len(), got: hi.len() });
        }
        if let Some(i) = (0..lo.len()).find(|&i| lo[i] > hi[i]) {
            return Err(PruneError::InvalidLimits { min: lo[i], max: hi[i] });
        }
        Ok(LayerBounds { lo, hi })
    }

    /// The same limits for `n` layers (no validation: callers check `limits`).
    pub fn uniform(n: usize, limits: LayerLimits) -> Self {
        LayerBounds { lo: vec![limits.min; n], hi: vec![limits.max; n] }
    }

    /// Each layer at most its ceiling and at least `min` (lowered to the
    /// ceiling where a window is smaller than what the selector keeps).
    pub fn with_ceilings(min: usize, ceilings: &[usize]) -> Self {
        LayerBounds { lo: ceilings.iter().map(|&c| min.min(c)).collect(), hi: ceilings.to_vec() }
    }

    /// Each layer at most its ceiling and at least its own floor (lowered to
    /// the ceiling); a missing floor counts as 0.
    pub fn with_floors(floors: &[usize], ceilings: &[usize]) -> Self {
        let lo = ceilings.iter().enumerate().map(|(i, &c)| floors.get(i).copied().unwrap_or(0).min(c)).collect();
        LayerBounds { lo, hi: ceilings.to_vec() }
    }

    pub fn n_layers(&self) -> usize {
        self.lo.len()
    }

    pub fn lo(&self) -> &[usize] {
        &self.lo
    }

    /// The ceilings: what each layer holds without pruning.
    pub fn hi(&self) -> &[usize] {
        &self.hi
    }

    pub fn lo_total(&self) -> usize {
        self.lo.iter().fold(0usize, |a, &b| a.saturating_add(b))
    }

    /// Slots the model holds without pruning: the sum of the ceilings.
    pub fn hi_total(&self) -> usize {
        self.hi.iter().fold(0usize, |a, &b| a.saturating_add(b))
    }

    /// Global kept slots for a budget fraction of the unpruned total (clamped
    /// to `[0, 1]`, NaN as 0), as [`super::total_slots`] does for uniform layers.
    pub fn total_slots(&self, budget: f64) -> usize {
        let b = if budget.is_nan() { 0.0 } else { budget.clamp(0.0, 1.0) };
        let cells = self.hi_total();
        ((b * cells as f64).round() as usize).min(cells)
    }

    /// `total` clamped into `[sum lo, sum hi]`.
    pub fn feasible(&self, total: usize) -> usize {
        total.max(self.lo_total()).min(self.hi_total())
    }

    /// Refuses budgets of the wrong length or outside a layer's bounds.
    pub fn check(&self, budgets: &[usize]) -> Result<(), PruneError> {
        if budgets.len() != self.n_layers() {
            return Err(PruneError::LengthMismatch { what: "budgets", expected: self.n_layers(), got: budgets.len() });
        }
        match (0..budgets.len()).find(|&i| budgets[i] < self.lo[i] || budgets[i] > self.hi[i]) {
            Some(i) => {
                Err(PruneError::BudgetOutOfLimits { layer: i, value: budgets[i], min: self.lo[i], max: self.hi[i] })
            }
            None => Ok(()),
        }
    }

    /// The error for a total outside `[sum lo, sum hi]`.
    pub(super) fn infeasible(&self, total: usize) -> PruneError {
        PruneError::InfeasibleTotal {
            total,
            n_layers: self.n_layers(),
            min: self.lo.iter().copied().min().unwrap_or(0),
            max: self.hi.iter().copied().max().unwrap_or(0),
            lo: self.lo_total(),
            hi: self.hi_total(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_cap_the_minimum_and_sum_to_the_unpruned_total() {
        let b = LayerBounds::with_ceilings(36, &[8, 100, 8, 100]);
        assert_eq!(b.lo(), &[8, 36, 8, 36]);
        assert_eq!(b.hi_total(), 216);
        assert_eq!(b.total_slots(0.5), 108);
        assert_eq!(b.feasible(10), 88);
        assert_eq!(b.feasible(1000), 216);
    }

    #[test]
    fn check_names_the_layer_and_its_bounds() {
        let b = LayerBounds::with_ceilings(4, &[8, 100]);
        assert_eq!(b.check(&[8, 50]), Ok(()));
        assert_eq!(b.check(&[9, 50]), Err(PruneError::BudgetOutOfLimits { layer: 0, value: 9, min: 4, max: 8 }));
        assert!(matches!(b.check(&[8]), Err(PruneError::LengthMismatch { .. })));
        assert!(LayerBounds::new(vec![5], vec![4]).is_err());
    }
}
