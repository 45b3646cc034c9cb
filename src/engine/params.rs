//! Plain host data the engine hands out or takes: what a loaded model is,
//! and how to sample a continuation.

use serde::{Deserialize, Serialize};

/// What a client needs to know about the loaded model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub architecture: String,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub max_context: usize,
    pub device: String,
    pub dtype: String,
    /// Bytes one cached token costs in one layer (K and V, all KV heads).
    pub kv_bytes_per_token_layer: usize,
}

/// Sampling settings for a run. `temperature <= 0` means greedy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenParams {
    pub max_new_tokens: usize,
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub seed: u64,
}

impl GenParams {
    /// Greedy decoding of `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self { max_new_tokens, ..Default::default() }
    }

    /// A hashable identity of these settings (floats by their bits), for
    /// caches keyed by how a continuation was sampled.
    pub fn key(&self) -> (usize, u64, Option<u64>, u64) {
        (self.max_new_tokens, self.temperature.to_bits(), self.top_p.map(f64::to_bits), self.seed)
    }
}

impl Default for GenParams {
    fn default() -> Self {
        Self { max_new_tokens: 64, temperature: 0.0, top_p: None, seed: 299792458 }
    }
}
