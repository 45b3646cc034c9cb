//! The evaluation harness: every method at every budget on every prompt,
//! from one prefill per prompt, with paired significance tests.

use crate::engine::error::{EngineError, Result};
use crate::engine::GenParams;
use crate::engine::{Engine, PrefillOptions};
use crate::eval::prompts::PromptItem;
use crate::eval::report::{Comparison, EvalReport, MethodResult, PromptFailure};
use crate::prune::{apply, SelectConfig, Strategy};
use crate::session::scoring::{self, Continuation, Quality, Scored};
use crate::stats;

/// A named way of splitting the budget across layers.
#[derive(Debug, Clone)]
pub struct Method {
    pub name: String,
    pub strategy: Strategy,
}

#[derive(Debug, Clone)]
pub struct EvalConfig {
    pub budgets: Vec<f64>,
    /// Compared methods; `full` (no pruning) is always measured as well.
    pub methods: Vec<Method>,
    /// Greedy full-cache tokens scored when a prompt has no reference.
    pub continuation_tokens: usize,
    /// Tokens generated to check `answers`.
    pub answer_tokens: usize,
    pub select: SelectConfig,
    pub prefill: PrefillOptions,
    pub chat: bool,
    pub permutations: usize,
    pub seed: u64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            budgets: vec![0.1, 0.2, 0.4],
            methods: Vec::new(),
            continuation_tokens: 32,
            answer_tokens: 24,
            select: SelectConfig::default(),
            prefill: PrefillOptions::default(),
            chat: true,
            permutations: 5000,
            seed: 11,
        }
    }
}

/// One method at one budget on one prompt.
#[derive(Debug, Clone, Copy)]
struct Sample {
    quality: Quality,
    /// Reference NLL, only when the prompt carried a reference text.
    nll_reference: Option<f64>,
    correct: Option<bool>,
    kv_bytes: usize,
}

/// Whether generated text contains one of the accepted answers (case-insensitive).
pub fn is_correct(text: &str, answers: &[String]) -> bool {
    let t = text.to_lowercase();
    answers.iter().any(|a| t.contains(&a.to_lowercase()))
}

fn answer(
    engine: &Engine,
    s: &Scored,
    item: &PromptItem,
    cache: &crate::engine::cache::KvCache,
    n: usize,
) -> Result<Option<bool>> {
    let Some(answers) = item.answers.as_ref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let params = GenParams { max_new_tokens: n, ..Default::default() };
    let out = engine.generate(cache.clone(), &s.pre.first_logits, &params, &mut |_| true)?;
    Ok(Some(is_correct(&engine.decode(&out), answers)))
}

fn sample(
    engine: &Engine,
    s: &Scored,
    item: &PromptItem,
    cache: &crate::engine::cache::KvCache,
    cfg: &EvalConfig,
) -> Result<Sample> {
    let quality = s.quality(engine, cache)?;
    Ok(Sample {
        quality,
        nll_reference: s.reference_nll(engine, cache)?,
        correct: answer(engine, s, item, cache, cfg.answer_tokens)?,
        kv_bytes: cache.bytes(),
    })
}

/// Runs the evaluation. `progress(done, total)` after each prompt; false cancels.
pub fn evaluate(
    engine: &Engine,
    prompts: &[PromptItem],
    cfg: &EvalConfig,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<EvalReport> {
    if prompts.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    // samples[method][budget][prompt]; method 0 is the full cache (one budget).
    let mut full = Vec::new();
    let mut pruned = vec![vec![Vec::new(); cfg.budgets.len()]; cfg.methods.len()];
    let mut failed_prompts = Vec::new();
    for (pi, item) in prompts.iter().enumerate() {
        // A prompt counts only when every method measured it, so the
        // per-prompt pairing behind the comparisons stays aligned.
        match eval_prompt(engine, item, cfg) {
            Ok((f, per_method)) => {
                full.push(f);
                for (mi, per_budget) in per_method.into_iter().enumerate() {
                    for (bi, s) in per_budget.into_iter().enumerate() {
                        pruned[mi][bi].push(s);
                    }
                }
            }
            Err(EngineError::Cancelled) => return Err(EngineError::Cancelled),
            Err(e) => failed_prompts.push(PromptFailure { id: item.id.clone(), error: e.to_string() }),
        }
        if !progress(pi + 1, prompts.len()) {
            return Err(EngineError::Cancelled);
        }
    }
    if full.is_empty() {
        let first = failed_prompts.first().map(|f| format!(" (first: {}: {})", f.id, f.error)).unwrap_or_default();
        return Err(EngineError::BadSelection(format!("every prompt failed{first}")));
    }
    let mut report = EvalReport { failed_prompts, ..Default::default() };
    report.results.push(summarize("full", 1.0, &full));
    for (m, per_budget) in cfg.methods.iter().zip(&pruned) {
        for (&b, samples) in cfg.budgets.iter().zip(per_budget) {
            report.results.push(summarize(&m.name, b, samples));
        }
    }
    report.comparisons = compare_to_depthkv(cfg, &pruned);
    Ok(report)
}

/// The full cache's sample and `[method][budget]` pruned samples of one prompt.
fn eval_prompt(engine: &Engine, item: &PromptItem, cfg: &EvalConfig) -> Result<(Sample, Vec<Vec<Sample>>)> {
    let s = scoring::prepare(engine, &item.spec(cfg.chat), cfg.continuation_tokens, Continuation::Greedy, cfg.prefill)?;
    let full = sample(engine, &s, item, &s.pre.cache, cfg)?;
    let mut per_method = Vec::with_capacity(cfg.methods.len());
    for m in &cfg.methods {
        let mut per_budget = Vec::with_capacity(cfg.budgets.len());
        for &b in &cfg.budgets {
            let budgets = apply::budgets_for_prefill(&m.strategy, b, &s.pre, &cfg.select)
                .map_err(|e| EngineError::BadSelection(format!("{}: {e}", m.name)))?;
            let (cache, _) = apply::prune(&s.pre, &budgets, &cfg.select, s.continuation.len())?;
            per_budget.push(sample(engine, &s, item, &cache, cfg)?);
        }
        per_method.push(per_budget);
    }
    Ok((full, per_method))
}

fn summarize(method: &str, budget: f64, samples: &[Sample]) -> MethodResult {
    let n = samples.len() as f64;
    let mean = |f: &dyn Fn(&Sample) -> f64| samples.iter().map(f).sum::<f64>() / n;
    let refs: Vec<f64> = samples.iter().filter_map(|s| s.nll_reference).collect();
    let answered: Vec<bool> = samples.iter().filter_map(|s| s.correct).collect();
    MethodResult {
        method: method.to_string(),
        budget,
        kl_to_full: mean(&|s| s.quality.kl),
        top1_agreement: mean(&|s| s.quality.top1),
        nll_reference: (!refs.is_empty()).then(|| stats::mean(&refs)),
        accuracy: (!answered.is_empty())
            .then(|| answered.iter().filter(|&&c| c).count() as f64 / answered.len() as f64),
        kv_bytes: mean(&|s| s.kv_bytes as f64).round() as u64,
        n_prompts: samples.len(),
    }
}

/// A per-prompt measurement and its report name.
type Metric = (&'static str, fn(&Sample) -> f64);

/// Paired tests of `depthkv` against every other method, per budget, on KL
/// to full and top-1 agreement.
fn compare_to_depthkv(cfg: &EvalConfig, pruned: &[Vec<Vec<Sample>>]) -> Vec<Comparison> {
    let Some(d) = cfg.methods.iter().position(|m| m.name == "depthkv") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (bi, &b) in cfg.budgets.iter().enumerate() {
        for (oi, other) in cfg.methods.iter().enumerate().filter(|(i, _)| *i != d) {
            let metrics: [Metric; 2] = [("kl_to_full", |s| s.quality.kl), ("top1_agreement", |s| s.quality.top1)];
            for (name, f) in metrics {
                let a: Vec<f64> = pruned[d][bi].iter().map(f).collect();
                let o: Vec<f64> = pruned[oi][bi].iter().map(f).collect();
                let (mean_diff, p_value) = stats::paired_permutation_test(&a, &o, cfg.permutations, cfg.seed);
                out.push(Comparison {
                    a: "depthkv".into(),
                    b: other.name.clone(),
                    budget: b,
                    metric: name.into(),
                    mean_diff,
                    p_value,
                });
            }
        }
    }
    out
}
