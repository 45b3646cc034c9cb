//! candle-transformers' stock quantized_llama, driven the same way as ours.

use crate::engine::error::{EngineError, Result};
use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor, D};
use candle_transformers::models::quantized_llama::{ModelWeights, MAX_SEQ_LEN};
use std::path::Path;
use std::time::Instant;

/// The stock model's fixed maximum context.
pub const STOCK_MAX_CONTEXT: usize = MAX_SEQ_LEN;

pub fn load(path: &Path, device: &Device) -> Result<ModelWeights> {
    let mut f = std::fs::File::open(path).map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?;
    let ct = gguf_file::Content::read(&mut f)
        .map_err(|e| EngineError::BadGguf { path: path.to_path_buf(), reason: e.to_string() })?;
    Ok(ModelWeights::from_gguf(ct, &mut f, device)?)
}

/// Prefills `tokens` in one forward (as the stock examples do) and decodes
/// `n` greedy tokens; returns (prefill tok/s, decode tok/s).
pub fn run(model: &mut ModelWeights, tokens: &[u32], n: usize, device: &Device) -> Result<(f64, f64)> {
    model.clear_kv_cache();
    device.synchronize()?;
    let start = Instant::now();
    let input = Tensor::new(tokens, device)?.unsqueeze(0)?;
    let logits = model.forward(&input, 0)?;
    let mut tok = logits.argmax(D::Minus1)?.flatten_all()?.to_vec1::<u32>()?[0];
    let prefill = tokens.len() as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for i in 0..n {
        let input = Tensor::new(&[tok], device)?.unsqueeze(0)?;
        let logits = model.forward(&input, tokens.len() + i)?;
        tok = logits.argmax(D::Minus1)?.flatten_all()?.to_vec1::<u32>()?[0];
    }
    Ok((prefill, n as f64 / start.elapsed().as_secs_f64()))
}
