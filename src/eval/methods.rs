//! The compared methods of an evaluation: how each sizes the layers of a
//! pruned cache and how it picks tokens inside a layer.
//!
//! Most methods split one global budget with a [`Strategy`] and share the
//! run's selection settings. The kvpress-exact methods size each layer the
//! way NVIDIA kvpress does and bring their own selection (no forced sinks), so
//! that a parity run compares like with like.

use crate::engine::{KvPrecision, Prefilled};
use crate::prune::{
    apply, kvpress_n_kept, kvpress_pyramid_n_kept, PruneError, Scorer, SelectConfig, Strategy, PYRAMID_BETA,
};

/// How the per-layer token counts are chosen for a global budget.
#[derive(Debug, Clone, PartialEq)]
pub enum Budgeting {
    /// One global total `round(budget * L * layers)`, split by a strategy.
    Global(Strategy),
    /// kvpress ScorerPress: every layer keeps `int(L * budget)`.
    KvpressUniform,
    /// kvpress PyramidKVPress's schedule (its `get_layer_budget`).
    KvpressPyramid { beta: f64 },
}

/// A named way of pruning the cache.
#[derive(Debug, Clone)]
pub struct Method {
    pub name: String,
    pub budgeting: Budgeting,
    /// Selection settings of this method; `None` uses the run's.
    pub select: Option<SelectConfig>,
    /// How the kept tokens are stored.
    pub precision: KvPrecision,
    /// Tokens per budget unit: 1 for a token budget; with memory budgets,
    /// how many more tokens this precision stores in the same bytes.
    pub memory_scale: f64,
}

impl Method {
    /// A method splitting the global budget by `strategy` with the run's selection.
    pub fn global(name: &str, strategy: Strategy) -> Self {
        Method {
            name: name.to_string(),
            budgeting: Budgeting::Global(strategy),
            select: None,
            precision: KvPrecision::Native,
            memory_scale: 1.0,
        }
    }

    /// The selection settings this method uses in a run configured with `run`.
    pub fn select_config(&self, run: &SelectConfig) -> SelectConfig {
        self.select.unwrap_or(*run)
    }

    /// Tokens kept per layer at `budget` for a prefilled prompt (per-prompt
    /// strategies read its statistics).
    pub fn budgets_for_prompt(
        &self,
        budget: f64,
        pre: &Prefilled,
        run: &SelectConfig,
    ) -> Result<Vec<usize>, PruneError> {
        match &self.budgeting {
            Budgeting::Global(s) => {
                let budget = (budget * self.memory_scale).min(1.0);
                apply::budgets_for_prefill(s, budget, pre, &self.select_config(run))
            }
            _ => self.budgets(budget, pre.tokens.len(), pre.stats.window.len(), run),
        }
    }

    /// Tokens kept per layer at `budget` for a prompt of `prompt_len` tokens.
    pub fn budgets(
        &self,
        budget: f64,
        prompt_len: usize,
        n_layers: usize,
        run: &SelectConfig,
    ) -> Result<Vec<usize>, PruneError> {
        let select = self.select_config(run);
        let budget = (budget * self.memory_scale).min(1.0);
        match &self.budgeting {
            Budgeting::Global(s) => apply::budgets_for(s, budget, prompt_len, n_layers, &select),
            Budgeting::KvpressUniform => Ok(vec![kvpress_n_kept(prompt_len, budget); n_layers]),
            Budgeting::KvpressPyramid { beta } => Ok((0..n_layers)
                .map(|l| kvpress_pyramid_n_kept(prompt_len, budget, select.window, *beta, l, n_layers))
                .collect()),
        }
    }
}

/// Our default methods beside kvpress's exact ones, for a parity run:
/// `snapkv` (ours: 4 sinks, one global total), `snapkv-kvpress`,
/// `streaming-kvpress`, `pyramid` (ours) and `pyramid-kvpress`.
pub fn kvpress_parity_methods(window: usize, kernel: usize) -> Vec<Method> {
    let ours = SelectConfig { scorer: Scorer::SnapKv, window, kernel, ..SelectConfig::default() };
    let kvpress = |scorer| Some(SelectConfig::kvpress(scorer, window, kernel));
    let method = |name: &str, budgeting, select| Method {
        name: name.into(),
        budgeting,
        select,
        precision: KvPrecision::Native,
        memory_scale: 1.0,
    };
    vec![
        method("snapkv", Budgeting::Global(Strategy::Uniform), Some(ours)),
        method("snapkv-kvpress", Budgeting::KvpressUniform, kvpress(Scorer::SnapKv)),
        method("streaming-kvpress", Budgeting::KvpressUniform, kvpress(Scorer::Streaming)),
        method("pyramid", Budgeting::Global(Strategy::Pyramid { beta: PYRAMID_BETA }), Some(ours)),
        method("pyramid-kvpress", Budgeting::KvpressPyramid { beta: PYRAMID_BETA }, kvpress(Scorer::SnapKv)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvpress_methods_size_layers_like_kvpress() {
        let run = SelectConfig::default();
        let m = kvpress_parity_methods(32, 7);
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["snapkv", "snapkv-kvpress", "streaming-kvpress", "pyramid", "pyramid-kvpress"]);
        // Ours rounds one global total (0.1 * 2000 * 30 = 6000 -> 200 a layer); kvpress truncates per layer.
        assert_eq!(m[0].budgets(0.1, 2000, 30, &run).unwrap(), vec![200; 30]);
        assert_eq!(m[1].budgets(0.1, 2000, 30, &run).unwrap(), vec![199; 30]);
        assert_eq!(m[1].select_config(&run).sinks, 0);
        assert_eq!(m[2].select_config(&run).scorer, Scorer::Streaming);
        let p = m[4].budgets(0.4, 4000, 30, &run).unwrap();
        assert_eq!((p[0], p[29]), (3120, 80));
        let g = Method::global("u", Strategy::Uniform);
        assert_eq!(g.select_config(&run), run);
    }
}
