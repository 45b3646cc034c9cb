//! Loading weights into one model structure, from GGUF (quantized, QMatMul)
//! or from Hugging Face safetensors (dense f32/f16/bf16).

use super::config::{self, ModelConfig};
use super::error::{EngineError, Result};
use super::gguf_header;
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
    pub fn dense(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight: QMatMul::Tensor(weight), bias }
    }

    /// Rows `start..start + len` of a dense weight (splitting a fused projection).
    fn rows(weight: &Tensor, start: usize, len: usize) -> Result<Self> {
        Ok(Self::dense(weight.narrow(0, start, len)?.contiguous()?, None))
    }

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

    /// Stacks dense projections of one input into one matrix, so a decode
    /// step launches one product instead of several; each part becomes a
    /// view of its rows (no second copy of the weights). `None`, nothing
    /// changed, unless every part is dense in one dtype and all or none have a bias.
    pub fn fuse(parts: &mut [&mut Linear]) -> candle_core::Result<Option<Linear>> {
        let dense: Option<Vec<&Tensor>> = parts
            .iter()
            .map(|p| match &p.weight {
                QMatMul::Tensor(w) => Some(w),
                _ => None,
            })
            .collect();
        let Some(ws) = dense else { return Ok(None) };
        let same_dtype = ws.windows(2).all(|w| w[0].dtype() == w[1].dtype());
        let biased = parts.iter().filter(|p| p.bias.is_some()).count();
        if ws.len() < 2 || !same_dtype || (biased != 0 && biased != parts.len()) {
            return Ok(None);
        }
        let weight = Tensor::cat(&ws, 0)?;
        let bias = if biased > 0 {
            let bs: Vec<&Tensor> = parts.iter().filter_map(|p| p.bias.as_ref()).collect();
            Some(Tensor::cat(&bs, 0)?)
        } else {
            None
        };
        let mut start = 0;
        for p in parts.iter_mut() {
            let rows = p.out_features()?;
            p.weight = QMatMul::Tensor(weight.narrow(0, start, rows)?);
            p.bias = bias.as_ref().map(|b| b.narrow(0, start, rows)).transpose()?;
            start += rows;
        }
        Ok(Some(Self { weight: QMatMul::Tensor(weight), bias }))
    }

    /// Rows of the weight: the width of this projection's output.
    pub fn out_features(&self) -> candle_core::Result<usize> {
        match &self.weight {
            QMatMul::QTensor(q) => q.shape().dims2().map(|(n, _)| n),
            QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.dim(0),
        }
    }

    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let fast = match &self.weight {
            QMatMul::QTensor(q) => super::q4cpu::matmul(q, xs)?,
            _ => None,
        };
        let y = match fast {
            Some(y) => y,
            None => xs.apply(&self.weight)?,
        };
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
    /// Per-head RMSNorm weights of queries and keys (Qwen3, Gemma 3).
    pub q_norm: Option<Tensor>,
    pub k_norm: Option<Tensor>,
    /// Norms of the attention and MLP outputs (Gemma 2/3).
    pub post_attn_norm: Option<Tensor>,
    pub post_ffn_norm: Option<Tensor>,
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
    // candle sizes its allocations from the header's counts: check them first.
    gguf_header::check(&mut file).map_err(|e| bad(e.to_string()))?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| bad(e.to_string()))?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    // A truncated file fails here with a clear message instead of deep inside a read.
    for (name, info) in content.tensor_infos.iter() {
        let (block, size) = (info.ggml_dtype.block_size() as u64, info.ggml_dtype.type_size() as u64);
        let bytes =
            info.shape.dims().iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)).map(|n| n / block * size);
        let end = bytes.and_then(|b| (content.tensor_data_offset + info.offset).checked_add(b));
        match end {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(bad(format!(
                    "tensor {name} ({:?}) ends past the end of the file ({file_len} bytes)",
                    info.shape.dims()
                )))
            }
        }
    }
    let config = config::from_gguf_with(&content, &mut |name| {
        let t = content.tensor(&mut file, name, &Device::Cpu).map_err(|e| bad(format!("tensor {name}: {e}")))?;
        Ok(t.dequantize(&Device::Cpu)?.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    })?;
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

/// Reads tensors of an opened GGUF file, one at a time.
struct GgufReader<'a> {
    content: &'a gguf_file::Content,
    file: &'a mut std::fs::File,
    path: &'a Path,
    device: &'a Device,
    /// Dense dtype of projections; `None` keeps them quantized.
    dense: Option<DType>,
}

impl GgufReader<'_> {
    fn act(&self) -> DType {
        self.dense.unwrap_or(DType::F32)
    }

    fn quantized_on(&mut self, name: &str, device: &Device) -> Result<candle_core::quantized::QTensor> {
        self.content
            .tensor(self.file, name, device)
            .map_err(|e| EngineError::BadGguf { path: self.path.to_path_buf(), reason: format!("tensor {name}: {e}") })
    }

    /// A tensor dequantized on the host and moved to the device in `dtype`.
    /// Dequantizing on a GPU would load candle's quantized kernels, whose
    /// just-in-time compilation was most of a fresh machine's first answer.
    fn dense(&mut self, name: &str, dtype: DType) -> Result<Tensor> {
        let q = self.quantized_on(name, &Device::Cpu)?;
        Ok(q.dequantize(&Device::Cpu)?.to_dtype(dtype)?.to_device(self.device)?)
    }

    /// A tensor dequantized to the activation dtype (norms, biases, fused weights).
    fn vector(&mut self, name: &str) -> Result<Tensor> {
        self.dense(name, self.act())
    }

    /// A matrix product's weight: dense in the requested dtype, or quantized blocks on the device.
    fn matmul(&mut self, name: &str) -> Result<QMatMul> {
        Ok(match self.dense {
            Some(dt) => QMatMul::Tensor(self.dense(name, dt)?),
            None => QMatMul::from_qtensor(self.quantized_on(name, self.device)?)?,
        })
    }

    fn linear(&mut self, name: &str, bias: bool) -> Result<Linear> {
        let weight = self.matmul(&format!("{name}.weight"))?;
        let bias = if bias { Some(self.vector(&format!("{name}.bias"))?) } else { None };
        Ok(Linear { weight, bias })
    }

    fn optional(&mut self, name: &str, on: bool) -> Result<Option<Tensor>> {
        on.then(|| self.vector(name)).transpose()
    }
}

/// Reads the weights of an opened GGUF file onto `device`; projections are
/// dequantized to `dense` when it is given.
pub fn load_gguf(g: &mut GgufFile, device: &Device, dense: Option<DType>) -> Result<Weights> {
    let GgufFile { path, config, content, file } = g;
    let mut r = GgufReader { content, file, path, device, dense };
    let embed = r.vector("token_embd.weight")?;
    let norm = r.vector("output_norm.weight")?;
    let lm_head_name = match r.content.tensor_infos.contains_key("output.weight") {
        true => "output.weight",
        false => "token_embd.weight",
    };
    let lm_head = match (r.dense, lm_head_name) {
        // Tied and dense: the embedding already is the matrix.
        (Some(dt), "token_embd.weight") if dt == r.act() => Linear::dense(embed.clone(), None),
        _ => Linear { weight: r.matmul(lm_head_name)?, bias: None },
    };
    let t = config.traits();
    let (q_dim, kv_dim) = (config.n_heads * config.head_dim, config.n_kv_heads * config.head_dim);
    let mut layers = Vec::with_capacity(config.n_layers);
    for i in 0..config.n_layers {
        let name = |n: &str| format!("blk.{i}.{n}");
        let b = config.qkv_bias;
        let ((q, k, v), (gate, up)) = if t.fused_projections {
            // Fused projections are split by rows, which needs them dense.
            let qkv = r.vector(&name("attn_qkv.weight"))?;
            let gate_up = r.vector(&name("ffn_up.weight"))?;
            let ff = gate_up.dim(0)? / 2;
            (
                (
                    Linear::rows(&qkv, 0, q_dim)?,
                    Linear::rows(&qkv, q_dim, kv_dim)?,
                    Linear::rows(&qkv, q_dim + kv_dim, kv_dim)?,
                ),
                (Linear::rows(&gate_up, 0, ff)?, Linear::rows(&gate_up, ff, ff)?),
            )
        } else {
            (
                (r.linear(&name("attn_q"), b)?, r.linear(&name("attn_k"), b)?, r.linear(&name("attn_v"), b)?),
                (r.linear(&name("ffn_gate"), false)?, r.linear(&name("ffn_up"), false)?),
            )
        };
        layers.push(LayerWeights {
            attn_norm: r.vector(&name("attn_norm.weight"))?,
            q,
            k,
            v,
            o: r.linear(&name("attn_output"), false)?,
            ffn_norm: r.vector(&name("ffn_norm.weight"))?,
            gate,
            up,
            down: r.linear(&name("ffn_down"), false)?,
            q_norm: r.optional(&name("attn_q_norm.weight"), t.qk_norm)?,
            k_norm: r.optional(&name("attn_k_norm.weight"), t.qk_norm)?,
            post_attn_norm: r.optional(&name("post_attention_norm.weight"), t.post_norms)?,
            post_ffn_norm: r.optional(&name("post_ffw_norm.weight"), t.post_norms)?,
        });
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
    let t = config.traits();
    let lin = |vb: candle_nn::VarBuilder, out: usize, inp: usize, bias: bool| -> Result<Linear> {
        let w = vb.get((out, inp), "weight")?;
        let bias = if bias { Some(vb.get(out, "bias")?) } else { None };
        Ok(Linear { weight: QMatMul::Tensor(w), bias })
    };
    // Gemma's norms multiply by (1 + w): fold the 1 in once, as llama.cpp's converter does.
    let norm = |vb: &candle_nn::VarBuilder, len: usize, name: &str| -> Result<Tensor> {
        let w = vb.get(len, name)?;
        Ok(if t.norm_plus_one { (w + 1.0)? } else { w })
    };
    let m = vb.pp("model");
    let embed = m.get((config.vocab_size, h), "embed_tokens.weight")?;
    let mut layers = Vec::with_capacity(config.n_layers);
    for i in 0..config.n_layers {
        let l = m.pp(format!("layers.{i}"));
        let a = l.pp("self_attn");
        let b = config.qkv_bias;
        let ((q, k, v), (gate, up, ff)) = if t.fused_projections {
            let qkv = a.pp("qkv_proj").get((q_dim + 2 * kv_dim, h), "weight")?;
            let gate_up = l.pp("mlp.gate_up_proj").get_unchecked("weight")?;
            let ff = gate_up.dim(0)? / 2;
            let gate_up = l.pp("mlp.gate_up_proj").get((2 * ff, h), "weight")?;
            (
                (
                    Linear::rows(&qkv, 0, q_dim)?,
                    Linear::rows(&qkv, q_dim, kv_dim)?,
                    Linear::rows(&qkv, q_dim + kv_dim, kv_dim)?,
                ),
                (Linear::rows(&gate_up, 0, ff)?, Linear::rows(&gate_up, ff, ff)?, ff),
            )
        } else {
            // The MLP width is not in every config; read it off the weight.
            let ff = l.pp("mlp.gate_proj").get_unchecked("weight")?.dim(0)?;
            (
                (
                    lin(a.pp("q_proj"), q_dim, h, b)?,
                    lin(a.pp("k_proj"), kv_dim, h, b)?,
                    lin(a.pp("v_proj"), kv_dim, h, b)?,
                ),
                (lin(l.pp("mlp.gate_proj"), ff, h, false)?, lin(l.pp("mlp.up_proj"), ff, h, false)?, ff),
            )
        };
        let d = config.head_dim;
        let (q_norm, k_norm) = match t.qk_norm {
            true => (Some(norm(&a, d, "q_norm.weight")?), Some(norm(&a, d, "k_norm.weight")?)),
            false => (None, None),
        };
        // Gemma 2/3 name the post-attention norm as others name the pre-MLP one.
        let (ffn_norm, post_attn_norm, post_ffn_norm) = match t.post_norms {
            true => (
                norm(&l, h, "pre_feedforward_layernorm.weight")?,
                Some(norm(&l, h, "post_attention_layernorm.weight")?),
                Some(norm(&l, h, "post_feedforward_layernorm.weight")?),
            ),
            false => (norm(&l, h, "post_attention_layernorm.weight")?, None, None),
        };
        layers.push(LayerWeights {
            attn_norm: norm(&l, h, "input_layernorm.weight")?,
            q,
            k,
            v,
            o: lin(a.pp("o_proj"), h, q_dim, false)?,
            ffn_norm,
            gate,
            up,
            down: lin(l.pp("mlp.down_proj"), h, ff, false)?,
            q_norm,
            k_norm,
            post_attn_norm,
            post_ffn_norm,
        });
    }
    let norm = norm(&m, h, "norm.weight")?;
    let lm_head = if tied || !vb.contains_tensor("lm_head.weight") {
        Linear { weight: QMatMul::Tensor(embed.clone()), bias: None }
    } else {
        lin(vb.pp("lm_head"), config.vocab_size, h, false)?
    };
    Ok(Weights { embed, layers, norm, lm_head })
}
