//! Teacher-forced quality of a pruned cache against the full one: the shared
//! measurement behind calibration, evaluation and the TUI's pane metrics.

use crate::engine::cache::KvCache;
use crate::engine::error::Result;
use crate::engine::GenParams;
use crate::engine::{Engine, PrefillOptions, Prefilled};
use candle_core::{Tensor, D};

/// Quality of one pruned run over a continuation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Mean per-token KL(full ‖ pruned) of the next-token distributions.
    pub kl: f64,
    /// Share of positions whose argmax equals the full cache's.
    pub top1: f64,
    /// Mean negative log-likelihood of the continuation tokens.
    pub nll: f64,
}

/// A prompt to score: its text, whether the chat template applies, and an
/// optional reference continuation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PromptSpec<'a> {
    pub text: &'a str,
    pub chat: bool,
    pub reference: Option<&'a str>,
}

/// Which continuation a prompt is scored on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuation {
    /// The item's `reference` text when it has one, else greedy tokens (calibration).
    ReferenceFirst,
    /// Always the full cache's greedy tokens (evaluation: KL and top-1 over
    /// what the unpruned model says; a reference is then scored separately).
    Greedy,
}

/// A prompt ready to be scored: prefilled once, its continuation chosen and
/// the full cache's log-probabilities over it computed.
pub struct Scored {
    pub pre: Prefilled,
    pub continuation: Vec<u32>,
    pub full_logprobs: Tensor,
    /// The item's reference tokens, when it has a reference.
    pub reference: Option<Vec<u32>>,
}

/// Tokenizes and prefills an item and picks its continuation (`n_greedy`
/// greedy full-cache tokens unless `on` says to use the reference).
pub fn prepare(
    engine: &Engine,
    prompt: &PromptSpec<'_>,
    n_greedy: usize,
    on: Continuation,
    opts: PrefillOptions,
) -> Result<Scored> {
    let chat = prompt.chat && engine.codec.has_chat();
    let tokens = engine.encode(prompt.text, chat)?;
    let pre = engine.prefill(&tokens, opts)?;
    let reference = match prompt.reference.filter(|r| !r.is_empty()) {
        Some(r) => Some(engine.codec.encode_prompt(r, false)?),
        None => None,
    };
    let continuation = match (&reference, on) {
        (Some(r), Continuation::ReferenceFirst) => r.clone(),
        _ => {
            let params = GenParams::greedy(n_greedy);
            engine.generate(pre.cache.clone(), &pre.first_logits, &params, &mut |_| true)?
        }
    };
    let full_logprobs = engine.teacher_force(&pre.cache, &pre.first_logits, &continuation)?;
    Ok(Scored { pre, continuation, full_logprobs, reference })
}

impl Scored {
    /// Quality of `cache` (a pruned copy of this prompt's prefill) over the continuation.
    pub fn quality(&self, engine: &Engine, cache: &KvCache) -> Result<Quality> {
        let lp = engine.teacher_force(cache, &self.pre.first_logits, &self.continuation)?;
        compare(&self.full_logprobs, &lp, &self.continuation)
    }

    /// Mean NLL of the reference under `cache`, when the item has a reference.
    pub fn reference_nll(&self, engine: &Engine, cache: &KvCache) -> Result<Option<f64>> {
        let Some(r) = &self.reference else { return Ok(None) };
        let lp = engine.teacher_force(cache, &self.pre.first_logits, r)?;
        Ok(Some(compare(&lp, &lp, r)?.nll))
    }
}

/// KL(full ‖ pruned), top-1 agreement and NLL from two `[n, vocab]` log-prob matrices.
pub fn compare(full: &Tensor, pruned: &Tensor, tokens: &[u32]) -> Result<Quality> {
    let n = tokens.len().max(1) as f64;
    let kl = (full.exp()? * (full - pruned)?)?.sum(D::Minus1)?.sum_all()?.to_scalar::<f32>()? as f64 / n;
    let a = full.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let b = pruned.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let top1 = a.iter().zip(&b).filter(|(x, y)| x == y).count() as f64 / n;
    let idx = Tensor::new(tokens, pruned.device())?.unsqueeze(1)?;
    let nll = -(pruned.gather(&idx, 1)?.sum_all()?.to_scalar::<f32>()? as f64) / n;
    Ok(Quality { kl: kl.max(0.0), top1, nll })
}
