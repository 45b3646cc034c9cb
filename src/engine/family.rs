//! The one place that says how model families differ. The forward pass is
//! shared; a family is data: which norms, activation, biases and attention
//! options its layers use, and where its sliding-window layers sit.

use super::error::{EngineError, Result};

/// Model families our forward pass implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Llama 1/2/3.x and everything llama.cpp files under `llama`.
    Llama,
    /// Mistral v0.1 (sliding window) and later (no window).
    Mistral,
    Qwen2,
    Qwen3,
    Gemma,
    Gemma2,
    /// Gemma 3 text models.
    Gemma3,
    /// Phi-3 and Phi-3.5.
    Phi3,
}

/// The MLP's gate activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// GELU, tanh approximation (`gelu_pytorch_tanh`).
    GeluTanh,
    /// GELU with the exact erf.
    Gelu,
}

impl Activation {
    /// Reads a Hugging Face activation name.
    pub fn from_hf(name: &str) -> Result<Self> {
        match name {
            "silu" | "swish" => Ok(Self::Silu),
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Ok(Self::GeluTanh),
            "gelu" => Ok(Self::Gelu),
            other => Err(EngineError::BadConfig(format!("unsupported activation `{other}`"))),
        }
    }
}

/// Which layers attend through a sliding window when the checkpoint does
/// not list them (GGUF files, older config.json files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowPattern {
    /// Every layer, when a window is given.
    All,
    /// Layers 0, 2, 4, … are local, the others global (Gemma 2).
    EvenLocal,
    /// Five local layers, then one global (Gemma 3): local unless (i + 1) % 6 == 0.
    OneGlobalIn(usize),
}

impl WindowPattern {
    pub fn is_local(self, layer: usize) -> bool {
        match self {
            Self::All => true,
            Self::EvenLocal => layer.is_multiple_of(2),
            Self::OneGlobalIn(n) => !(layer + 1).is_multiple_of(n),
        }
    }
}

/// What distinguishes a family's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traits {
    pub activation: Activation,
    /// q/k/v projections carry a bias.
    pub qkv_bias: bool,
    /// Per-head RMSNorm of queries and keys before RoPE.
    pub qk_norm: bool,
    /// Norms after attention and after the MLP too (Gemma 2/3).
    pub post_norms: bool,
    /// Embeddings multiplied by sqrt(hidden).
    pub embed_scale: bool,
    /// Hugging Face norm weights `w` act as `1 + w` (llama.cpp stores `1 + w`).
    pub norm_plus_one: bool,
    /// q, k, v in one projection; gate and up in one (Phi-3).
    pub fused_projections: bool,
    pub window_pattern: WindowPattern,
    /// RoPE pairs of GGUF weights: llama.cpp permutes `llama` q/k rows for
    /// interleaved pairs; every other family keeps halves.
    pub gguf_interleaved_rope: bool,
}

const BASE: Traits = Traits {
    activation: Activation::Silu,
    qkv_bias: false,
    qk_norm: false,
    post_norms: false,
    embed_scale: false,
    norm_plus_one: false,
    fused_projections: false,
    window_pattern: WindowPattern::All,
    gguf_interleaved_rope: false,
};

const GEMMA: Traits = Traits { activation: Activation::GeluTanh, embed_scale: true, norm_plus_one: true, ..BASE };

impl Family {
    /// Maps GGUF `general.architecture`, HF `architectures[0]` or `model_type`.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "llama" | "LlamaForCausalLM" => Self::Llama,
            "mistral" | "MistralForCausalLM" => Self::Mistral,
            "qwen2" | "Qwen2ForCausalLM" => Self::Qwen2,
            "qwen3" | "Qwen3ForCausalLM" => Self::Qwen3,
            "gemma" | "GemmaForCausalLM" => Self::Gemma,
            "gemma2" | "Gemma2ForCausalLM" => Self::Gemma2,
            "gemma3" | "gemma3_text" | "Gemma3ForCausalLM" => Self::Gemma3,
            "phi3" | "Phi3ForCausalLM" => Self::Phi3,
            other => return Err(EngineError::UnknownArchitecture(other.to_string())),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Mistral => "mistral",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Gemma => "gemma",
            Self::Gemma2 => "gemma2",
            Self::Gemma3 => "gemma3",
            Self::Phi3 => "phi3",
        }
    }

    pub fn traits(self) -> Traits {
        match self {
            Self::Llama | Self::Mistral => Traits { gguf_interleaved_rope: true, ..BASE },
            Self::Qwen2 => Traits { qkv_bias: true, ..BASE },
            Self::Qwen3 => Traits { qk_norm: true, ..BASE },
            Self::Gemma => GEMMA,
            Self::Gemma2 => Traits { post_norms: true, window_pattern: WindowPattern::EvenLocal, ..GEMMA },
            Self::Gemma3 => {
                Traits { post_norms: true, qk_norm: true, window_pattern: WindowPattern::OneGlobalIn(6), ..GEMMA }
            }
            Self::Phi3 => Traits { fused_projections: true, ..BASE },
        }
    }
}

/// Names every family, for messages.
pub const SUPPORTED: &str = "llama (Llama 1-3.x), mistral, qwen2, qwen3, gemma, gemma2, gemma3 (text), phi3";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_patterns_match_the_reference_layouts() {
        let gemma2: Vec<bool> = (0..4).map(|i| WindowPattern::EvenLocal.is_local(i)).collect();
        assert_eq!(gemma2, [true, false, true, false]);
        let gemma3: Vec<bool> = (0..7).map(|i| WindowPattern::OneGlobalIn(6).is_local(i)).collect();
        assert_eq!(gemma3, [true, true, true, true, true, false, true]);
    }

    #[test]
    fn unknown_names_are_refused_by_name() {
        let e = Family::from_name("falcon").unwrap_err().to_string();
        assert!(e.contains("falcon"), "{e}");
        assert_eq!(Family::from_name("gemma3_text").unwrap(), Family::Gemma3);
    }
}
