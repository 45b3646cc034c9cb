//! Loading weights into one model structure, from GGUF (quantized, QMatMul)
//! or from Hugging Face safetensors (dense f32/f16/bf16).

use super::config::{self, ModelConfig};
use super::error::{EngineError, Result};
use candle_core::quantized::{gguf_file, QMatMul};
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};

/// A projection: quantized or dense weight, with an optional bias.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: QMatMul,
    bias: Option<Tensor>,
}

impl Linear {
    /// Bytes of weight (and bias) a forward reads.
    pub fn bytes(&self) -> usize {
        let w = match &self.weight {
            QMatMul::QTensor(q) => q.storage_size_in_bytes(),
            QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.elem_count() * t.dtype().size_in_bytes(),
        };
        w + self.bias.as_ref().map_or(0, |b| b.elem_count() * b.dtype().size_in_bytes())
    }

    /// Multiplies a dense weight (and bias) by `s`; false, unchanged, if quantized.
    pub fn scale_dense(&mut self, s: f64) -> candle_core::Result<bool> {
        let QMatMul::Tensor(w) = &self.weight else { return Ok(false) };
        self.weight = QMatMul::Tensor((w * s)?);
        if let Some(b) = &self.bias {
            self.bias = Some((b * s)?);
        }
        Ok(true)
    }

    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let y = xs.apply(&self.weight)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub attn_norm: Tensor,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub ffn_norm: Tensor,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

#[derive(Debug, Clone)]
pub struct Weights {
    pub embed: Tensor,
    pub layers: Vec<LayerWeights>,
    pub norm: Tensor,
    pub lm_head: Linear,
}

impl Weights {
    /// Bytes of weights one decode step reads (every projection and the output head).
    pub fn decode_bytes(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].iter().map(|x| x.bytes()).sum::<usize>())
            .sum();
        layers + self.lm_head.bytes()
    }
}

/// An opened GGUF file: its metadata and config, weights not yet read.
pub struct GgufFile {
    pub path: PathBuf,
    pub config: ModelConfig,
    pub content: gguf_file::Content,
    file: std::fs::File,
}

/// Reads a GGUF header and checks that every tensor lies inside the file.
pub fn open_gguf(path: &Path) -> Result<GgufFile> {
    if !path.exists() {
        return Err(EngineError::ModelNotFound(path.to_path_buf()));
    }
    let bad = |reason: String| EngineError::BadGguf { path: path.to_path_buf(), reason };
    let mut file = std::fs::File::open(path).map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| bad(e.to_string()))?;
    let config = config::from_gguf(&content)?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    // A truncated file fails here with a clear message instead of deep inside a read.
    for (name, info) in content.tensor_infos.iter() {
        let bytes = info.shape.elem_count() / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
        let end = content.tensor_data_offset + info.offset + bytes as u64;
        if end > file_len {
            return Err(bad(format!("tensor {name} ends at byte {end}, past the end of the file ({file_len} bytes)")));
        }
    }
    Ok(GgufFile { path: path.to_path_buf(), config, content, file })
}

/// How GGUF weights are used for matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightMode {
    /// Dequantize when the dense model fits comfortably in memory, else keep quantized.
    #[default]
    Auto,
    /// Keep the quantized blocks (candle's QMatMul quantizes activations to 8 bits).
    Quantized,
    /// Dequantize once at load into the activation dtype: exact weights, no
    /// activation quantization. On the default model this is what makes its
    /// greedy answers match the reference implementation.
    Dequantized,
}

impl std::str::FromStr for WeightMode {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "quantized" | "quant" => Ok(Self::Quantized),
            "dequantized" | "dense" => Ok(Self::Dequantized),
            other => {
                Err(EngineError::BadConfig(format!("unknown weight mode `{other}`: use auto, quantized or dense")))
            }
        }
    }
}

/// Dense weights above this size stay quantized under `WeightMode::Auto`.
const AUTO_DENSE_LIMIT_BYTES: usize = 4 << 30;

impl GgufFile {
    /// Whether `mode` means dequantizing this file's weights to `dtype`.
    pub fn dequantizes(&self, mode: WeightMode, dtype: DType) -> bool {
        match mode {
            WeightMode::Quantized => false,
            WeightMode::Dequantized => true,
            WeightMode::Auto => {
                let params: usize = self.content.tensor_infos.values().map(|t| t.shape.elem_count()).sum();
                params * dtype.size_in_bytes() <= AUTO_DENSE_LIMIT_BYTES
            }
        }
    }
}

/// Reads the weights of an opened GGUF file onto `device`; projections are
/// dequantized to `dense` when it is given.
pub fn load_gguf(g: &mut GgufFile, device: &Device, dense: Option<DType>) -> Result<Weights> {
    let GgufFile { path, config, content, file } = g;
    let bad = |reason: String| EngineError::BadGguf { path: path.clone(), reason };
    let mut tensor = |name: &str| content.tensor(file, name, device).map_err(|e| bad(format!("tensor {name}: {e}")));
    let act = dense.unwrap_or(DType::F32);
    let matmul = |q: candle_core::quantized::QTensor| -> Result<QMatMul> {
        Ok(match dense {
            Some(dt) => QMatMul::Tensor(q.dequantize(device)?.to_dtype(dt)?),
            None => QMatMul::from_qtensor(q)?,
        })
    };
    let embed_q = tensor("token_embd.weight")?;
    let embed = embed_q.dequantize(device)?.to_dtype(act)?;
    let norm = tensor("output_norm.weight")?.dequantize(device)?.to_dtype(act)?;
    let lm_head_q = match content.tensor_infos.contains_key("output.weight") {
        true => tensor("output.weight")?,
        false => embed_q,
    };
    let lm_head = Linear { weight: matmul(lm_head_q)?, bias: None };
    let mut layers = Vec::with_capacity(config.n_layers);
    for i in 0..config.n_layers {
        let mut lin = |name: &str, bias: bool| -> Result<Linear> {
            let weight = matmul(tensor(&format!("blk.{i}.{name}.weight"))?)?;
            let bias = match bias {
                true => Some(tensor(&format!("blk.{i}.{name}.bias"))?.dequantize(device)?.to_dtype(act)?),
                false => None,
            };
            Ok(Linear { weight, bias })
        };
        let b = config.qkv_bias;
        let (q, k, v, o) = (lin("attn_q", b)?, lin("attn_k", b)?, lin("attn_v", b)?, lin("attn_output", false)?);
        let (gate, up, down) = (lin("ffn_gate", false)?, lin("ffn_up", false)?, lin("ffn_down", false)?);
        let attn_norm = tensor(&format!("blk.{i}.attn_norm.weight"))?.dequantize(device)?.to_dtype(act)?;
        let ffn_norm = tensor(&format!("blk.{i}.ffn_norm.weight"))?.dequantize(device)?.to_dtype(act)?;
        layers.push(LayerWeights { attn_norm, q, k, v, o, ffn_norm, gate, up, down });
    }
    Ok(Weights { embed, layers, norm, lm_head })
}

/// Safetensors shards of a Hugging Face folder: `model.safetensors` or the
/// files listed in `model.safetensors.index.json`.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&index)
        .map_err(|_| EngineError::ModelNotFound(dir.join("model.safetensors (or model.safetensors.index.json)")))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| EngineError::BadConfig(format!("{}: {e}", index.display())))?;
    let map = json["weight_map"]
        .as_object()
        .ok_or_else(|| EngineError::BadConfig(format!("{} has no weight_map", index.display())))?;
    let mut files: Vec<PathBuf> = map.values().filter_map(|v| v.as_str()).map(|f| dir.join(f)).collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// Reads a Hugging Face config.json; returns the config and whether the head is tied.
pub fn read_hf_config(dir: &Path) -> Result<(ModelConfig, bool)> {
    let cfg_path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&cfg_path).map_err(|source| EngineError::Io { path: cfg_path.clone(), source })?;
    config::from_hf_json(&text)
}

pub fn load_safetensors(
    dir: &Path,
    config: &ModelConfig,
    tied: bool,
    dtype: DType,
    device: &Device,
) -> Result<Weights> {
    let files = safetensors_files(dir)?;
    // SAFETY: the files are memory-mapped read-only; we never write to them.
    let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&files, dtype, device)? };
    let config = config.clone();
    let (h, kv_dim, q_dim) = (config.hidden, config.n_kv_heads * config.head_dim, config.n_heads * config.head_dim);
    let inter = |vb: &candle_nn::VarBuilder| -> Result<usize> {
        // The MLP width is not in every config; read it off the weight.
        Ok(vb.pp("mlp.gate_proj").get_unchecked("weight")?.dim(0)?)
    };
    let lin = |vb: candle_nn::VarBuilder, out: usize, inp: usize, bias: bool| -> Result<Linear> {
        let w = vb.get((out, inp), "weight")?;
        let bias = if bias { Some(vb.get(out, "bias")?) } else { None };
        Ok(Linear { weight: QMatMul::Tensor(w), bias })
    };
    let m = vb.pp("model");
    let embed = m.get((config.vocab_size, h), "embed_tokens.weight")?;
    let mut layers = Vec::with_capacity(config.n_layers);
    for i in 0..config.n_layers {
        let l = m.pp(format!("layers.{i}"));
        let a = l.pp("self_attn");
        let ff = inter(&l)?;
        let b = config.qkv_bias;
        layers.push(LayerWeights {
            attn_norm: l.get(h, "input_layernorm.weight")?,
            q: lin(a.pp("q_proj"), q_dim, h, b)?,
            k: lin(a.pp("k_proj"), kv_dim, h, b)?,
            v: lin(a.pp("v_proj"), kv_dim, h, b)?,
            o: lin(a.pp("o_proj"), h, q_dim, false)?,
            ffn_norm: l.get(h, "post_attention_layernorm.weight")?,
            gate: lin(l.pp("mlp.gate_proj"), ff, h, false)?,
            up: lin(l.pp("mlp.up_proj"), ff, h, false)?,
            down: lin(l.pp("mlp.down_proj"), h, ff, false)?,
        });
    }
    let norm = m.get(h, "norm.weight")?;
    let lm_head = if tied || !vb.contains_tensor("lm_head.weight") {
        Linear { weight: QMatMul::Tensor(embed.clone()), bias: None }
    } else {
        lin(vb.pp("lm_head"), config.vocab_size, h, false)?
    };
    Ok(Weights { embed, layers, norm, lm_head })
}
