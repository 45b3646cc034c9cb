//! Model hyper-parameters, read from GGUF metadata or a Hugging Face config.json.

use super::error::{EngineError, Result};
use candle_core::quantized::gguf_file;
use serde::Deserialize;

/// Architectures our forward pass implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
}

/// How RoPE pairs dimensions: GGUF llama weights are permuted for interleaved
/// pairs (2i, 2i+1); Hugging Face weights and qwen2 use halves (i, i + d/2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    Interleaved,
    Halves,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub n_layers: usize,
    pub hidden: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub max_context: usize,
    pub rope_theta: f32,
    pub rms_eps: f64,
    pub rope_style: RopeStyle,
    /// q/k/v projections carry a bias (qwen2).
    pub qkv_bias: bool,
}

impl ModelConfig {
    pub fn group_size(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    fn validate(self) -> Result<Self> {
        let bad = |m: String| Err(EngineError::BadConfig(m));
        if self.n_layers == 0 || self.n_heads == 0 || self.n_kv_heads == 0 {
            return bad("layers and heads must be positive".into());
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!("{} heads are not a multiple of {} KV heads", self.n_heads, self.n_kv_heads));
        }
        if !self.head_dim.is_multiple_of(2) || self.head_dim == 0 {
            return bad(format!("head_dim {} must be even", self.head_dim));
        }
        Ok(self)
    }
}

/// Maps an architecture name (GGUF `general.architecture` or HF `architectures[0]`).
pub fn arch_from_name(name: &str) -> Result<Arch> {
    match name {
        "llama" | "mistral" | "LlamaForCausalLM" | "MistralForCausalLM" => Ok(Arch::Llama),
        "qwen2" | "Qwen2ForCausalLM" => Ok(Arch::Qwen2),
        other => Err(EngineError::UnknownArchitecture(other.to_string())),
    }
}

pub fn from_gguf(ct: &gguf_file::Content) -> Result<ModelConfig> {
    let arch_name = ct
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| EngineError::MissingMetadata("general.architecture".into()))?;
    let arch = arch_from_name(&arch_name)?;
    let key = |k: &str| format!("{arch_name}.{k}");
    let get_u = |k: &str| -> Result<usize> {
        let full = key(k);
        ct.metadata
            .get(&full)
            .and_then(|v| v.to_u32().ok().or_else(|| v.to_u64().ok().map(|x| x as u32)))
            .map(|v| v as usize)
            .ok_or(EngineError::MissingMetadata(full))
    };
    let get_f = |k: &str| ct.metadata.get(&key(k)).and_then(|v| v.to_f32().ok());
    let hidden = get_u("embedding_length")?;
    let n_heads = get_u("attention.head_count")?;
    let n_kv_heads = get_u("attention.head_count_kv").unwrap_or(n_heads);
    let head_dim = get_u("rope.dimension_count").unwrap_or(hidden / n_heads.max(1));
    let vocab_size = match ct.metadata.get("tokenizer.ggml.tokens") {
        Some(gguf_file::Value::Array(a)) => a.len(),
        _ => ct
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .ok_or_else(|| EngineError::MissingMetadata("token_embd.weight".into()))?,
    };
    ModelConfig {
        arch,
        n_layers: get_u("block_count")?,
        hidden,
        n_heads,
        n_kv_heads,
        head_dim,
        vocab_size,
        max_context: get_u("context_length").unwrap_or(4096),
        rope_theta: get_f("rope.freq_base").unwrap_or(10_000.0),
        rms_eps: get_f("attention.layer_norm_rms_epsilon").unwrap_or(1e-5) as f64,
        rope_style: match arch {
            Arch::Llama => RopeStyle::Interleaved,
            Arch::Qwen2 => RopeStyle::Halves,
        },
        qkv_bias: arch == Arch::Qwen2,
    }
    .validate()
}

#[derive(Deserialize)]
struct HfConfig {
    #[serde(default)]
    architectures: Vec<String>,
    model_type: Option<String>,
    hidden_size: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    num_hidden_layers: usize,
    vocab_size: usize,
    max_position_embeddings: Option<usize>,
    rope_theta: Option<f32>,
    rms_norm_eps: Option<f64>,
    head_dim: Option<usize>,
    sliding_window: Option<serde_json::Value>,
    use_sliding_window: Option<bool>,
    #[serde(default)]
    tie_word_embeddings: bool,
}

/// Parses a Hugging Face config.json. Returns the config and whether the
/// output head is tied to the embeddings.
pub fn from_hf_json(text: &str) -> Result<(ModelConfig, bool)> {
    let hf: HfConfig = serde_json::from_str(text).map_err(|e| EngineError::BadConfig(format!("config.json: {e}")))?;
    let name = hf
        .architectures
        .first()
        .cloned()
        .or(hf.model_type.clone())
        .ok_or_else(|| EngineError::BadConfig("config.json names no architecture".into()))?;
    let arch = arch_from_name(&name)?;
    let sliding = hf.use_sliding_window.unwrap_or(false)
        || (name.starts_with("Mistral") && hf.sliding_window.as_ref().is_some_and(|v| !v.is_null()));
    if sliding {
        return Err(EngineError::BadConfig(
            "sliding-window attention is not supported (Mistral without sliding window only)".into(),
        ));
    }
    let cfg = ModelConfig {
        arch,
        n_layers: hf.num_hidden_layers,
        hidden: hf.hidden_size,
        n_heads: hf.num_attention_heads,
        n_kv_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
        head_dim: hf.head_dim.unwrap_or(hf.hidden_size / hf.num_attention_heads.max(1)),
        vocab_size: hf.vocab_size,
        max_context: hf.max_position_embeddings.unwrap_or(4096),
        rope_theta: hf.rope_theta.unwrap_or(10_000.0),
        rms_eps: hf.rms_norm_eps.unwrap_or(1e-5),
        rope_style: RopeStyle::Halves,
        qkv_bias: arch == Arch::Qwen2,
    }
    .validate()?;
    Ok((cfg, hf.tie_word_embeddings))
}
