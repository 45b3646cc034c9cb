//! Our forward pass over an external KV cache (Llama family and Qwen2).
//!
//! One function serves prefill chunks, teacher-forced extensions and single
//! token decode: `n` new tokens attend to every cached slot plus, causally, to
//! each other. During prefill it can also record the attention statistics that
//! token selection needs, without ever building a prompt × prompt matrix.

use super::cache::{KvCache, LayerCache};
use super::config::{ModelConfig, RopeStyle};
use super::core::PrefillOptions;
use super::error::{EngineError, Result};
use super::flash::{self, AttentionKernel, FlashSupport};
use super::fused;
use super::qkv_rope;
use super::rope::{Frequencies, Rope, Scaling};
use super::weights::{Linear, Weights};
use candle_core::{DType, Device, Tensor, D};

/// Which positions' logits a forward returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    Last,
    All,
}

/// Attention statistics of one prefill, per layer and KV head, over prompt positions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttentionStats {
    /// Attention from the last `window` prompt tokens, summed over those
    /// queries and the head's query group: `[layer][kv_head][pos]`.
    pub window: Vec<Vec<Vec<f32>>>,
    /// Attention each position received from every prompt query (H2O);
    /// empty when the prefill did not record it.
    pub accumulated: Vec<Vec<Vec<f32>>>,
    /// L2 norm of each cached key.
    pub key_norms: Vec<Vec<Vec<f32>>>,
    pub window_len: usize,
}

/// Attention statistics being gathered during a prefill, kept on the device
/// (`[kv_heads, prompt_len]` per layer) so chunks never wait for the host.
struct Recorder {
    prompt_len: usize,
    window: usize,
    window_sums: Vec<Option<Tensor>>,
    /// `None` when H2O's statistic was not asked for.
    accumulated: Option<Vec<Option<Tensor>>>,
}

/// What a forward hands out besides logits.
enum Observe<'a> {
    /// Prefill statistics for token selection.
    Prefill(&'a mut Recorder),
    /// Per-layer attention of the new token(s) to every cached slot,
    /// `[kv_heads, slots]` summed over queries (decode-phase eviction).
    Decode(&'a mut Vec<Tensor>),
}

impl Recorder {
    /// Adds `[kv_heads, t]` (t <= prompt_len) into a `[kv_heads, prompt_len]` slot.
    fn add(slot: &mut Option<Tensor>, part: Tensor, prompt_len: usize) -> Result<()> {
        let t = part.dim(1)?;
        let part = part.pad_with_zeros(1, 0, prompt_len - t)?;
        *slot = Some(match slot.take() {
            Some(acc) => (acc + part)?,
            None => part,
        });
        Ok(())
    }

    /// The first row of a chunk at `pos..pos + n` inside the observation window.
    fn window_rows(&self, pos: usize, n: usize) -> Option<usize> {
        let start = self.prompt_len - self.window;
        (pos + n > start).then(|| start.saturating_sub(pos))
    }

    /// Whether a chunk at `pos..pos + n` contributes to any statistic.
    fn wants(&self, pos: usize, n: usize) -> bool {
        self.accumulated.is_some() || self.window_rows(pos, n).is_some()
    }

    fn host(slots: Vec<Option<Tensor>>, heads: usize, l: usize) -> Result<Vec<Vec<Vec<f32>>>> {
        slots
            .into_iter()
            .map(|t| match t {
                Some(t) => Ok(t.to_vec2::<f32>()?),
                None => Ok(vec![vec![0f32; l]; heads]),
            })
            .collect()
    }
}

/// Decode contexts from which `att @ V` is split along the context (GPU only:
/// the CPU GEMM has no such problem and the split only adds copies).
const SPLIT_K_MIN_CONTEXT: usize = 2048;
/// Prefill chunk when every layer runs the flash kernel: long enough that the
/// projections are large matrix products, short enough that a chunk's MLP
/// activations stay small (no score matrix grows with it).
const FLASH_PREFILL_CHUNK: usize = 4096;
const SPLIT_K_CHUNK: usize = 256;

/// `att [1, h, r, t] @ v [1, h, t, d]` computed as a batch of `t / chunk`
/// partial products summed afterwards. For a decode step (r = 3 rows, t in
/// the thousands) a single GEMM reduces over t almost serially; measured on
/// an H100 it took 123 µs per layer at t = 8192, most of the step.
pub fn split_k_matmul(att: &Tensor, v: &Tensor, chunk: usize) -> candle_core::Result<Tensor> {
    let (_, h, r, t) = att.dims4()?;
    let d = v.dim(3)?;
    let tp = t.div_ceil(chunk) * chunk;
    let c = tp / chunk;
    let a = att.pad_with_zeros(3, 0, tp - t)?.reshape((h, r, c, chunk))?.transpose(1, 2)?.contiguous()?;
    let v = v.pad_with_zeros(2, 0, tp - t)?.reshape((h, c, chunk, d))?;
    a.matmul(&v)?.sum(1)?.reshape((1, h, r, d))
}

/// One RoPE's inverse frequencies on the device, `[1, head_dim / 2]`, and
/// the factor cos/sin are multiplied by; LongRoPE keeps a second set for
/// sequences longer than its original context.
struct RopeTables {
    short: (Tensor, f32),
    long: Option<(Tensor, f32, usize)>,
}

impl RopeTables {
    fn new(rope: &Rope, device: &Device) -> Result<Self> {
        let upload = |f: Frequencies| -> Result<(Tensor, f32)> {
            let half = f.inv_freq.len();
            Ok((Tensor::from_vec(f.inv_freq, (1, half), device)?, f.attention_factor))
        };
        let long = match &rope.scaling {
            Scaling::LongRope { original_context, .. } => {
                let (t, f) = upload(rope.frequencies(original_context + 1))?;
                Some((t, f, *original_context))
            }
            _ => None,
        };
        Ok(Self { short: upload(rope.frequencies(0))?, long })
    }

    /// cos and sin `[n, head_dim / 2]` for positions `pos..pos + n` of a
    /// sequence `seq_len` long, built per forward (no table sized by the context).
    fn cos_sin(&self, pos: usize, n: usize, seq_len: usize, dtype: DType) -> Result<(Tensor, Tensor)> {
        let (inv, factor) = match &self.long {
            Some((t, f, orig)) if seq_len > *orig => (t, *f),
            _ => (&self.short.0, self.short.1),
        };
        let positions: Vec<f32> = (pos..pos + n).map(|p| p as f32).collect();
        let positions = Tensor::from_vec(positions, (n, 1), inv.device())?;
        let angles = positions.matmul(inv)?;
        let scale = |t: Tensor| -> Result<Tensor> {
            let t = if factor == 1.0 { t } else { (t * f64::from(factor))? };
            Ok(t.to_dtype(dtype)?)
        };
        Ok((scale(angles.cos()?)?, scale(angles.sin()?)?))
    }
}

/// Slots hidden from attention, `[layer][kv_head]` = slot indices: the
/// masked-attention reference that pruned caches are tested against.
pub type HiddenSlots = [Vec<Vec<u32>>];

/// Options of one forward.
struct Pass<'a, 'b> {
    logits: Logits,
    obs: Option<Observe<'a>>,
    /// Length of the whole sequence this forward belongs to (LongRoPE picks
    /// its factors by it, as transformers does).
    seq_len: usize,
    hidden: Option<&'b HiddenSlots>,
}

/// One layer's projections of a shared input, stacked (dense weights only).
struct Fused {
    qkv: Option<Linear>,
    gate_up: Option<Linear>,
}

pub struct Model {
    pub config: ModelConfig,
    weights: Weights,
    fused: Vec<Fused>,
    ropes: Vec<RopeTables>,
    device: Device,
    dtype: DType,
    /// Whether the attention scale is folded into the query projection (or q norm).
    q_prescaled: bool,
    /// Where our flash kernels replace materialized attention.
    flash: FlashSupport,
    /// Whether projections are split, rotated and appended by one kernel.
    fuse_rope: bool,
}

impl Model {
    pub fn new(config: ModelConfig, mut weights: Weights, dtype: DType, device: &Device) -> Result<Self> {
        if weights.layers.len() != config.n_layers {
            return Err(EngineError::BadConfig(format!(
                "{} layers of weights for {} layers in the config",
                weights.layers.len(),
                config.n_layers
            )));
        }
        // Folding the attention scale into dense query weights saves one
        // kernel per layer and token (RoPE is linear, so the order is free).
        // With a q norm the scale goes into the norm's weight instead.
        let scale = config.attn_scale;
        let mut q_prescaled = true;
        for l in &mut weights.layers {
            match &l.q_norm {
                Some(w) => l.q_norm = Some((w * scale)?),
                None => q_prescaled &= l.q.scale_dense(scale)?,
            }
        }
        // After the scale is folded in, so the stacked rows carry it too.
        let fused = weights
            .layers
            .iter_mut()
            .map(|l| -> Result<Fused> {
                Ok(Fused {
                    qkv: Linear::fuse(&mut [&mut l.q, &mut l.k, &mut l.v])?,
                    gate_up: Linear::fuse(&mut [&mut l.gate, &mut l.up])?,
                })
            })
            .collect::<Result<_>>()?;
        let ropes = config.ropes.iter().map(|r| RopeTables::new(r, device)).collect::<Result<_>>()?;
        let flash = FlashSupport::new(AttentionKernel::Auto, device, dtype, config.head_dim, config.group_size());
        let fuse_rope = qkv_rope::available(device);
        Ok(Self { config, weights, fused, ropes, device: device.clone(), dtype, q_prescaled, flash, fuse_rope })
    }

    /// Chooses the attention kernels (the flash ones by default where they apply).
    pub fn with_attention(mut self, kind: AttentionKernel) -> Self {
        let c = &self.config;
        self.flash = FlashSupport::new(kind, &self.device, self.dtype, c.head_dim, c.group_size());
        self.fuse_rope = kind == AttentionKernel::Auto && qkv_rope::available(&self.device);
        self
    }

    /// Where the flash kernels serve this model.
    pub fn flash_support(&self) -> FlashSupport {
        self.flash
    }

    /// Whether a prefill with these options runs every layer on the flash
    /// kernel, so its chunks can be long (no score matrix to hold).
    fn flash_prefills(&self, opts: &PrefillOptions) -> bool {
        let c = &self.config;
        self.flash.prefill
            && !opts.accumulated
            && c.attn_softcap.is_none()
            && (0..c.n_layers).all(|l| c.window(l).is_none())
    }

    /// The weights, for reference implementations in tests and tools.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Factor still applied to q·k in attention: 1 when the query weights
    /// carry the scale, else the scale.
    pub fn attention_scale(&self) -> f64 {
        if self.q_prescaled {
            1.0
        } else {
            self.config.attn_scale
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn new_cache(&self) -> Result<KvCache> {
        let c = &self.config;
        KvCache::new(c.n_layers, c.n_kv_heads, c.head_dim, self.dtype, &self.device)
    }

    /// Feeds `tokens` at positions `cache.next_pos()..`, appending to the cache.
    /// Returns logits `[n, vocab]` (All) or `[1, vocab]` (Last), in f32.
    pub fn forward(&self, cache: &mut KvCache, tokens: &[u32], logits: Logits) -> Result<Tensor> {
        let seq_len = cache.next_pos() + tokens.len();
        self.forward_inner(cache, tokens, Pass { logits, obs: None, seq_len, hidden: None })
    }

    /// As `forward`, with the slots in `hidden` masked out of attention.
    pub fn forward_hiding(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        logits: Logits,
        hidden: &HiddenSlots,
    ) -> Result<Tensor> {
        let seq_len = cache.next_pos() + tokens.len();
        self.forward_inner(cache, tokens, Pass { logits, obs: None, seq_len, hidden: Some(hidden) })
    }

    /// As `forward`, also returning each layer's attention to its cached
    /// slots, `[kv_heads, slots]` summed over the new tokens and query groups.
    pub fn forward_observed(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        logits: Logits,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let mut seen = Vec::with_capacity(self.config.n_layers);
        let seq_len = cache.next_pos() + tokens.len();
        let pass = Pass { logits, obs: Some(Observe::Decode(&mut seen)), seq_len, hidden: None };
        let out = self.forward_inner(cache, tokens, pass)?;
        Ok((out, seen))
    }

    /// Prefills a whole prompt in chunks of at most `opts.chunk` tokens,
    /// recording attention statistics for the last `opts.window` tokens (and
    /// H2O's when asked). Returns the cache, the statistics and the logits of
    /// the last position.
    pub fn prefill(&self, tokens: &[u32], opts: PrefillOptions) -> Result<(KvCache, AttentionStats, Tensor)> {
        self.prefill_with(tokens, opts, &mut |_, _| true)
    }

    /// As `prefill`, calling `progress(done, total)` after each chunk; a
    /// `false` return cancels.
    pub fn prefill_with(
        &self,
        tokens: &[u32],
        opts: PrefillOptions,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<(KvCache, AttentionStats, Tensor)> {
        let PrefillOptions { chunk, window, accumulated } = opts;
        let l = tokens.len();
        if l == 0 {
            return Err(EngineError::EmptyPrompt);
        }
        if l > self.config.max_context {
            return Err(EngineError::PromptTooLong { tokens: l, context: self.config.max_context });
        }
        let window = window.clamp(1, l);
        let chunk = if self.flash_prefills(&opts) { chunk.max(FLASH_PREFILL_CHUNK) } else { chunk }.max(window);
        let c = &self.config;
        let mut rec = Recorder {
            prompt_len: l,
            window,
            window_sums: vec![None; c.n_layers],
            accumulated: accumulated.then(|| vec![None; c.n_layers]),
        };
        let mut cache = self.new_cache()?;
        // One allocation for the whole prompt instead of growing per chunk.
        for i in 0..c.n_layers {
            cache.layer_mut(i).reserve(l)?;
        }
        // Chunk boundaries are laid out so the last chunk holds the whole window.
        let mut bounds = Vec::new();
        let mut end = l;
        while end > 0 {
            let start = end.saturating_sub(chunk);
            bounds.push((start, end));
            end = start;
        }
        bounds.reverse();
        let mut last = None;
        for &(s, e) in &bounds {
            let pass = Pass { logits: Logits::Last, obs: Some(Observe::Prefill(&mut rec)), seq_len: l, hidden: None };
            let out = self.forward_inner(&mut cache, &tokens[s..e], pass)?;
            last = Some(out);
            if !progress(e, l) {
                return Err(EngineError::Cancelled);
            }
        }
        let heads = c.n_kv_heads;
        let mut stats = AttentionStats {
            window: Recorder::host(rec.window_sums, heads, l)?,
            accumulated: match rec.accumulated {
                Some(slots) => Recorder::host(slots, heads, l)?,
                None => Vec::new(),
            },
            key_norms: Vec::new(),
            window_len: window,
        };
        stats.key_norms = cache
            .layers()
            .iter()
            .map(|layer| -> Result<Vec<Vec<f32>>> {
                let (k, _) = layer.kv()?;
                let norms = k.to_dtype(DType::F32)?.sqr()?.sum(D::Minus1)?.sqrt()?.squeeze(0)?;
                Ok(norms.to_vec2::<f32>()?)
            })
            .collect::<Result<_>>()?;
        Ok((cache, stats, last.expect("at least one chunk")))
    }

    fn forward_inner(&self, cache: &mut KvCache, tokens: &[u32], mut pass: Pass<'_, '_>) -> Result<Tensor> {
        let n = tokens.len();
        let pos = cache.next_pos();
        let c = &self.config;
        if n == 0 {
            return Err(EngineError::EmptyPrompt);
        }
        if pos + n > c.max_context {
            return Err(EngineError::PromptTooLong { tokens: pos + n, context: c.max_context });
        }
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.weights.embed.index_select(&ids, 0)?.unsqueeze(0)?;
        if c.traits().embed_scale {
            // transformers rounds sqrt(hidden) to the activation dtype first.
            let s = Tensor::new(&[(c.hidden as f32).sqrt()], &self.device)?.to_dtype(self.dtype)?;
            x = x.broadcast_mul(&s)?;
        }
        let seq_len = pass.seq_len.max(pos + n);
        let rope = self.ropes.iter().map(|r| r.cos_sin(pos, n, seq_len, self.dtype)).collect::<Result<Vec<_>>>()?;
        let causal = if n > 1 { Some(self.causal_mask(n, pos)?) } else { None };
        let eps = c.rms_eps as f32;
        let post = |t: Tensor, w: &Option<Tensor>| -> Result<Tensor> {
            Ok(match w {
                Some(w) => candle_nn::ops::rms_norm(&t, w, eps)?,
                None => t,
            })
        };
        // Each residual add is fused with the norm after it (the next layer's
        // input norm, or the final norm after the last layer).
        let layers = &self.weights.layers;
        let mut h = candle_nn::ops::rms_norm(&x, &layers[0].attn_norm, eps)?;
        for (li, lw) in layers.iter().enumerate() {
            let (cos, sin) = &rope[c.layers[li].rope];
            let attn = self.attention(cache, li, &h, cos, sin, pos, causal.as_ref(), &mut pass)?;
            let (sum, normed) = fused::add_rms_norm(&x, &post(attn, &lw.post_attn_norm)?, &lw.ffn_norm, eps)?;
            let act = match &self.fused[li].gate_up {
                Some(f) => fused::act_mul(&f.forward(&normed)?, c.activation)?,
                None => (fused::act_of(&lw.gate.forward(&normed)?, c.activation)? * lw.up.forward(&normed)?)?,
            };
            let m = lw.down.forward(&act)?;
            let next_norm = layers.get(li + 1).map_or(&self.weights.norm, |l| &l.attn_norm);
            (x, h) = fused::add_rms_norm(&sum, &post(m, &lw.post_ffn_norm)?, next_norm, eps)?;
        }
        cache.advance(n);
        // `h` is the final norm of every position.
        let x = match pass.logits {
            Logits::Last => h.narrow(1, n - 1, 1)?,
            Logits::All => h,
        };
        let logits = self.weights.lm_head.forward(&x)?.squeeze(0)?.to_dtype(DType::F32)?;
        Ok(match c.final_softcap {
            Some(cap) => softcap(&logits, cap)?,
            None => logits,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        cache: &mut KvCache,
        layer: usize,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        pos: usize,
        causal: Option<&Tensor>,
        pass: &mut Pass<'_, '_>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let n = x.dim(1)?;
        let (hq, hkv, d, g) = (c.n_heads, c.n_kv_heads, c.head_dim, c.group_size());
        let q = self.project(cache, layer, x, cos, sin, pos)?;
        let lc = cache.layer_mut(layer);
        let t = lc.len();
        let window = match c.window(layer) {
            Some(w) => self.window_mask(lc, pos, n, w)?,
            None => None,
        };
        let hidden = match pass.hidden {
            Some(h) => {
                let h = h
                    .get(layer)
                    .ok_or_else(|| EngineError::BadSelection(format!("no hidden slots for layer {layer}")))?;
                Some(self.hidden_mask(h, t)?)
            }
            None => None,
        };
        let lc = &cache.layers()[layer];
        let (k_all, v_all) = lc.kv()?;
        // Grouped-query attention without repeating K/V: the query heads of
        // one KV head are stacked as rows of one matrix.
        let q = q.reshape((1, hkv, g * n, d))?;
        let bias = lc.bias()?;
        let plain = window.is_none() && hidden.is_none() && bias.is_none() && c.attn_softcap.is_none();
        let flashed = match plain {
            true => self.flash_attention(&q, &k_all, &v_all, layer, n, pos, causal.is_some(), pass)?,
            false => None,
        };
        let y = match flashed {
            Some(y) => y,
            None => {
                self.materialized_attention(&q, &k_all, &v_all, layer, n, pos, causal, window, hidden, bias, pass)?
            }
        };
        let y = match n {
            1 => y.reshape((1, 1, hq * d))?,
            _ => y.reshape((1, hq, n, d))?.transpose(1, 2)?.reshape((1, n, hq * d))?,
        };
        Ok(self.weights.layers[layer].o.forward(&y)?)
    }

    /// The layer's queries `[1, heads, n, d]`, with RoPE; its keys and values
    /// (rotated keys) appended to the cache. One fused kernel where it
    /// applies (stacked projection, no q/k norm, K and V stored as computed).
    fn project(
        &self,
        cache: &mut KvCache,
        layer: usize,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        pos: usize,
    ) -> Result<Tensor> {
        let c = &self.config;
        let lw = &self.weights.layers[layer];
        let n = x.dim(1)?;
        let (hq, hkv, d) = (c.n_heads, c.n_kv_heads, c.head_dim);
        let interleaved = c.rope_style == RopeStyle::Interleaved;
        let qkv = self.fused[layer].qkv.as_ref().map(|f| f.forward(x)).transpose()?;
        let fusable = self.fuse_rope && lw.q_norm.is_none() && lw.k_norm.is_none();
        if let Some(qkv) = qkv.as_ref().filter(|t| fusable && t.is_contiguous()) {
            let heads = qkv_rope::Heads { query: hq, kv: hkv, dim: d };
            let fused = cache.layer_mut(layer).append_with(n, pos, |kb, vb, slot| {
                Ok(qkv_rope::rope_append(qkv, cos, sin, heads, interleaved, kb, vb, slot)?)
            })?;
            if let Some(q) = fused {
                return Ok(q);
            }
        }
        let eps = c.rms_eps as f32;
        // [1, n, heads*d] -> [1, heads, n, d]; a single token needs no copy.
        let heads = |t: Tensor, h: usize, norm: &Option<Tensor>| -> Result<Tensor> {
            let t = match norm {
                Some(w) => candle_nn::ops::rms_norm(&t.reshape((1, n, h, d))?, w, eps)?,
                None => t,
            };
            Ok(match n {
                1 => t.reshape((1, h, 1, d))?,
                _ => t.reshape((1, n, h, d))?.transpose(1, 2)?.contiguous()?,
            })
        };
        let (q, k, v) = match qkv {
            Some(qkv) => {
                let (qd, kd) = (hq * d, hkv * d);
                (qkv.narrow(D::Minus1, 0, qd)?, qkv.narrow(D::Minus1, qd, kd)?, qkv.narrow(D::Minus1, qd + kd, kd)?)
            }
            None => (lw.q.forward(x)?, lw.k.forward(x)?, lw.v.forward(x)?),
        };
        let q = heads(q, hq, &lw.q_norm)?;
        let k = heads(k, hkv, &lw.k_norm)?;
        let v = heads(v, hkv, &None)?;
        let (q, k) = match interleaved {
            true => (candle_nn::rotary_emb::rope_i(&q, cos, sin)?, candle_nn::rotary_emb::rope_i(&k, cos, sin)?),
            false => (candle_nn::rotary_emb::rope(&q, cos, sin)?, candle_nn::rotary_emb::rope(&k, cos, sin)?),
        };
        cache.layer_mut(layer).append(&k, &v, pos)?;
        Ok(q)
    }

    /// Attention through the flash kernels, recording SnapKV's window
    /// statistics from a separate pass over the window's queries. `None`
    /// where they do not apply (H2O's sums and decode observations need every
    /// probability; unsupported shapes, dtypes or devices).
    #[allow(clippy::too_many_arguments)]
    fn flash_attention(
        &self,
        q: &Tensor,
        k_all: &Tensor,
        v_all: &Tensor,
        layer: usize,
        n: usize,
        pos: usize,
        causal: bool,
        pass: &mut Pass<'_, '_>,
    ) -> Result<Option<Tensor>> {
        match pass.obs.as_ref() {
            None => {}
            Some(Observe::Prefill(rec)) if rec.accumulated.is_none() => {}
            Some(_) => return Ok(None),
        }
        if !(flash::readable(k_all) && flash::readable(v_all)) {
            return Ok(None);
        }
        let scale = self.attention_scale() as f32;
        let y = match n {
            1 if self.flash.decode => flash::decode(q, k_all, v_all, scale)?,
            2.. if self.flash.prefill => flash::prefill(q, k_all, v_all, n, causal, scale)?,
            _ => return Ok(None),
        };
        if let Some(Observe::Prefill(rec)) = pass.obs.as_mut() {
            if let Some(first) = rec.window_rows(pos, n) {
                self.record_window(q, k_all, layer, rec, first, n, causal)?;
            }
        }
        Ok(Some(y))
    }

    /// SnapKV's statistic for the flash path: the attention of the window's
    /// queries (rows `first..n` of this chunk) over every slot, summed.
    #[allow(clippy::too_many_arguments)]
    fn record_window(
        &self,
        q: &Tensor,
        k_all: &Tensor,
        li: usize,
        rec: &mut Recorder,
        first: usize,
        n: usize,
        causal: bool,
    ) -> Result<()> {
        let (hkv, g, d) = (self.config.n_kv_heads, self.config.group_size(), self.config.head_dim);
        let (w, t) = (n - first, k_all.dim(2)?);
        let qw = q.reshape((hkv, g, n, d))?.narrow(2, first, w)?.contiguous()?.reshape((1, hkv, g * w, d))?;
        let mut att = qw.matmul(&k_all.t()?)?;
        if !self.q_prescaled {
            att = (att * self.config.attn_scale)?;
        }
        let att = match fused::masked_softmax(&att, w, causal)? {
            Some(att) => att,
            None => {
                if causal {
                    let mask = self.causal_mask(w, t - w)?;
                    att = att.reshape((hkv, g, w, t))?.broadcast_add(&mask)?.reshape((1, hkv, g * w, t))?;
                }
                candle_nn::ops::softmax_last_dim(&att)?
            }
        };
        let win = att.reshape((hkv, g, w, t))?.to_dtype(DType::F32)?.sum(1)?.sum(1)?;
        Recorder::add(&mut rec.window_sums[li], win, rec.prompt_len)
    }

    /// Scores written out, masked, normalized and multiplied by V: every
    /// feature (windows, hidden slots, padded heads, soft-caps, statistics).
    #[allow(clippy::too_many_arguments)]
    fn materialized_attention(
        &self,
        q: &Tensor,
        k_all: &Tensor,
        v_all: &Tensor,
        layer: usize,
        n: usize,
        pos: usize,
        causal: Option<&Tensor>,
        window: Option<Tensor>,
        hidden: Option<Tensor>,
        bias: Option<Tensor>,
        pass: &mut Pass<'_, '_>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (hkv, g) = (c.n_kv_heads, c.group_size());
        let t = k_all.dim(2)?;
        let mut att = q.matmul(&k_all.t()?)?;
        if !self.q_prescaled {
            att = (att * c.attn_scale)?;
        }
        if let Some(cap) = c.attn_softcap {
            att = softcap(&att, cap)?;
        }
        // The common case (every slot visible but the new tokens' future) in
        // one fused pass on the GPU; windows, hidden slots and padded heads below.
        let fused = match (&window, &hidden, &bias) {
            (None, None, None) => fused::masked_softmax(&att, n, causal.is_some())?,
            _ => None,
        };
        let att = match fused {
            Some(att) => att,
            None => {
                // Heads padded to a common length (layer × head budgets); after the
                // soft-cap, which would turn -inf into a finite value.
                if let Some(bias) = &bias {
                    att = att.broadcast_add(bias)?;
                }
                // Masks are [n, t] (causal) or [hkv, 1, n or 1, t] (window, hidden slots).
                let masks: Vec<Tensor> = match window {
                    Some(w) => vec![w],
                    None => {
                        causal.map(|m| m.narrow(1, m.dim(1).unwrap_or(t) - t, t)).transpose()?.into_iter().collect()
                    }
                };
                for mask in masks.into_iter().chain(hidden) {
                    // The causal mask covers the cache as laid out at prefill (slot = position).
                    att = att.reshape((hkv, g, n, t))?.broadcast_add(&mask)?.reshape((1, hkv, g * n, t))?;
                }
                candle_nn::ops::softmax_last_dim(&att)?
            }
        };
        match pass.obs.as_mut() {
            Some(Observe::Prefill(rec)) if rec.wants(pos, n) => self.record(&att, layer, rec, pos, n, t)?,
            Some(Observe::Prefill(_)) => {}
            Some(Observe::Decode(seen)) => {
                seen.push(att.reshape((hkv, g * n, t))?.to_dtype(DType::F32)?.sum(1)?);
            }
            None => {}
        }
        Ok(if n == 1 && t >= SPLIT_K_MIN_CONTEXT && self.device.is_cuda() {
            split_k_matmul(&att, v_all, SPLIT_K_CHUNK)?
        } else {
            att.matmul(v_all)? // [1, hkv, g*n, d]
        })
    }

    /// Sliding-window mask `[kv_heads, 1, n, slots]` from each slot's original
    /// position, so a pruned cache is masked as the full one would be: query
    /// `pos + j` sees a slot at position `p` when `0 <= pos + j - p < window`.
    /// `None` when a single query sees every slot.
    fn window_mask(&self, lc: &LayerCache, pos: usize, n: usize, window: usize) -> Result<Option<Tensor>> {
        let (heads, t) = (lc.kv_heads(), lc.len());
        let oldest = (0..heads).flat_map(|h| lc.positions(h).iter().copied()).min().unwrap_or(0) as usize;
        if n == 1 && pos - oldest < window {
            return Ok(None);
        }
        // Offsets from the first query; far-away slots stay far away in f32.
        // An unpruned layer (slot = position, every head) needs no upload.
        let unpruned = (0..heads).all(|h| {
            let p = lc.positions(h);
            p.first() == Some(&0) && p.last().map(|&x| x as usize + 1) == Some(t)
        });
        let rel = if unpruned {
            let (first, end) = (-(pos as i64), t as i64 - pos as i64);
            let rel = Tensor::arange(first, end, &self.device)?.to_dtype(DType::F32)?;
            rel.reshape((1, 1, 1, t))?.broadcast_as((heads, 1, 1, t))?.contiguous()?
        } else {
            let rel: Vec<f32> =
                (0..heads).flat_map(|h| lc.positions(h).iter().map(|&p| (p as i64 - pos as i64) as f32)).collect();
            Tensor::from_vec(rel, (heads, 1, 1, t), &self.device)?
        };
        let queries: Vec<f32> = (0..n).map(|j| j as f32).collect();
        let queries = Tensor::from_vec(queries, (1, 1, n, 1), &self.device)?;
        let dist = queries.broadcast_sub(&rel)?;
        let visible = (dist.ge(0f32)? * dist.lt(window as f32)?)?;
        let zero = Tensor::zeros((heads, 1, n, t), self.dtype, &self.device)?;
        let blocked = Tensor::full(f32::NEG_INFINITY, (heads, 1, n, t), &self.device)?.to_dtype(self.dtype)?;
        Ok(Some(visible.where_cond(&zero, &blocked)?))
    }

    /// Additive mask `[kv_heads, 1, 1, slots]` hiding the given slots.
    fn hidden_mask(&self, hidden: &[Vec<u32>], t: usize) -> Result<Tensor> {
        let mut m = vec![0f32; hidden.len() * t];
        for (h, slots) in hidden.iter().enumerate() {
            for &s in slots {
                if let Some(x) = m.get_mut(h * t + s as usize) {
                    *x = f32::NEG_INFINITY;
                }
            }
        }
        Ok(Tensor::from_vec(m, (hidden.len(), 1, 1, t), &self.device)?.to_dtype(self.dtype)?)
    }

    /// Additive mask `[n, old + n]`, built on the device once per forward:
    /// the `old` cached slots are visible, the `n` new ones causal. Layers
    /// holding fewer cached slots use its rightmost columns.
    fn causal_mask(&self, n: usize, old: usize) -> Result<Tensor> {
        let t = old + n;
        let rows = Tensor::arange(old as u32, t as u32, &self.device)?.reshape((n, 1))?;
        let cols = Tensor::arange(0u32, t as u32, &self.device)?.reshape((1, t))?;
        let visible = cols.broadcast_le(&rows)?;
        let zero = Tensor::zeros((n, t), self.dtype, &self.device)?;
        let blocked = Tensor::full(f32::NEG_INFINITY, (n, t), &self.device)?.to_dtype(self.dtype)?;
        Ok(visible.where_cond(&zero, &blocked)?)
    }

    /// Adds this chunk's attention to the per-head statistics (on the device).
    /// Only the window's rows are converted unless H2O's sums are recorded.
    fn record(&self, att: &Tensor, li: usize, rec: &mut Recorder, pos: usize, n: usize, t: usize) -> Result<()> {
        let (hkv, g) = (self.config.n_kv_heads, self.config.group_size());
        let att = att.reshape((hkv, g, n, t))?;
        if let Some(acc) = rec.accumulated.as_mut() {
            Recorder::add(&mut acc[li], att.to_dtype(DType::F32)?.sum(1)?.sum(1)?, rec.prompt_len)?;
        }
        if let Some(first) = rec.window_rows(pos, n) {
            let win = att.narrow(2, first, n - first)?.to_dtype(DType::F32)?.sum(1)?.sum(1)?;
            Recorder::add(&mut rec.window_sums[li], win, rec.prompt_len)?;
        }
        Ok(())
    }
}

/// `cap · tanh(x / cap)`: Gemma 2's soft-capping of attention and output logits.
fn softcap(x: &Tensor, cap: f64) -> Result<Tensor> {
    Ok(((x / cap)?.tanh()? * cap)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_k_matmul_equals_plain_matmul() {
        let dev = Device::Cpu;
        let att = Tensor::rand(0f32, 1.0, (1, 3, 3, 1000), &dev).unwrap();
        // A strided view, as the cache hands out.
        let vbuf = Tensor::randn(0f32, 1.0, (1, 3, 1100, 64), &dev).unwrap();
        let v = vbuf.narrow(2, 0, 1000).unwrap();
        let a = att.matmul(&v).unwrap();
        let b = split_k_matmul(&att, &v, 128).unwrap();
        assert_eq!(a.dims(), b.dims());
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-3, "split-K differs by {d}");
    }
}
