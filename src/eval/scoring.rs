//! Teacher-forced quality of a pruned cache against the full one: the shared
//! measurement behind calibration, evaluation and the TUI's pane metrics.

use crate::engine::cache::KvCache;
use crate::engine::error::Result;
use crate::engine::protocol::GenParams;
use crate::engine::{Engine, PrefillOptions, Prefilled};
use crate::eval::prompts::PromptItem;
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

/// A prompt ready to be scored: prefilled once, its continuation chosen and
/// the full cache's log-probabilities over it computed.
pub struct Scored {
    pub pre: Prefilled,
    pub continuation: Vec<u32>,
    /// Whether the continuation is the item's own reference text.
    pub is_reference: bool,
    pub full_logprobs: Tensor,
}

/// Tokenizes and prefills an item; the continuation is its `reference` when
/// given, else `n_greedy` greedy tokens of the full cache.
pub fn prepare(engine: &Engine, item: &PromptItem, default_chat: bool, n_greedy: usize, opts: PrefillOptions) -> Result<Scored> {
    let chat = item.chat.unwrap_or(default_chat) && engine.codec.has_chat();
    let tokens = engine.encode(&item.prompt, chat)?;
    let pre = engine.prefill(&tokens, opts)?;
    let (continuation, is_reference) = match item.reference.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => (engine.codec.encode_prompt(r, false)?, true),
        None => {
            let params = GenParams { max_new_tokens: n_greedy, ..Default::default() };
            (engine.generate(pre.cache.clone(), &pre.first_logits, &params, &mut |_| true)?, false)
        }
    };
    let full_logprobs = engine.teacher_force(&pre.cache, &pre.first_logits, &continuation)?;
    Ok(Scored { pre, continuation, is_reference, full_logprobs })
}

impl Scored {
    /// Quality of `cache` (a pruned copy of this prompt's prefill) over the continuation.
    pub fn quality(&self, engine: &Engine, cache: &KvCache) -> Result<Quality> {
        let lp = engine.teacher_force(cache, &self.pre.first_logits, &self.continuation)?;
        compare(&self.full_logprobs, &lp, &self.continuation)
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
