//! `Engine`: a loaded model with its tokenizer, and the operations every
//! front end uses (encode, prefill, prune, decode, teacher-force).

use super::cache::KvCache;
use super::config::ModelConfig;
use super::device::{self, DeviceChoice};
use super::error::{EngineError, Result};
use super::evict::Evictor;
use super::flash::AttentionKernel;
use super::model::{AttentionStats, Logits, Model};
use super::params::{GenParams, ModelInfo};
use super::sampler::Sampler;
use super::source::{self, HubSettings, ModelSource};
use super::tokenizer::{self, TextCodec};
use super::weights::{self, WeightMode};
use candle_core::{DType, Tensor};

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--model`: folder, .gguf file or hub id; `None` for the default model.
    pub model: Option<String>,
    pub device: DeviceChoice,
    /// Activation/cache dtype on GPUs (CPU always uses f32).
    pub dtype: Option<DType>,
    /// GGUF only: dequantize the weights or keep them quantized.
    pub weights: WeightMode,
    /// Our flash kernels where they apply, or always the materialized path.
    pub attention: AttentionKernel,
}

/// Prefill settings.
#[derive(Debug, Clone, Copy)]
pub struct PrefillOptions {
    pub chunk: usize,
    /// Observation window W: the last W prompt tokens whose attention is recorded.
    pub window: usize,
    /// Also record the attention every position receives from every prompt
    /// query (H2O's statistic). It costs a pass over each chunk's whole
    /// attention matrix, so prefills that will not score with H2O skip it.
    pub accumulated: bool,
}

impl Default for PrefillOptions {
    fn default() -> Self {
        Self { chunk: 512, window: 32, accumulated: true }
    }
}

/// A prompt after prefill: the full cache, attention statistics and the
/// logits that choose the first new token. Re-runs start from here.
#[derive(Debug, Clone)]
pub struct Prefilled {
    pub tokens: Vec<u32>,
    pub cache: KvCache,
    pub stats: AttentionStats,
    pub first_logits: Tensor,
    pub seconds: f64,
    /// Most slots each layer can use: the prompt, or a sliding-window
    /// layer's window (the cache holds the whole prompt there, masked).
    pub kv_ceilings: Vec<usize>,
}

pub struct Engine {
    pub model: Model,
    pub codec: TextCodec,
    pub info: ModelInfo,
    pub source: ModelSource,
}

impl Engine {
    pub fn load(opts: &LoadOptions, log: &mut dyn FnMut(&str)) -> Result<Engine> {
        let source = source::resolve(opts.model.as_deref(), &HubSettings::from_env(), log)?;
        Self::load_source(source, opts)
    }

    pub fn load_source(source: ModelSource, opts: &LoadOptions) -> Result<Engine> {
        let dev = device::open(opts.device)?;
        let act = device::activation_dtype(&dev, opts.dtype);
        let (config, weights, codec, act, quantized) = match &source {
            // The tokenizer is checked before the weights are read, so a
            // missing tokenizer fails fast.
            ModelSource::Gguf(path) => {
                let mut g = weights::open_gguf(path)?;
                let codec = tokenizer::for_gguf(path, &g.content)?;
                let dense = g.dequantizes(opts.weights, act).then_some(act);
                let w = weights::load_gguf(&mut g, &dev, dense)?;
                // Quantized matmuls compute in f32.
                (g.config, w, codec, dense.unwrap_or(DType::F32), dense.is_none())
            }
            ModelSource::Safetensors(dir) => {
                let (config, tied) = weights::read_hf_config(dir)?;
                let codec = tokenizer::for_folder(dir)?;
                let w = weights::load_safetensors(dir, &config, tied, act, &dev)?;
                (config, w, codec, act, false)
            }
        };
        let model = Model::new(config, weights, act, &dev)?.with_attention(opts.attention);
        let info = model_info(&model.config, &source, &dev, act, quantized);
        Ok(Engine { model, codec, info, source })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.model.config
    }

    /// Tokenizes a prompt, applying the chat template when `chat`.
    pub fn encode(&self, text: &str, chat: bool) -> Result<Vec<u32>> {
        if text.trim().is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let ids = self.codec.encode_prompt(text, chat)?;
        let ctx = self.config().max_context;
        if ids.len() >= ctx {
            return Err(EngineError::PromptTooLong { tokens: ids.len(), context: ctx });
        }
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32]) -> String {
        self.codec.decode(ids)
    }

    pub fn prefill(&self, tokens: &[u32], opts: PrefillOptions) -> Result<Prefilled> {
        self.prefill_with(tokens, opts, &mut |_, _| true)
    }

    pub fn prefill_with(
        &self,
        tokens: &[u32],
        opts: PrefillOptions,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Prefilled> {
        let start = std::time::Instant::now();
        let (cache, stats, first_logits) = self.model.prefill_with(tokens, opts, progress)?;
        let kv_ceilings = self.model.config.kv_ceilings(tokens.len());
        let seconds = start.elapsed().as_secs_f64();
        Ok(Prefilled { tokens: tokens.to_vec(), cache, stats, first_logits, seconds, kv_ceilings })
    }

    /// Starts a decode from a (possibly pruned) cache and the prefill logits.
    pub fn decoder(&self, cache: KvCache, first_logits: &Tensor, params: &GenParams) -> Decoder {
        Decoder {
            cache,
            next_logits: first_logits.clone(),
            sampler: Sampler::new(params),
            produced: Vec::new(),
            max_new: params.max_new_tokens,
            done: false,
            evictor: None,
        }
    }

    /// `decoder`, or `evicting_decoder` when an evictor is given.
    pub fn decoder_with(
        &self,
        cache: KvCache,
        first_logits: &Tensor,
        params: &GenParams,
        evictor: Option<Evictor>,
    ) -> Decoder {
        Decoder { evictor, ..self.decoder(cache, first_logits, params) }
    }

    /// As `decoder`, keeping every layer within its budget while generating
    /// (decode-phase eviction).
    pub fn evicting_decoder(
        &self,
        cache: KvCache,
        first_logits: &Tensor,
        params: &GenParams,
        evictor: Evictor,
    ) -> Decoder {
        Decoder { evictor: Some(evictor), ..self.decoder(cache, first_logits, params) }
    }

    /// Greedy or sampled generation, calling `on_token` for each new token;
    /// `on_token` returning false stops early (cancellation).
    pub fn generate(
        &self,
        cache: KvCache,
        first_logits: &Tensor,
        params: &GenParams,
        on_token: &mut dyn FnMut(u32) -> bool,
    ) -> Result<Vec<u32>> {
        let mut dec = self.decoder(cache, first_logits, params);
        while let Some(t) = dec.step(self)? {
            if !on_token(t) {
                break;
            }
        }
        Ok(dec.produced)
    }

    /// Teacher-forces `continuation` after the prompt in `cache` and returns
    /// the log-probabilities `[n, vocab]` of each continuation token's
    /// prediction: row 0 from `first_logits`, rows 1.. from the cache.
    pub fn teacher_force(&self, cache: &KvCache, first_logits: &Tensor, continuation: &[u32]) -> Result<Tensor> {
        let first = first_logits.reshape((1, ()))?;
        let rows = if continuation.len() > 1 {
            let mut c = cache.clone();
            let rest = self.model.forward(&mut c, &continuation[..continuation.len() - 1], Logits::All)?;
            Tensor::cat(&[&first, &rest], 0)?
        } else {
            first
        };
        Ok(candle_nn::ops::log_softmax(&rows, candle_core::D::Minus1)?)
    }

    pub fn is_eos(&self, token: u32) -> bool {
        self.codec.is_eos(token)
    }
}

/// One sequence being decoded, a token per `step`, so callers can interleave
/// several (the TUI's three panes) and stop between any two tokens.
pub struct Decoder {
    pub cache: KvCache,
    next_logits: Tensor,
    sampler: Sampler,
    pub produced: Vec<u32>,
    max_new: usize,
    done: bool,
    pub evictor: Option<Evictor>,
}

impl Decoder {
    /// Produces the next token, or `None` once EOS or the token limit is reached.
    pub fn step(&mut self, engine: &Engine) -> Result<Option<u32>> {
        if self.done || self.produced.len() >= self.max_new {
            self.done = true;
            return Ok(None);
        }
        let token = self.sampler.sample(&self.next_logits)?;
        self.produced.push(token);
        let at_limit = self.produced.len() >= self.max_new || self.cache.next_pos() + 1 >= engine.config().max_context;
        if engine.is_eos(token) || at_limit {
            self.done = true;
        } else if let Some(ev) = self.evictor.as_mut() {
            let (logits, seen) = engine.model.forward_observed(&mut self.cache, &[token], Logits::Last)?;
            ev.observe(&mut self.cache, seen)?;
            self.next_logits = logits;
        } else {
            self.next_logits = engine.model.forward(&mut self.cache, &[token], Logits::Last)?;
        }
        Ok(Some(token))
    }

    pub fn is_done(&self) -> bool {
        self.done
    }
}

fn model_info(
    c: &ModelConfig,
    source: &ModelSource,
    dev: &candle_core::Device,
    dtype: DType,
    quantized: bool,
) -> ModelInfo {
    let name = source
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| source.path().display().to_string());
    ModelInfo {
        name,
        architecture: c.arch.name().to_string(),
        n_layers: c.n_layers,
        n_heads: c.n_heads,
        n_kv_heads: c.n_kv_heads,
        head_dim: c.head_dim,
        max_context: c.max_context,
        device: device::describe(dev),
        dtype: match quantized {
            true => format!("{} (q-matmul)", format!("{dtype:?}").to_lowercase()),
            false => format!("{dtype:?}").to_lowercase(),
        },
        kv_bytes_per_token_layer: 2 * c.n_kv_heads * c.head_dim * dtype.size_in_bytes(),
    }
}
