//! One pane's per-layer budgets: the split it runs with (and the user edits
//! when the pane is selected), the uniform split it is compared with, locks,
//! and where the split came from. All arithmetic goes through `prune` so the
//! total stays exact.

use crate::prune::{self, DepthRule, LayerBounds, LayerLimits, PruneError, Strategy};

/// DepthKV defaults used by the `d` reset (the same as the CLI's).
pub const DEPTH_MIX: f64 = crate::prune::DEPTHKV_MIX;
pub const DEPTH_FLOOR: f64 = crate::prune::DEPTHKV_FLOOR;

/// Where a pane's split comes from. Re-applied when the global budget or
/// the prompt length changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Every layer keeps the whole prompt (the reference).
    Full,
    Uniform,
    Pyramid {
        beta: f64,
    },
    DepthKv {
        sensitivity: Vec<f64>,
        rule: DepthRule,
    },
    /// Kept fractions per layer (hand edits, `--fractions`); only their
    /// ratios matter.
    Fractions(Vec<f64>),
    /// Kept fractions from an imported profile file.
    Profile {
        name: String,
        fractions: Vec<f64>,
    },
}

impl Shape {
    pub fn name(&self) -> &'static str {
        match self {
            Shape::Full => "full",
            Shape::Uniform => "uniform",
            Shape::Pyramid { .. } => "pyramid",
            Shape::DepthKv { rule, .. } => match rule {
                DepthRule::Proportional => "depthkv",
                DepthRule::Softmax { .. } => "depthkv-softmax",
                DepthRule::Rank => "depthkv-rank",
            },
            Shape::Fractions(_) => "manual",
            Shape::Profile { .. } => "profile",
        }
    }

    /// The strategy that splits the total; `None` for the full cache.
    fn strategy(&self) -> Option<Strategy> {
        Some(match self {
            Shape::Full => return None,
            Shape::Uniform => Strategy::Uniform,
            Shape::Pyramid { beta } => Strategy::Pyramid { beta: *beta },
            Shape::DepthKv { sensitivity, rule } => Strategy::DepthKv {
                sensitivity: sensitivity.clone(),
                rule: rule.clone(),
                mix: DEPTH_MIX,
                floor: DEPTH_FLOOR,
            },
            Shape::Fractions(f) | Shape::Profile { fractions: f, .. } => Strategy::Manual { fractions: f.clone() },
        })
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
    /// The smallest floor and the prompt: the range any layer's budget lies in.
    pub limits: LayerLimits,
    /// Fewest tokens each layer keeps (the session's, from its snapshot).
    pub floors: Vec<usize>,
    /// Most tokens each layer can keep (the prompt, or a sliding window):
    /// the session's, from its snapshot. The unpruned total is their sum.
    pub ceilings: Vec<usize>,
    /// Tokens each layer keeps: what the pane runs with.
    pub layers: Vec<usize>,
    /// The uniform split of the same total (the bars' reference marker).
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
            floors: Vec::new(),
            ceilings: Vec::new(),
            layers: Vec::new(),
            uniform: Vec::new(),
            locked: Vec::new(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.n_layers > 0 && self.prompt_len > 0 && self.layers.len() == self.n_layers
    }

    /// The exact number of slots a pruned split holds: the requested budget,
    /// clamped to what the limits allow.
    pub fn total(&self) -> usize {
        let b = self.bounds();
        b.feasible(b.total_slots(self.global))
    }

    /// Per-layer bounds: at least the session's floor, at most the layer's ceiling.
    pub fn bounds(&self) -> LayerBounds {
        if self.ceilings.len() == self.n_layers {
            LayerBounds::with_floors(&self.floors, &self.ceilings)
        } else {
            LayerBounds::uniform(self.n_layers, self.limits)
        }
    }

    /// A local (sliding-window) layer: it holds less than the prompt unpruned.
    pub fn is_local(&self, layer: usize) -> bool {
        self.ceilings.get(layer).is_some_and(|&c| c < self.prompt_len)
    }

    /// The kept fraction pruned splits actually hold (after clamping).
    pub fn effective_fraction(&self) -> f64 {
        let cells = self.bounds().hi_total();
        if cells == 0 {
            self.global
        } else {
            self.total() as f64 / cells as f64
        }
    }

    /// The full cache: nothing to edit, the global budget does not apply.
    pub fn is_full(&self) -> bool {
        self.shape == Shape::Full
    }

    /// Smallest global budget the limits allow.
    pub fn min_fraction(&self) -> f64 {
        let b = self.bounds();
        if b.hi_total() == 0 {
            0.0
        } else {
            b.lo_total() as f64 / b.hi_total() as f64
        }
    }

    /// Sizes the splits for a (new) model/prompt; `floors` and `ceilings` are
    /// the session's per-layer limits for this prompt (from its snapshot;
    /// empty ceilings: the whole prompt everywhere, a missing floor: none).
    /// Locks survive only if the geometry is unchanged.
    pub fn configure(
        &mut self,
        n_layers: usize,
        prompt_len: usize,
        floors: &[usize],
        ceilings: &[usize],
    ) -> Result<(), PruneError> {
        let ceilings: Vec<usize> = if ceilings.len() == n_layers {
            ceilings.iter().map(|&c| c.min(prompt_len)).collect()
        } else {
            vec![prompt_len; n_layers]
        };
        let floors: Vec<usize> =
            ceilings.iter().enumerate().map(|(i, &c)| floors.get(i).copied().unwrap_or(0).min(c)).collect();
        let same = n_layers == self.n_layers
            && prompt_len == self.prompt_len
            && ceilings == self.ceilings
            && floors == self.floors;
        self.n_layers = n_layers;
        self.prompt_len = prompt_len;
        self.limits = LayerLimits { min: floors.iter().copied().min().unwrap_or(0), max: prompt_len };
        self.floors = floors;
        self.ceilings = ceilings;
        if !same {
            self.locked = vec![false; n_layers];
            if let Shape::Fractions(f) | Shape::Profile { fractions: f, .. } = &self.shape {
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
        let strategy = if self.edited && self.layers.len() == self.n_layers {
            Some(Strategy::Manual { fractions: prune::kept_fractions(&self.layers, self.prompt_len.max(1)) })
        } else {
            self.shape.strategy()
        };
        self.apply(strategy.as_ref())
    }

    /// Replaces the shape (a reset to uniform/pyramid/DepthKV or an import).
    pub fn set_shape(&mut self, shape: Shape) -> Result<(), PruneError> {
        let old = (self.shape.clone(), self.edited);
        if shape == Shape::Full || self.shape == Shape::Full {
            // Locks of a full split mean nothing, nor do they carry into one.
            self.locked.iter_mut().for_each(|l| *l = false);
        }
        self.shape = shape;
        self.edited = false;
        let res = self.apply(self.shape.strategy().as_ref());
        if res.is_err() {
            (self.shape, self.edited) = old;
        }
        res
    }

    /// Splits the total by `strategy` (`None`: keep everything).
    fn apply(&mut self, strategy: Option<&Strategy>) -> Result<(), PruneError> {
        if self.n_layers == 0 {
            return Ok(());
        }
        let total = self.total();
        let bounds = self.bounds();
        let uniform = prune::allocate_within(&Strategy::Uniform, total, &bounds)?;
        let Some(strategy) = strategy else {
            self.uniform = uniform;
            self.layers = bounds.hi().to_vec();
            return Ok(());
        };
        let mut split = prune::allocate_within(strategy, total, &bounds)?;
        let had = self.layers.len() == self.n_layers;
        if had {
            // Locked layers keep their token counts; restoring one at a time
            // with the already-restored ones locked keeps the total exact.
            let mut fixed = vec![false; self.n_layers];
            for i in 0..self.n_layers {
                if self.locked[i] {
                    let want = self.layers[i].clamp(bounds.lo()[i], bounds.hi()[i]);
                    split = prune::rebalance_within(&split, i, want, &fixed, &bounds)?;
                    fixed[i] = true;
                }
            }
        }
        self.uniform = uniform;
        self.layers = split;
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
    /// total is unchanged, and the split becomes a manual one. Returns
    /// whether anything changed (never, for the full cache).
    pub fn set_layer(&mut self, layer: usize, target: usize) -> Result<bool, PruneError> {
        if !self.is_ready() || layer >= self.n_layers || self.is_full() {
            return Ok(false);
        }
        let next = prune::rebalance_within(&self.layers, layer, target, &self.locked, &self.bounds())?;
        let changed = next != self.layers;
        if changed {
            self.layers = next;
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

    /// Prompt KV slots the split keeps (summed over layers).
    pub fn slots(&self) -> usize {
        self.layers.iter().sum()
    }

    /// Bars label, e.g. "depthkv", "profile lisbon" or "pyramid + edits".
    pub fn label(&self) -> String {
        let base = match &self.shape {
            Shape::Profile { name, .. } => format!("profile {name}"),
            s => s.name().to_string(),
        };
        if self.edited {
            format!("{base} + edits")
        } else {
            base
        }
    }

    /// The allocation in a word, for pane titles: hand-edited splits are
    /// "manual", profiles go by their name.
    pub fn kind_name(&self) -> String {
        match &self.shape {
            _ if self.edited => "manual".to_string(),
            Shape::Profile { name, .. } => name.clone(),
            s => s.name().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_survive_global_change() {
        let mut b = Budgets::new(0.5, Shape::Uniform);
        b.configure(8, 400, &[36; 8], &[]).unwrap();
        assert_eq!(b.slots(), 1600);
        b.set_layer(2, 300).unwrap();
        b.toggle_lock(2);
        b.set_global(0.3).unwrap();
        assert_eq!(b.layers[2], 300);
        assert_eq!(b.slots(), b.total());
        assert_eq!(b.slots(), 960);
        assert_eq!(b.uniform.iter().sum::<usize>(), 960);
        assert!(b.set_layer(2, 10).is_err());
    }

    #[test]
    fn global_clamps_to_feasible() {
        let mut b = Budgets::new(0.5, Shape::Pyramid { beta: 20.0 });
        b.configure(4, 100, &[36; 4], &[]).unwrap();
        b.set_global(0.01).unwrap();
        assert!((b.global - 0.36).abs() < 1e-9);
        assert!(b.layers.iter().all(|&x| x == 36));
    }

    #[test]
    fn full_split_keeps_everything_and_ignores_edits() {
        let mut b = Budgets::new(0.25, Shape::Full);
        b.configure(4, 100, &[36; 4], &[]).unwrap();
        assert_eq!(b.layers, vec![100; 4]);
        assert_eq!(b.uniform.iter().sum::<usize>(), b.total());
        assert_eq!(b.set_layer(1, 50), Ok(false));
        b.set_global(0.5).unwrap();
        assert_eq!(b.layers, vec![100; 4]);
        // Turning it into a pruned split applies the global budget.
        b.set_shape(Shape::Pyramid { beta: 20.0 }).unwrap();
        assert_eq!(b.slots(), 200);
        assert_eq!(b.kind_name(), "pyramid");
        b.set_layer(3, 60).unwrap();
        assert_eq!((b.kind_name().as_str(), b.label().as_str()), ("manual", "pyramid + edits"));
    }
}
