//! The evaluation harness: every method at every budget on every prompt,
//! from one prefill per prompt, with paired significance tests.

use crate::engine::cache::KvCache;
use crate::engine::error::{EngineError, Result};
use crate::engine::{Engine, GenParams, PrefillOptions};
use crate::eval::formats::EvalItem;
use crate::eval::methods::Method;
use crate::eval::metrics::{score_answers, TaskScores};
use crate::eval::record::{PromptRecord, RunRecord};
use crate::eval::report::{Comparison, EvalReport, MethodResult, PromptFailure};
use crate::prune::{apply, SelectConfig};
use crate::session::scoring::{self, Continuation, Quality, Scored};
use crate::stats;

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
    /// Write each prompt's token ids into its record (for other tools to replay).
    pub record_tokens: bool,
    /// Write the kept positions of every pruned run (large).
    pub record_kept: bool,
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
            record_tokens: false,
            record_kept: false,
        }
    }
}

/// One method at one budget on one prompt.
#[derive(Debug, Clone)]
struct Sample {
    quality: Quality,
    /// Reference NLL, only when the prompt carried a reference text.
    nll_reference: Option<f64>,
    /// Generated answer and its scores, when the prompt has answers.
    answer: Option<(String, TaskScores)>,
    /// The prompt's task metric on the answer.
    task_score: Option<f64>,
    kv_bytes: usize,
}

impl Sample {
    fn correct(&self) -> Option<bool> {
        self.answer.as_ref().map(|(_, s)| s.contains > 0.0)
    }

    fn record(&self, method: &str, budget: f64, kept: Option<Vec<Vec<Vec<u32>>>>) -> RunRecord {
        RunRecord {
            method: method.to_string(),
            budget,
            kl_to_full: self.quality.kl,
            top1_agreement: self.quality.top1,
            nll_reference: self.nll_reference,
            answer: self.answer.as_ref().map(|(a, _)| a.clone()),
            scores: self.answer.as_ref().map(|(_, s)| *s),
            task_score: self.task_score,
            kv_bytes: self.kv_bytes as u64,
            kept,
        }
    }
}

/// Whether generated text contains one of the accepted answers (case-insensitive).
pub fn is_correct(text: &str, answers: &[String]) -> bool {
    score_answers(text, answers).contains > 0.0
}

/// Greedy answer from `cache` and its task scores, when the item has answers.
pub fn answer(
    engine: &Engine,
    s: &Scored,
    item: &EvalItem,
    cache: &KvCache,
    n: usize,
) -> Result<Option<(String, TaskScores)>> {
    let Some(answers) = item.item.answers.as_ref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let params = GenParams { max_new_tokens: n, ..Default::default() };
    let out = engine.generate(cache.clone(), &s.pre.first_logits, &params, &mut |_| true)?;
    let text = engine.decode(&out);
    let scores = score_answers(&text, answers);
    Ok(Some((text, scores)))
}

fn sample(engine: &Engine, s: &Scored, item: &EvalItem, cache: &KvCache, cfg: &EvalConfig) -> Result<Sample> {
    let quality = s.quality(engine, cache)?;
    let answer = answer(engine, s, item, cache, cfg.answer_tokens)?;
    Ok(Sample {
        quality,
        nll_reference: s.reference_nll(engine, cache)?,
        task_score: answer.as_ref().map(|(_, sc)| item.metric.pick(sc)),
        answer,
        kv_bytes: cache.bytes(),
    })
}

/// Runs the evaluation. `progress(done, total)` after each prompt; false cancels.
pub fn evaluate(
    engine: &Engine,
    prompts: &[EvalItem],
    cfg: &EvalConfig,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<EvalReport> {
    if prompts.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    // samples[method][budget][prompt]; method 0 is the full cache (one budget).
    let mut full = Vec::new();
    let mut pruned = vec![vec![Vec::new(); cfg.budgets.len()]; cfg.methods.len()];
    let mut records = Vec::with_capacity(prompts.len());
    let mut failed_prompts = Vec::new();
    for (pi, e) in prompts.iter().enumerate() {
        // A prompt counts only when every method measured it, so the
        // per-prompt pairing behind the comparisons stays aligned.
        match eval_prompt(engine, e, cfg) {
            Ok((f, per_method, record)) => {
                full.push(f);
                for (mi, per_budget) in per_method.into_iter().enumerate() {
                    for (bi, x) in per_budget.into_iter().enumerate() {
                        pruned[mi][bi].push(x);
                    }
                }
                records.push(record);
            }
            Err(EngineError::Cancelled) => return Err(EngineError::Cancelled),
            Err(err) => failed_prompts.push(PromptFailure { id: e.item.id.clone(), error: err.to_string() }),
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
    report.per_prompt = records;
    Ok(report)
}

/// The full cache's sample, `[method][budget]` pruned samples and the
/// per-prompt record of one prompt.
fn eval_prompt(engine: &Engine, e: &EvalItem, cfg: &EvalConfig) -> Result<(Sample, Vec<Vec<Sample>>, PromptRecord)> {
    let s =
        scoring::prepare(engine, &e.item.spec(cfg.chat), cfg.continuation_tokens, Continuation::Greedy, cfg.prefill)?;
    let l = s.pre.tokens.len();
    let f = sample(engine, &s, e, &s.pre.cache, cfg)?;
    let mut runs = vec![f.record("full", 1.0, None)];
    let mut per_method = Vec::with_capacity(cfg.methods.len());
    for m in &cfg.methods {
        let select = m.select_config(&cfg.select);
        let mut per_budget = Vec::with_capacity(cfg.budgets.len());
        for &b in &cfg.budgets {
            let budgets = m
                .budgets_for_prompt(b, &s.pre, &cfg.select)
                .map_err(|err| EngineError::BadSelection(format!("{}: {err}", m.name)))?;
            let (cache, occupancy) = apply::prune_as(&s.pre, &budgets, &select, s.continuation.len(), m.precision)?;
            let x = sample(engine, &s, e, &cache, cfg)?;
            runs.push(x.record(&m.name, b, cfg.record_kept.then_some(occupancy.kept)));
            per_budget.push(x);
        }
        per_method.push(per_budget);
    }
    let record = PromptRecord {
        id: e.item.id.clone(),
        prompt_tokens: l,
        tokens: cfg.record_tokens.then(|| s.pre.tokens.clone()),
        continuation: s.continuation.clone(),
        task_metric: e.metric,
        answers: e.item.answers.clone(),
        runs,
    };
    Ok((f, per_method, record))
}

fn summarize(method: &str, budget: f64, samples: &[Sample]) -> MethodResult {
    let n = samples.len() as f64;
    let mean = |f: &dyn Fn(&Sample) -> f64| samples.iter().map(f).sum::<f64>() / n;
    let mean_of = |v: Vec<f64>| (!v.is_empty()).then(|| stats::mean(&v));
    let answered: Vec<bool> = samples.iter().filter_map(Sample::correct).collect();
    MethodResult {
        method: method.to_string(),
        budget,
        kl_to_full: mean(&|s| s.quality.kl),
        top1_agreement: mean(&|s| s.quality.top1),
        nll_reference: mean_of(samples.iter().filter_map(|s| s.nll_reference).collect()),
        accuracy: (!answered.is_empty())
            .then(|| answered.iter().filter(|&&c| c).count() as f64 / answered.len() as f64),
        task_score: mean_of(samples.iter().filter_map(|s| s.task_score).collect()),
        kv_bytes: mean(&|s| s.kv_bytes as f64).round() as u64,
        n_prompts: samples.len(),
    }
}

/// A per-prompt measurement and its report name; `None` where not measured.
type Metric = (&'static str, fn(&Sample) -> Option<f64>);

/// Paired tests of the first `depthkv*` method against every method that is
/// not one, per budget, on KL to full, top-1 agreement and (when measured on
/// every prompt) the task score.
fn compare_to_depthkv(cfg: &EvalConfig, pruned: &[Vec<Vec<Sample>>]) -> Vec<Comparison> {
    let is_depthkv = |m: &Method| m.name.starts_with("depthkv");
    let mut out = Vec::new();
    for (d, dm) in cfg.methods.iter().enumerate().filter(|(_, m)| is_depthkv(m)) {
        for (bi, &b) in cfg.budgets.iter().enumerate() {
            for (oi, other) in cfg.methods.iter().enumerate().filter(|(_, m)| !is_depthkv(m)) {
                let metrics: [Metric; 3] = [
                    ("kl_to_full", |s| Some(s.quality.kl)),
                    ("top1_agreement", |s| Some(s.quality.top1)),
                    ("task_score", |s| s.task_score),
                ];
                for (name, f) in metrics {
                    let a: Option<Vec<f64>> = pruned[d][bi].iter().map(f).collect();
                    let o: Option<Vec<f64>> = pruned[oi][bi].iter().map(f).collect();
                    let (Some(a), Some(o)) = (a, o) else { continue };
                    let (mean_diff, p_value) = stats::paired_permutation_test(&a, &o, cfg.permutations, cfg.seed);
                    out.push(Comparison {
                        a: dm.name.clone(),
                        b: other.name.clone(),
                        budget: b,
                        metric: name.into(),
                        mean_diff,
                        p_value,
                    });
                }
            }
        }
    }
    out
}
