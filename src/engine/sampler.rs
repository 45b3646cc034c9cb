//! Choosing the next token: greedy, or seeded temperature / top-p sampling
//! (candle-transformers' LogitsProcessor, so a seed always gives the same text).

use super::error::Result;
use super::params::GenParams;
use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};

pub struct Sampler(LogitsProcessor);

impl Sampler {
    pub fn new(params: &GenParams) -> Self {
        let sampling = if params.temperature <= 0.0 {
            Sampling::ArgMax
        } else {
            match params.top_p {
                Some(p) if p > 0.0 && p < 1.0 => Sampling::TopP { p, temperature: params.temperature },
                _ => Sampling::All { temperature: params.temperature },
            }
        };
        Self(LogitsProcessor::from_sampling(params.seed, sampling))
    }

    /// Samples from logits of shape `[vocab]` or `[1, vocab]`.
    pub fn sample(&mut self, logits: &Tensor) -> Result<u32> {
        let logits = if logits.rank() == 2 { logits.squeeze(0)? } else { logits.clone() };
        Ok(self.0.sample(&logits)?)
    }
}
