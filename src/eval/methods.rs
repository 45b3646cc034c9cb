//! The compared methods of an evaluation: how each sizes the layers of a
//! pruned cache and how it picks tokens inside a layer.
//!
//! Most methods split one global budget with a [`Strategy`] and share the
//! run's selection settings. The kvpress-exact methods size each layer the
//! way NVIDIA kvpress does and bring their own selection (no forced sinks), so
//! that a parity run compares like with like.

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
}

impl Method {
    /// A method splitting the global budget by `strategy` with the run's selection.
    pub fn global(name: &str, strategy: Strategy) -> Self {
        Method { name: name.to_string(), budgeting: Budgeting::Global(strategy), select: None }
    }

    /// The selection settings this method uses in a run configured with `run`.
    pub fn select_config(&self, run: &SelectConfig) -> SelectConfig {
        self.select.unwrap_or(*run)
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
    vec![
        Method { name: "snapkv".into(), budgeting: Budgeting::Global(Strategy::Uniform), select: Some(ours) },
        Method { name: "snapkv-kvpress".into(), budgeting: Budgeting::KvpressUniform, select: kvpress(Scorer::SnapKv) },
        Method {
            name: "streaming-kvpress".into(),
            budgeting: Budgeting::KvpressUniform,
            select: kvpress(Scorer::Streaming),
        },
        Method {
            name: "pyramid".into(),
            budgeting: Budgeting::Global(Strategy::Pyramid { beta: PYRAMID_BETA }),
            select: Some(ours),
        },
        Method {
            name: "pyramid-kvpress".into(),
            budgeting: Budgeting::KvpressPyramid { beta: PYRAMID_BETA },
            select: kvpress(Scorer::SnapKv),
        },
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
