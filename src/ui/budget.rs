//! The UI's view of the per-layer budgets: the custom split the user edits,
//! the uniform split it is compared with, locks, and where the custom split
//! came from. All arithmetic goes through `prune` so the total stays exact.

use crate::prune::{self, DepthRule, LayerLimits, PruneError, Strategy};

/// DepthKV defaults used by the `d` reset (the same as the CLI's).
pub const DEPTH_MIX: f64 = crate::prune::DEPTHKV_MIX;
pub const DEPTH_FLOOR: f64 = crate::prune::DEPTHKV_FLOOR;

/// Where the custom split comes from. Re-applied when the global budget or
/// the prompt length changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Uniform,
    Pyramid {
        beta: f64,
    },
    DepthKv {
        sensitivity: Vec<f64>,
        rule: DepthRule,
    },
    /// Kept fractions per layer (hand edits, `--fractions`, profiles); only
    /// their ratios matter.
    Fractions(Vec<f64>),
}

impl Shape {
    pub fn name(&self) -> &'static str {
        match self {
            Shape::Uniform => "uniform",
            Shape::Pyramid { .. } => "pyramid",
            Shape::DepthKv { rule, .. } => match rule {
                DepthRule::Proportional => "depthkv",
                DepthRule::Softmax { .. } => "depthkv-softmax",
                DepthRule::Rank => "depthkv-rank",
            },
            Shape::Fractions(_) => "manual",
        }
    }

    fn strategy(&self) -> Strategy {
        match self {
            Shape::Uniform => Strategy::Uniform,
            Shape::Pyramid { beta } => Strategy::Pyramid { beta: *beta },
            Shape::DepthKv { sensitivity, rule } => Strategy::DepthKv {
                sensitivity: sensitivity.clone(),
                rule: rule.clone(),
                mix: DEPTH_MIX,
                floor: DEPTH_FLOOR,
            },
            Shape::Fractions(f) => Strategy::Manual { fractions: f.clone() },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Budgets {
    /// Requested global budget: kept fraction of all prompt KV slots.
    pub global: f64,
    pub shape: Shape,
    /// Hand-edited since the shape was last applied.
    pub edited: bool,
    pub n_layers: usize,
    pub prompt_len: usize,
    pub limits: LayerLimits,
    pub custom: Vec<usize>,
    pub uniform: Vec<usize>,
    pub locked: Vec<bool>,
}

impl Budgets {
    pub fn new(global: f64, shape: Shape) -> Self {
        Budgets {
            global: global.clamp(0.0, 1.0),
            shape,
            edited: false,
            n_layers: 0,
            prompt_len: 0,
            limits: LayerLimits { min: 0, max: 0 },
            custom: Vec::new(),
            uniform: Vec::new(),
            locked: Vec::new(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.n_layers > 0 && self.prompt_len > 0 && self.custom.len() == self.n_layers
    }

    /// The exact number of slots the splits hold: the requested budget,
    /// clamped to what the limits allow.
    pub fn total(&self) -> usize {
        let t = prune::total_slots(self.global, self.prompt_len, self.n_layers);
        prune::feasible_total(t, self.n_layers, self.limits)
    }

    /// The kept fraction the splits actually hold (after clamping).
    pub fn effective_fraction(&self) -> f64 {
        let cells = self.prompt_len * self.n_layers;
        if cells == 0 {
            self.global
        } else {
            self.custom.iter().sum::<usize>() as f64 / cells as f64
        }
    }

    /// Smallest global budget the limits allow.
    pub fn min_fraction(&self) -> f64 {
        if self.prompt_len == 0 {
            0.0
        } else {
            self.limits.min as f64 / self.prompt_len as f64
        }
    }

    /// Sizes the splits for a (new) model/prompt; `min_layer_tokens` is the
    /// session's per-layer minimum for this prompt (from its snapshot). Locks
    /// survive only if the geometry is unchanged.
    pub fn configure(&mut self, n_layers: usize, prompt_len: usize, min_layer_tokens: usize) -> Result<(), PruneError> {
        let same = n_layers == self.n_layers && prompt_len == self.prompt_len;
        self.n_layers = n_layers;
        self.prompt_len = prompt_len;
        self.limits = LayerLimits { min: min_layer_tokens.min(prompt_len), max: prompt_len };
        if !same {
            self.locked = vec![false; n_layers];
            if let Shape::Fractions(f) = &self.shape {
                if f.len() != n_layers {
                    self.shape = Shape::Uniform;
                }
            }
            if let Shape::DepthKv { sensitivity, .. } = &self.shape {
                if sensitivity.len() != n_layers {
                    self.shape = Shape::Uniform;
                }
            }
        }
        self.reshape()
    }

    /// Re-applies the current shape (or the hand-edited split's fractions) at
    /// the current total, then restores locked layers.
    pub fn reshape(&mut self) -> Result<(), PruneError> {
        let strategy = if self.edited && self.custom.len() == self.n_layers {
            Strategy::Manual { fractions: prune::kept_fractions(&self.custom, self.prompt_len.max(1)) }
        } else {
            self.shape.strategy()
        };
        self.apply(&strategy)
    }

    /// Replaces the shape (a reset to uniform/pyramid/DepthKV or an import).
    pub fn set_shape(&mut self, shape: Shape) -> Result<(), PruneError> {
        let old = (self.shape.clone(), self.edited);
        self.shape = shape;
        self.edited = false;
        let res = self.apply(&self.shape.strategy());
        if res.is_err() {
            (self.shape, self.edited) = old;
        }
        res
    }

    fn apply(&mut self, strategy: &Strategy) -> Result<(), PruneError> {
        if self.n_layers == 0 {
            return Ok(());
        }
        let total = self.total();
        let uniform = prune::allocate(&Strategy::Uniform, self.n_layers, total, self.limits)?;
        let mut custom = prune::allocate(strategy, self.n_layers, total, self.limits)?;
        let had = self.custom.len() == self.n_layers;
        if had {
            // Locked layers keep their token counts; restoring one at a time
            // with the already-restored ones locked keeps the total exact.
            let mut fixed = vec![false; self.n_layers];
            for i in 0..self.n_layers {
                if self.locked[i] {
                    let want = self.custom[i].clamp(self.limits.min, self.limits.max);
                    custom = prune::rebalance(&custom, i, want, &fixed, self.limits)?;
                    fixed[i] = true;
                }
            }
        }
        self.uniform = uniform;
        self.custom = custom;
        Ok(())
    }

    /// Changes the global budget; the split keeps its shape.
    pub fn set_global(&mut self, global: f64) -> Result<(), PruneError> {
        let old = self.global;
        let lo = self.min_fraction();
        self.global = global.clamp(lo, 1.0);
        if !self.is_ready() {
            return Ok(());
        }
        let res = self.reshape();
        if res.is_err() {
            self.global = old;
        }
        res
    }

    /// Sets one layer's budget; the other unlocked layers compensate so the
    /// total is unchanged. Returns whether anything changed.
    pub fn set_layer(&mut self, layer: usize, target: usize) -> Result<bool, PruneError> {
        if !self.is_ready() || layer >= self.n_layers {
            return Ok(false);
        }
        let next = prune::rebalance(&self.custom, layer, target, &self.locked, self.limits)?;
        let changed = next != self.custom;
        if changed {
            self.custom = next;
            self.edited = true;
        }
        Ok(changed)
    }

    pub fn toggle_lock(&mut self, layer: usize) -> bool {
        if let Some(l) = self.locked.get_mut(layer) {
            *l = !*l;
            *l
        } else {
            false
        }
    }

    /// Fine and coarse steps for arrow keys: 1% and 10% of the prompt.
    pub fn step(&self, coarse: bool) -> usize {
        let pct = if coarse { 10 } else { 1 };
        (self.prompt_len * pct / 100).max(1)
    }

    /// Prompt KV slots the custom split keeps (summed over layers).
    pub fn custom_slots(&self) -> usize {
        self.custom.iter().sum()
    }

    /// Header label, e.g. "depthkv" or "pyramid + edits".
    pub fn label(&self) -> String {
        if self.edited {
            format!("{} + edits", self.shape.name())
        } else {
            self.shape.name().to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_survive_global_change() {
        let mut b = Budgets::new(0.5, Shape::Uniform);
        b.configure(8, 400, 36).unwrap();
        assert_eq!(b.custom_slots(), 1600);
        b.set_layer(2, 300).unwrap();
        b.toggle_lock(2);
        b.set_global(0.3).unwrap();
        assert_eq!(b.custom[2], 300);
        assert_eq!(b.custom_slots(), b.total());
        assert_eq!(b.custom_slots(), 960);
        assert_eq!(b.uniform.iter().sum::<usize>(), 960);
        assert!(b.set_layer(2, 10).is_err());
    }

    #[test]
    fn global_clamps_to_feasible() {
        let mut b = Budgets::new(0.5, Shape::Pyramid { beta: 20.0 });
        b.configure(4, 100, 36).unwrap();
        b.set_global(0.01).unwrap();
        assert!((b.global - 0.36).abs() < 1e-9);
        assert!(b.custom.iter().all(|&x| x == 36));
    }
}
