//! Benchmarks that print figures: our engine (full and pruned cache) against
//! candle-transformers' stock `quantized_llama` on the same GGUF and device.
//! Every figure is the median of several repetitions after a warm-up.

pub mod memory;
pub mod stock;

use crate::engine::cache::KvCache;
use crate::engine::error::Result;
use crate::engine::model::Logits;
use crate::engine::{flash, fused};
use crate::engine::{Engine, PrefillOptions};
use crate::prune::{apply, SelectConfig, Strategy};
use candle_core::{DType, Device, Tensor, D};
use serde::Serialize;
use std::time::Instant;

/// Median, min and max of repeated measurements.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(mut xs: Vec<f64>) -> Stat {
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        let median = if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            xs[n / 2]
        } else {
            (xs[n / 2 - 1] + xs[n / 2]) / 2.0
        };
        Stat { median, min: xs.first().copied().unwrap_or(f64::NAN), max: xs.last().copied().unwrap_or(f64::NAN) }
    }
}

/// Runs `f` once to warm up, then `reps` times; returns the per-run values.
pub fn repeat(reps: usize, mut f: impl FnMut() -> Result<f64>) -> Result<Stat> {
    f()?;
    let mut xs = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        xs.push(f()?);
    }
    Ok(Stat::of(xs))
}

/// Waits for queued GPU work so wall-clock timings are honest.
pub fn sync(device: &Device) -> Result<()> {
    device.synchronize()?;
    Ok(())
}

/// Greedy decode of exactly `n` tokens (no EOS stop), reading each sampled id
/// back to the host as a real decode loop does. Returns tokens per second.
pub fn decode_tps(engine: &Engine, cache: &KvCache, first: &Tensor, n: usize) -> Result<f64> {
    let mut cache = cache.clone();
    let dev = engine.model.device().clone();
    sync(&dev)?;
    let start = Instant::now();
    let mut tok = first.argmax(D::Minus1)?.flatten_all()?.to_vec1::<u32>()?[0];
    for _ in 0..n {
        let logits = engine.model.forward(&mut cache, &[tok], Logits::Last)?;
        tok = logits.argmax(D::Minus1)?.flatten_all()?.to_vec1::<u32>()?[0];
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Prefill throughput in tokens per second.
pub fn prefill_tps(engine: &Engine, tokens: &[u32], opts: PrefillOptions) -> Result<f64> {
    sync(engine.model.device())?;
    let start = Instant::now();
    let pre = engine.prefill(tokens, opts)?;
    pre.first_logits.to_vec2::<f32>()?;
    Ok(tokens.len() as f64 / start.elapsed().as_secs_f64())
}

/// A pruned copy of a prefill at `budget` under `strategy`.
pub fn pruned_cache(
    pre: &crate::engine::Prefilled,
    strategy: &Strategy,
    budget: f64,
    select: &SelectConfig,
    reserve: usize,
) -> Result<KvCache> {
    let budgets = apply::budgets_for_prefill(strategy, budget, pre, select)
        .map_err(|e| crate::engine::error::EngineError::BadSelection(e.to_string()))?;
    Ok(apply::prune(pre, &budgets, select, reserve)?.0)
}

/// Device memory of one cache configuration, measured with nothing else of
/// the prompt alive (CUDA only): the prefill's peak, what the cache holds
/// once the prefill is dropped, and the peak while decoding from it. All
/// figures include the weights.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DecodeMemory {
    pub prefill_peak_bytes: usize,
    pub held_bytes: usize,
    pub decode_peak_bytes: usize,
    pub kv_bytes: usize,
}

/// Prefills `tokens`, builds a cache with `make`, drops the prefill, then
/// decodes `n` tokens, reading the memory pool at each stage. `None` off CUDA.
pub fn decode_memory(
    engine: &Engine,
    tokens: &[u32],
    opts: PrefillOptions,
    n: usize,
    make: &dyn Fn(&crate::engine::Prefilled) -> Result<KvCache>,
) -> Result<Option<DecodeMemory>> {
    let dev = engine.model.device();
    if memory::usage(dev).is_none() {
        return Ok(None);
    }
    memory::trim(dev);
    memory::reset_peak(dev);
    let pre = engine.prefill(tokens, opts)?;
    let prefill_peak = memory::usage(dev).map_or(0, |u| u.peak_bytes);
    let cache = make(&pre)?;
    let first = pre.first_logits.clone();
    drop(pre);
    memory::trim(dev);
    memory::reset_peak(dev);
    let held = memory::usage(dev).map_or(0, |u| u.used_bytes);
    decode_tps(engine, &cache, &first, n)?;
    let decode_peak = memory::usage(dev).map_or(0, |u| u.peak_bytes);
    Ok(Some(DecodeMemory {
        prefill_peak_bytes: prefill_peak,
        held_bytes: held,
        decode_peak_bytes: decode_peak,
        kv_bytes: cache.bytes(),
    }))
}

/// Wall-clock seconds per call of `f` over `iters` calls after one warm-up
/// call, with queued GPU work waited for on both sides.
fn seconds_per_call(dev: &Device, iters: usize, f: &dyn Fn() -> candle_core::Result<Tensor>) -> Result<f64> {
    f()?;
    sync(dev)?;
    let start = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    sync(dev)?;
    Ok(start.elapsed().as_secs_f64() / iters as f64)
}

/// Microseconds per call of the attention pieces of one decode step at
/// context `t` (one layer, the model's head layout), after warm-up. Answers
/// "what dominates a decode step" as the context grows.
pub fn attention_op_profile(engine: &Engine, t: usize, iters: usize) -> Result<Vec<(String, f64)>> {
    let c = engine.config();
    let (hkv, g, d) = (c.n_kv_heads, c.group_size(), c.head_dim);
    let dev = engine.model.device().clone();
    let dt = engine.model.dtype();
    let cap = t + 128;
    let kbuf = Tensor::randn(0f32, 1.0, (1, hkv, cap, d), &dev)?.to_dtype(dt)?;
    let vbuf = Tensor::randn(0f32, 1.0, (1, hkv, cap, d), &dev)?.to_dtype(dt)?;
    let k = kbuf.narrow(2, 0, t)?;
    let v = vbuf.narrow(2, 0, t)?;
    let kc = k.contiguous()?;
    let vc = v.contiguous()?;
    let q = Tensor::randn(0f32, 1.0, (1, hkv, g, d), &dev)?.to_dtype(dt)?;
    let att = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?;
    let new_k = Tensor::randn(0f32, 1.0, (1, hkv, 1, d), &dev)?.to_dtype(dt)?;
    let x = Tensor::randn(0f32, 1.0, (1, 1, c.hidden), &dev)?.to_dtype(dt)?;
    let lw = &engine.model.weights().layers[0];
    let time = |name: &str, f: &dyn Fn() -> candle_core::Result<Tensor>| -> Result<(String, f64)> {
        Ok((name.to_string(), seconds_per_call(&dev, iters, f)? * 1e6))
    };
    let flash = engine.model.flash_support();
    let up = lw.up.forward(&x)?;
    let gu = Tensor::cat(&[&up, &up], 2)?;
    let mut rows = vec![
        time("q_proj", &|| lw.q.forward(&x))?,
        time("mlp_up", &|| lw.up.forward(&x))?,
        time("append_slice_set", &|| kbuf.slice_set(&new_k, 2, t).map(|_| new_k.clone()))?,
        time("qk_matmul_strided", &|| q.matmul(&k.t()?))?,
        time("qk_matmul_contiguous", &|| q.matmul(&kc.t()?))?,
        time("softmax", &|| candle_nn::ops::softmax_last_dim(&att))?,
        time("av_matmul_strided", &|| att.matmul(&v))?,
        time("av_matmul_contiguous", &|| att.matmul(&vc))?,
        time("rms_norm", &|| candle_nn::ops::rms_norm(&x, &lw.attn_norm, 1e-5))?,
        time("add", &|| &x + &x)?,
        time("fused_add_rms_norm", &|| Ok(fused::add_rms_norm(&x, &x, &lw.attn_norm, 1e-5)?.1))?,
        time("fused_act_mul", &|| fused::act_mul(&gu, c.activation))?,
    ];
    if flash.decode {
        rows.push(time("flash_decode", &|| flash::decode(&q, &k, &v, 1.0))?);
    }
    Ok(rows)
}

/// Milliseconds per call of the pieces of one prefill chunk of `chunk`
/// queries at context `t` (one layer), after warm-up: what dominates a long
/// prefill as the context grows.
pub fn prefill_op_profile(engine: &Engine, t: usize, chunk: usize, iters: usize) -> Result<Vec<(String, f64)>> {
    let c = engine.config();
    let (hkv, g, d) = (c.n_kv_heads, c.group_size(), c.head_dim);
    let dev = engine.model.device().clone();
    let dt = engine.model.dtype();
    let rows = g * chunk;
    let k = Tensor::randn(0f32, 1.0, (1, hkv, t, d), &dev)?.to_dtype(dt)?;
    let v = Tensor::randn(0f32, 1.0, (1, hkv, t, d), &dev)?.to_dtype(dt)?;
    let q = Tensor::randn(0f32, 1.0, (1, hkv, rows, d), &dev)?.to_dtype(dt)?;
    let scores = q.matmul(&k.t()?)?;
    let mask = Tensor::zeros((chunk, t), dt, &dev)?;
    let att = candle_nn::ops::softmax_last_dim(&scores)?;
    let x = Tensor::randn(0f32, 1.0, (1, chunk, c.hidden), &dev)?.to_dtype(dt)?;
    let lw = &engine.model.weights().layers[0];
    let time = |name: &str, f: &dyn Fn() -> candle_core::Result<Tensor>| -> Result<(String, f64)> {
        Ok((name.to_string(), seconds_per_call(&dev, iters, f)? * 1e3))
    };
    let flash = engine.model.flash_support();
    let mut rows = vec![
        time("qkv_o_proj", &|| {
            lw.q.forward(&x)?;
            lw.k.forward(&x)?;
            lw.v.forward(&x)?;
            lw.o.forward(&x)
        })?,
        time("mlp", &|| lw.down.forward(&(lw.gate.forward(&x)? * lw.up.forward(&x)?)?))?,
        time("qk_matmul", &|| q.matmul(&k.t()?))?,
        time("mask_add", &|| scores.reshape((hkv, g, chunk, t))?.broadcast_add(&mask))?,
        time("softmax", &|| candle_nn::ops::softmax_last_dim(&scores))?,
        time("h2o_sums_f32", &|| att.reshape((hkv, g, chunk, t))?.to_dtype(DType::F32)?.sum(1)?.sum(1))?,
        time("av_matmul", &|| att.matmul(&v))?,
    ];
    if flash.prefill {
        // The last chunk of a prompt of length t: every row sees (almost) all t slots.
        rows.push(time("flash_prefill", &|| flash::prefill(&q, &k, &v, chunk, true, 1.0))?);
    }
    Ok(rows)
}
