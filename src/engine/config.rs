//! Model hyper-parameters, read from GGUF metadata or a Hugging Face config.json.
//! Every number that sizes an allocation is checked here first.

use super::error::{EngineError, Result};
pub use super::family::{Activation, Family};
use super::family::{Traits, WindowPattern};
use super::rope::{self, Rope, Scaling};
use candle_core::quantized::gguf_file;
use serde::Deserialize;
use serde_json::Value;

/// Former name of [`Family`].
pub type Arch = Family;

/// How RoPE pairs dimensions: GGUF llama weights are permuted for interleaved
/// pairs (2i, 2i+1); Hugging Face weights and the other families use halves (i, i + d/2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    Interleaved,
    Halves,
}

/// What one layer's attention looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerKind {
    /// A query sees only keys fewer than `window` positions back (itself included).
    pub window: Option<usize>,
    /// Index into `ModelConfig::ropes`: 0 global, 1 local (Gemma 3).
    pub rope: usize,
}

/// Limits no real checkpoint comes near; larger values are corrupt metadata
/// that would otherwise size an allocation.
pub mod limits {
    pub const LAYERS: usize = 1024;
    pub const HIDDEN: usize = 1 << 17;
    pub const HEADS: usize = 1 << 12;
    pub const HEAD_DIM: usize = 1 << 12;
    pub const VOCAB: usize = 1 << 23;
    /// Positions are stored as u32 in the cache.
    pub const CONTEXT: usize = 1 << 31;
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: Family,
    pub n_layers: usize,
    pub hidden: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub max_context: usize,
    /// Base of the global layers' RoPE.
    pub rope_theta: f32,
    pub rms_eps: f64,
    pub rope_style: RopeStyle,
    /// q/k/v projections carry a bias (qwen2).
    pub qkv_bias: bool,
    pub activation: Activation,
    /// Multiplies q·k before softmax (1/sqrt(head_dim), or query_pre_attn_scalar's).
    pub attn_scale: f64,
    /// Gemma 2: attention logits through `cap · tanh(x / cap)`.
    pub attn_softcap: Option<f64>,
    /// Gemma 2: output logits through `cap · tanh(x / cap)`.
    pub final_softcap: Option<f64>,
    /// RoPE of global layers (index 0) and, where it differs, local layers (1).
    pub ropes: Vec<Rope>,
    pub layers: Vec<LayerKind>,
}

impl ModelConfig {
    pub fn group_size(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    pub fn traits(&self) -> Traits {
        self.arch.traits()
    }

    /// The sliding window of layer `i`, if it has one.
    pub fn window(&self, layer: usize) -> Option<usize> {
        self.layers.get(layer).and_then(|l| l.window)
    }

    /// Most slots each layer can use for a prompt of `prompt_len` tokens: a
    /// sliding-window layer never attends to more than its window, so a KV
    /// budget split should not give it more.
    pub fn kv_ceilings(&self, prompt_len: usize) -> Vec<usize> {
        self.layers.iter().map(|l| l.window.map_or(prompt_len, |w| w.min(prompt_len))).collect()
    }

    fn validate(self) -> Result<Self> {
        let bad = |m: String| Err(EngineError::BadConfig(m));
        let over = |what: &str, v: usize, max: usize| -> Result<()> {
            if v > max {
                return Err(EngineError::BadConfig(format!("{what} = {v} is beyond any real model (at most {max})")));
            }
            Ok(())
        };
        if self.n_layers == 0 || self.n_heads == 0 || self.n_kv_heads == 0 || self.hidden == 0 || self.vocab_size == 0 {
            return bad("layers, heads, hidden size and vocabulary must be positive".into());
        }
        over("layers", self.n_layers, limits::LAYERS)?;
        over("hidden size", self.hidden, limits::HIDDEN)?;
        over("attention heads", self.n_heads, limits::HEADS)?;
        over("head_dim", self.head_dim, limits::HEAD_DIM)?;
        over("vocabulary size", self.vocab_size, limits::VOCAB)?;
        over("context length", self.max_context, limits::CONTEXT)?;
        if self.max_context == 0 {
            return bad("context length must be positive".into());
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!("{} heads are not a multiple of {} KV heads", self.n_heads, self.n_kv_heads));
        }
        if !self.head_dim.is_multiple_of(2) || self.head_dim == 0 {
            return bad(format!("head_dim {} must be even", self.head_dim));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            return bad(format!("rms_norm_eps {} must be a small positive number", self.rms_eps));
        }
        if !(self.attn_scale.is_finite() && self.attn_scale > 0.0) {
            return bad(format!("attention scale {} must be positive (query_pre_attn_scalar?)", self.attn_scale));
        }
        for (what, cap) in
            [("attn_logit_softcapping", self.attn_softcap), ("final_logit_softcapping", self.final_softcap)]
        {
            if cap.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
                return bad(format!("{what} must be positive"));
            }
        }
        if self.layers.iter().any(|l| l.window == Some(0)) {
            return bad("sliding_window must be positive".into());
        }
        for r in &self.ropes {
            r.validate()?;
        }
        Ok(self)
    }
}

/// Maps an architecture name (GGUF `general.architecture` or HF `architectures[0]`).
pub fn arch_from_name(name: &str) -> Result<Family> {
    Family::from_name(name)
}

/// Layer kinds from a per-layer "is local" rule.
fn layer_kinds(n: usize, window: Option<usize>, local: impl Fn(usize) -> bool, local_rope: bool) -> Vec<LayerKind> {
    (0..n)
        .map(|i| match (window, local(i)) {
            (Some(w), true) => LayerKind { window: Some(w), rope: usize::from(local_rope) },
            _ => LayerKind { window: None, rope: 0 },
        })
        .collect()
}

/// Reads a config from GGUF metadata alone (no RoPE factor tensors).
pub fn from_gguf(ct: &gguf_file::Content) -> Result<ModelConfig> {
    from_gguf_with(ct, &mut |name| Err(EngineError::MissingMetadata(name.to_string())))
}

/// Reads a config from GGUF metadata; `read` fetches the small RoPE factor
/// tensors (`rope_freqs.weight`, Phi-3's `rope_factors_long/short.weight`).
pub fn from_gguf_with(ct: &gguf_file::Content, read: &mut dyn FnMut(&str) -> Result<Vec<f32>>) -> Result<ModelConfig> {
    let arch_name = ct
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| EngineError::MissingMetadata("general.architecture".into()))?;
    let arch = arch_from_name(&arch_name)?;
    let t = arch.traits();
    let key = |k: &str| format!("{arch_name}.{k}");
    let get_opt_u = |k: &str| -> Result<Option<usize>> {
        match ct.metadata.get(&key(k)) {
            None => Ok(None),
            Some(v) => v
                .to_u64()
                .ok()
                .or_else(|| v.to_u32().ok().map(u64::from))
                .or_else(|| v.to_i32().ok().and_then(|x| u64::try_from(x).ok()))
                .map(|x| Some(usize::try_from(x).unwrap_or(usize::MAX)))
                .ok_or_else(|| EngineError::BadConfig(format!("{} must be a non-negative integer", key(k)))),
        }
    };
    let get_u = |k: &str| get_opt_u(k)?.ok_or_else(|| EngineError::MissingMetadata(key(k)));
    let get_f = |k: &str| ct.metadata.get(&key(k)).and_then(|v| v.to_f32().ok().map(f64::from));
    let get_s = |k: &str| ct.metadata.get(&key(k)).and_then(|v| v.to_string().ok()).cloned();
    let hidden = get_u("embedding_length")?;
    let n_heads = get_u("attention.head_count")?;
    let n_kv_heads = get_opt_u("attention.head_count_kv")?.unwrap_or(n_heads);
    let head_dim = match get_opt_u("attention.key_length")? {
        Some(d) => d,
        None => get_opt_u("rope.dimension_count")?.unwrap_or(hidden / n_heads.max(1)),
    };
    let vocab_size = match ct.metadata.get("tokenizer.ggml.tokens") {
        Some(gguf_file::Value::Array(a)) => a.len(),
        _ => ct
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .ok_or_else(|| EngineError::MissingMetadata("token_embd.weight".into()))?,
    };
    let n_layers = get_u("block_count")?;
    let max_context = get_opt_u("context_length")?.unwrap_or(4096);
    let theta = get_f("rope.freq_base").unwrap_or(10_000.0);
    let factor = get_f("rope.scaling.factor");
    let orig = get_opt_u("rope.scaling.original_context_length")?;
    let scaling = match get_s("rope.scaling.type").as_deref() {
        None | Some("none") => Scaling::None,
        Some("linear") => Scaling::Linear { factor: factor.unwrap_or(1.0) },
        Some("yarn") => {
            let f = factor.unwrap_or(1.0);
            let o = orig.ok_or_else(|| EngineError::MissingMetadata(key("rope.scaling.original_context_length")))?;
            Scaling::Yarn {
                factor: f,
                original_context: o as f64,
                beta_fast: get_f("rope.scaling.yarn_beta_fast").unwrap_or(32.0),
                beta_slow: get_f("rope.scaling.yarn_beta_slow").unwrap_or(1.0),
                attention_factor: get_f("rope.scaling.attn_factor")
                    .unwrap_or(rope::yarn_attention_factor(f, None, None)),
                truncate: true,
            }
        }
        // Llama 3's factors are the `rope_freqs.weight` tensor, read below.
        Some("llama3") if ct.tensor_infos.contains_key("rope_freqs.weight") => Scaling::None,
        Some(other) => return Err(unsupported_rope(other)),
    };
    let half = head_dim / 2;
    let mut factors = |name: &str| -> Result<Option<Vec<f64>>> {
        let Some(info) = ct.tensor_infos.get(name) else { return Ok(None) };
        if info.shape.elem_count() != half {
            return Err(EngineError::BadConfig(format!(
                "{name} holds {:?}, expected {half} values",
                info.shape.dims()
            )));
        }
        Ok(Some(read(name)?.into_iter().map(f64::from).collect()))
    };
    let scaling = match (factors("rope_freqs.weight")?, scaling) {
        (Some(d), Scaling::None) => Scaling::Divisors(d),
        (Some(_), other) => {
            return Err(EngineError::BadConfig(format!("rope_freqs.weight together with RoPE scaling {other:?}")))
        }
        (None, s) => s,
    };
    let mut ropes = vec![Rope { theta, head_dim, scaling }];
    // llama.cpp fixes Gemma 3's local base at 10 000, unscaled.
    if arch == Family::Gemma3 {
        ropes.push(Rope::plain(10_000.0, head_dim));
    }
    if let (Some(long), Some(short)) = (factors("rope_factors_long.weight")?, factors("rope_factors_short.weight")?) {
        let o = orig.ok_or_else(|| EngineError::MissingMetadata(key("rope.scaling.original_context_length")))?;
        let factor = max_context as f64 / o as f64;
        let attention_factor = get_f("rope.scaling.attn_factor").unwrap_or(rope::longrope_attention_factor(factor, o));
        ropes[0].scaling = Scaling::LongRope { short, long, original_context: o, attention_factor };
    }
    let window = get_opt_u("attention.sliding_window")?;
    let pattern = t.window_pattern;
    ModelConfig {
        arch,
        n_layers,
        hidden,
        n_heads,
        n_kv_heads,
        head_dim,
        vocab_size,
        max_context,
        rope_theta: theta as f32,
        rms_eps: get_f("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
        rope_style: if t.gguf_interleaved_rope { RopeStyle::Interleaved } else { RopeStyle::Halves },
        qkv_bias: t.qkv_bias,
        activation: t.activation,
        // llama.cpp scales Gemma 2/3 queries by 1/sqrt(head_dim) (query_pre_attn_scalar
        // is not stored); the one exception, Gemma 2 27B, is not told apart here.
        attn_scale: 1.0 / (head_dim as f64).sqrt(),
        attn_softcap: get_f("attn_logit_softcapping"),
        final_softcap: get_f("final_logit_softcapping"),
        layers: if n_layers <= limits::LAYERS {
            layer_kinds(n_layers, window, |i| pattern.is_local(i), arch == Family::Gemma3)
        } else {
            Vec::new()
        },
        ropes,
    }
    .validate()
}

fn unsupported_rope(kind: &str) -> EngineError {
    let why = match kind {
        "dynamic" => " (dynamic NTK: its frequencies change with the sequence length)",
        _ => "",
    };
    EngineError::BadConfig(format!(
        "RoPE scaling type `{kind}` is not supported{why}; supported: linear, llama3, yarn, longrope/su"
    ))
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
    rms_norm_eps: Option<f64>,
    head_dim: Option<usize>,
    hidden_act: Option<String>,
    hidden_activation: Option<String>,
    sliding_window: Option<Value>,
    use_sliding_window: Option<bool>,
    max_window_layers: Option<usize>,
    layer_types: Option<Vec<String>>,
    sliding_window_pattern: Option<usize>,
    #[serde(rename = "_sliding_window_pattern")]
    sliding_window_pattern_v5: Option<usize>,
    query_pre_attn_scalar: Option<f64>,
    attn_logit_softcapping: Option<f64>,
    final_logit_softcapping: Option<f64>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    partial_rotary_factor: Option<f64>,
    #[serde(default)]
    tie_word_embeddings: bool,
}

/// Reads the RoPE of one layer type from config.json, in either form:
/// transformers 5's `rope_parameters` (flat, or keyed by layer type) or the
/// older `rope_theta` + `rope_scaling` (+ Gemma 3's `rope_local_base_freq`).
fn hf_rope(json: &Value, layer_type: &str, head_dim: usize, max_pos: usize) -> Result<Rope> {
    let obj = |v: &Value| v.as_object().cloned();
    let params = match json.get("rope_parameters").and_then(obj) {
        Some(p) if p.contains_key("rope_type") || p.contains_key("rope_theta") || p.contains_key("type") => Some(p),
        Some(p) => p.get(layer_type).and_then(obj),
        None => None,
    };
    let legacy_local = layer_type == "sliding_attention" && json.get("rope_local_base_freq").is_some();
    let params = match params {
        Some(p) => p,
        None if legacy_local => {
            let mut p = serde_json::Map::new();
            p.insert("rope_theta".into(), json["rope_local_base_freq"].clone());
            p
        }
        None => {
            let mut p = json.get("rope_scaling").and_then(obj).unwrap_or_default();
            if let Some(t) = json.get("rope_theta") {
                p.entry("rope_theta").or_insert(t.clone());
            }
            p
        }
    };
    let num = |k: &str| -> Result<Option<f64>> {
        match params.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                v.as_f64().map(Some).ok_or_else(|| EngineError::BadConfig(format!("RoPE `{k}` must be a number")))
            }
        }
    };
    let need = |k: &str| num(k)?.ok_or_else(|| EngineError::BadConfig(format!("RoPE scaling needs `{k}`")));
    let list = |k: &str| -> Result<Vec<f64>> {
        params
            .get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .ok_or_else(|| EngineError::BadConfig(format!("RoPE longrope needs `{k}`")))
    };
    let theta = num("rope_theta")?.unwrap_or(10_000.0);
    if let Some(p) = num("partial_rotary_factor")? {
        if p != 1.0 {
            return Err(EngineError::BadConfig(format!("partial_rotary_factor {p} is not supported (only 1.0)")));
        }
    }
    let kind = params.get("rope_type").or(params.get("type")).and_then(Value::as_str).unwrap_or("default");
    let orig_top = json.get("original_max_position_embeddings").and_then(Value::as_f64);
    let orig = || -> Result<f64> {
        num("original_max_position_embeddings")?.or(orig_top).ok_or_else(|| {
            EngineError::BadConfig(format!("RoPE {kind} scaling needs original_max_position_embeddings"))
        })
    };
    let scaling = match kind {
        "default" => Scaling::None,
        "linear" => Scaling::Linear { factor: need("factor")? },
        "llama3" => Scaling::Llama3 {
            factor: need("factor")?,
            low_freq_factor: need("low_freq_factor")?,
            high_freq_factor: need("high_freq_factor")?,
            original_context: orig()?,
        },
        "yarn" => {
            let original_context = num("original_max_position_embeddings")?.unwrap_or(max_pos as f64);
            let factor = num("factor")?.unwrap_or(max_pos as f64 / original_context);
            let attention_factor = match num("attention_factor")? {
                Some(a) => a,
                None => rope::yarn_attention_factor(factor, num("mscale")?, num("mscale_all_dim")?),
            };
            Scaling::Yarn {
                factor,
                original_context,
                beta_fast: num("beta_fast")?.unwrap_or(32.0),
                beta_slow: num("beta_slow")?.unwrap_or(1.0),
                attention_factor,
                truncate: params.get("truncate").and_then(Value::as_bool).unwrap_or(true),
            }
        }
        "longrope" | "su" => {
            let o = orig()?;
            let factor = num("factor")?.unwrap_or(max_pos as f64 / o);
            let original_context = o as usize;
            let attention_factor = match num("attention_factor")? {
                Some(a) => a,
                None => rope::longrope_attention_factor(factor, original_context),
            };
            Scaling::LongRope {
                short: list("short_factor")?,
                long: list("long_factor")?,
                original_context,
                attention_factor,
            }
        }
        other => return Err(unsupported_rope(other)),
    };
    Ok(Rope { theta, head_dim, scaling })
}

/// Parses a Hugging Face config.json. Returns the config and whether the
/// output head is tied to the embeddings.
pub fn from_hf_json(text: &str) -> Result<(ModelConfig, bool)> {
    let bad_json = |e: serde_json::Error| EngineError::BadConfig(format!("config.json: {e}"));
    let json: Value = serde_json::from_str(text).map_err(bad_json)?;
    let hf: HfConfig = serde_json::from_value(json.clone()).map_err(bad_json)?;
    let name = hf
        .architectures
        .first()
        .cloned()
        .or(hf.model_type.clone())
        .ok_or_else(|| EngineError::BadConfig("config.json names no architecture".into()))?;
    let arch = arch_from_name(&name)?;
    let t = arch.traits();
    if hf.mlp_bias == Some(true) || (hf.attention_bias == Some(true) && arch != Family::Qwen2) {
        return Err(EngineError::BadConfig("attention_bias / mlp_bias = true is not supported for this family".into()));
    }
    if hf.partial_rotary_factor.is_some_and(|p| p != 1.0) {
        return Err(EngineError::BadConfig("partial_rotary_factor other than 1.0 is not supported".into()));
    }
    let head_dim = hf.head_dim.unwrap_or(hf.hidden_size / hf.num_attention_heads.max(1));
    let max_pos = hf.max_position_embeddings.unwrap_or(4096);
    let n = hf.num_hidden_layers;
    let window = hf.sliding_window.as_ref().and_then(Value::as_u64).map(|w| usize::try_from(w).unwrap_or(usize::MAX));
    let local: Box<dyn Fn(usize) -> bool> = match (&hf.layer_types, arch) {
        (Some(types), _) => {
            if types.len() != n {
                return Err(EngineError::BadConfig(format!("layer_types lists {} layers, not {n}", types.len())));
            }
            if let Some(odd) = types.iter().find(|t| *t != "sliding_attention" && *t != "full_attention") {
                return Err(EngineError::BadConfig(format!("layer type `{odd}` is not supported")));
            }
            let types = types.clone();
            Box::new(move |i| types[i] == "sliding_attention")
        }
        (None, Family::Qwen2 | Family::Qwen3) => {
            let (on, from) = (hf.use_sliding_window.unwrap_or(false), hf.max_window_layers.unwrap_or(0));
            Box::new(move |i| on && i >= from)
        }
        (None, Family::Gemma3) => {
            let every = hf.sliding_window_pattern.or(hf.sliding_window_pattern_v5).unwrap_or(6).max(1);
            Box::new(move |i| WindowPattern::OneGlobalIn(every).is_local(i))
        }
        (None, _) => Box::new(move |i| t.window_pattern.is_local(i)),
    };
    let mut ropes = vec![hf_rope(&json, "full_attention", head_dim, max_pos)?];
    let two_ropes = arch == Family::Gemma3;
    if two_ropes {
        ropes.push(hf_rope(&json, "sliding_attention", head_dim, max_pos)?);
    }
    let activation = match hf.hidden_activation.as_ref().or(hf.hidden_act.as_ref()) {
        Some(a) => Activation::from_hf(a)?,
        None => t.activation,
    };
    let scalar = hf.query_pre_attn_scalar.unwrap_or(head_dim as f64);
    let cfg = ModelConfig {
        arch,
        n_layers: n,
        hidden: hf.hidden_size,
        n_heads: hf.num_attention_heads,
        n_kv_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
        head_dim,
        vocab_size: hf.vocab_size,
        max_context: max_pos,
        rope_theta: ropes[0].theta as f32,
        rms_eps: hf.rms_norm_eps.unwrap_or(1e-5),
        rope_style: RopeStyle::Halves,
        qkv_bias: t.qkv_bias,
        activation,
        attn_scale: 1.0 / scalar.sqrt(),
        attn_softcap: hf.attn_logit_softcapping,
        final_softcap: hf.final_logit_softcapping,
        layers: if n <= limits::LAYERS { layer_kinds(n, window, local, two_ropes) } else { Vec::new() },
        ropes,
    }
    .validate()?;
    Ok((cfg, hf.tie_word_embeddings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Map<String, Value> {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
            "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 256
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn parse(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Result<ModelConfig> {
        let mut m = base();
        edit(&mut m);
        from_hf_json(&Value::Object(m).to_string()).map(|(c, _)| c)
    }

    #[test]
    fn legacy_and_v5_rope_forms_agree() {
        let legacy = parse(|m| {
            m.insert("rope_theta".into(), 5e5.into());
            m.insert(
                "rope_scaling".into(),
                serde_json::json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
            );
        })
        .unwrap();
        let v5 = parse(|m| {
            m.insert(
                "rope_parameters".into(),
                serde_json::json!({"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0, "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
            );
        })
        .unwrap();
        assert_eq!(legacy.ropes, v5.ropes);
        assert!(matches!(v5.ropes[0].scaling, Scaling::Llama3 { .. }));
    }

    #[test]
    fn unsupported_rope_types_are_named() {
        let e = parse(|m| {
            m.insert("rope_scaling".into(), serde_json::json!({"type": "dynamic", "factor": 2.0}));
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("`dynamic`"), "{e}");
        let e = parse(|m| {
            m.insert("rope_scaling".into(), serde_json::json!({"rope_type": "warp", "factor": 2.0}));
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("`warp`"), "{e}");
    }

    #[test]
    fn mistral_window_applies_to_every_layer_and_query_scalar_is_read() {
        let c = parse(|m| {
            m.insert("architectures".into(), serde_json::json!(["MistralForCausalLM"]));
            m.insert("sliding_window".into(), 4096.into());
        })
        .unwrap();
        assert!(c.layers.iter().all(|l| l.window == Some(4096)));
        let c = parse(|m| {
            m.insert("architectures".into(), serde_json::json!(["Gemma2ForCausalLM"]));
            m.insert("query_pre_attn_scalar".into(), 144.into());
            m.insert("sliding_window".into(), 8.into());
        })
        .unwrap();
        assert_eq!(c.attn_scale, 1.0 / 12.0);
        assert_eq!(c.window(0), Some(8));
        assert_eq!(c.window(1), None);
        assert_eq!(c.kv_ceilings(100), vec![8, 100]);
        assert_eq!(c.kv_ceilings(5), vec![5, 5]);
    }
}
