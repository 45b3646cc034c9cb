//! The DepthKV paper's protocol: H2O as the token scorer, 60% global pruning
//! (keep 0.4), layer sensitivity by pruning one layer alone to keep 0.4, and
//! the sensitivity measured both as KL to the full cache and as the drop of
//! the task metric. Both allocations are compared with uniform H2O.

use crate::engine::error::{EngineError, Result};
use crate::engine::Engine;
use crate::eval::formats::EvalItem;
use crate::eval::methods::Method;
use crate::eval::record::SensitivityRecord;
use crate::eval::runner::{answer, EvalConfig};
use crate::prune::{apply, DepthRule, Scorer, SelectConfig, Strategy};
use crate::session::scoring::{self, Continuation};

/// The paper's global budget: 60% of the cache pruned.
pub const PAPER_KEEP: f64 = 0.4;

/// The paper's token scorer with our window and sinks.
pub fn paper_select(base: &SelectConfig) -> SelectConfig {
    SelectConfig { scorer: Scorer::H2o, ..*base }
}

/// Mean damage per layer when only that layer is pruned.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerAblation {
    /// Mean KL to the full cache, per layer.
    pub kl: Vec<f64>,
    /// Mean drop of the task metric (full minus pruned), per layer; `None`
    /// when no calibration prompt has answers.
    pub task_drop: Option<Vec<f64>>,
    pub prompts: Vec<String>,
}

/// Prunes each layer alone to `keep` (with `cfg.select`) on every prompt and
/// measures KL over the full cache's greedy continuation and the task metric
/// of the greedy answer. `progress(done, total)` per ablation; false cancels.
pub fn ablate_layers(
    engine: &Engine,
    items: &[EvalItem],
    cfg: &EvalConfig,
    keep: f64,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<LayerAblation> {
    if items.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    let n_layers = engine.config().n_layers;
    let total = items.len() * n_layers;
    let mut kl = vec![0.0; n_layers];
    let mut drops = vec![0.0; n_layers];
    let mut answered = 0usize;
    for (pi, e) in items.iter().enumerate() {
        let s = scoring::prepare(
            engine,
            &e.item.spec(cfg.chat),
            cfg.continuation_tokens,
            Continuation::Greedy,
            cfg.prefill,
        )?;
        let l = s.pre.tokens.len();
        let full = answer(engine, &s, e, &s.pre.cache, cfg.answer_tokens)?.map(|(_, sc)| e.metric.pick(&sc));
        answered += usize::from(full.is_some());
        let lim = apply::limits(&cfg.select, l);
        let ablated = ((keep * l as f64).round() as usize).clamp(lim.min, lim.max);
        for layer in 0..n_layers {
            let mut budgets = vec![l; n_layers];
            budgets[layer] = ablated;
            let (cache, _) = apply::prune(&s.pre, &budgets, &cfg.select, s.continuation.len())?;
            kl[layer] += s.quality(engine, &cache)?.kl;
            if let Some(f) = full {
                let pruned =
                    answer(engine, &s, e, &cache, cfg.answer_tokens)?.map_or(0.0, |(_, sc)| e.metric.pick(&sc));
                drops[layer] += f - pruned;
            }
            if !progress(pi * n_layers + layer + 1, total) {
                return Err(EngineError::Cancelled);
            }
        }
    }
    let n = items.len() as f64;
    Ok(LayerAblation {
        kl: kl.into_iter().map(|x| x / n).collect(),
        task_drop: (answered > 0).then(|| drops.into_iter().map(|x| x / answered as f64).collect()),
        prompts: items.iter().map(|e| e.item.id.clone()).collect(),
    })
}

/// Uniform H2O and the DepthKV allocations from an ablation (`depthkv-kl`,
/// and `depthkv-task` when the task drop was measured), with their records.
/// Negative task drops (pruning helped) count as no sensitivity.
pub fn paper_methods(ab: &LayerAblation, keep: f64, mix: f64, floor: f64) -> (Vec<Method>, Vec<SensitivityRecord>) {
    let depthkv = |s: &[f64]| Strategy::DepthKv {
        sensitivity: s.iter().map(|x| x.max(0.0)).collect(),
        rule: DepthRule::Proportional,
        mix,
        floor,
    };
    let record = |method: &str, measure: &str, per_layer: &[f64]| SensitivityRecord {
        method: method.into(),
        measure: measure.into(),
        ablation_keep: keep,
        prompts: ab.prompts.clone(),
        per_layer: per_layer.to_vec(),
    };
    let mut methods = vec![Method::global("uniform", Strategy::Uniform), Method::global("depthkv-kl", depthkv(&ab.kl))];
    let mut records = vec![record("depthkv-kl", "kl_to_full", &ab.kl)];
    if let Some(t) = &ab.task_drop {
        methods.push(Method::global("depthkv-task", depthkv(t)));
        records.push(record("depthkv-task", "task_score_drop", t));
    }
    (methods, records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_follow_the_measured_sensitivities() {
        let ab =
            LayerAblation { kl: vec![0.1, 0.0, 0.3], task_drop: Some(vec![-0.5, 1.0, 0.0]), prompts: vec!["a".into()] };
        let (m, r) = paper_methods(&ab, PAPER_KEEP, 0.2, 0.0);
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["uniform", "depthkv-kl", "depthkv-task"]);
        let run = paper_select(&SelectConfig::default());
        assert_eq!(run.scorer, Scorer::H2o);
        // The layer with the largest task drop gets the most tokens; the negative drop counts as 0.
        let b = m[2].budgets(PAPER_KEEP, 1000, 3, &run).unwrap();
        assert!(b[1] > b[0] && b[1] > b[2], "{b:?}");
        assert_eq!(b.iter().sum::<usize>(), 1200);
        assert_eq!(r[1].per_layer, vec![-0.5, 1.0, 0.0]);
        let no_task = LayerAblation { task_drop: None, ..ab };
        assert_eq!(paper_methods(&no_task, PAPER_KEEP, 0.2, 0.0).0.len(), 2);
    }
}
