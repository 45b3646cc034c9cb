//! `depthkv bench`: speed and memory, ours vs candle's stock model, full vs pruned.

use super::args::ModelArgs;
use super::strategy::{AllocArgs, SelectArgs};
use crate::bench::{self, stock, Stat};
use crate::engine::source::ModelSource;
use crate::engine::weights::WeightMode;
use crate::engine::Engine;
use crate::eval::prompts::PromptItem;
use crate::eval::tasks::{generate_tasks, TaskKind, TaskParams};
use crate::prune::Strategy;
use crate::session::calibrate::{calibrate, CalibConfig};
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Context lengths (prompt + decoded tokens).
    #[arg(long, value_delimiter = ',', default_value = "512,2048,4096,8192", value_parser = super::values::tokens)]
    pub contexts: Vec<usize>,
    /// Tokens decoded per measurement.
    #[arg(long, default_value_t = 32, value_parser = super::values::tokens)]
    pub decode_tokens: usize,
    /// Repetitions after one warm-up; the median is reported with min and max.
    #[arg(long, default_value_t = 3, value_parser = super::values::tokens)]
    pub reps: usize,
    /// Pruned budgets measured (uniform and depthkv each), fractions in (0, 1].
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.2,0.4", value_parser = super::values::budget, allow_negative_numbers = true)]
    pub budgets: Vec<f64>,
    /// Skip candle's stock quantized_llama.
    #[arg(long)]
    pub no_stock: bool,
    /// Also measure our engine with quantized matmuls (like-for-like with stock).
    #[arg(long)]
    pub with_quantized: bool,
    /// Measure calibration wall time: all layers × N prompts of --calib-context tokens (0 = skip).
    #[arg(long, default_value_t = 0, value_parser = super::values::tokens_or_zero)]
    pub calib_prompts: usize,
    #[arg(long, default_value_t = 4096, value_parser = super::values::tokens)]
    pub calib_context: usize,
    /// Memory bandwidth of the device in GB/s for the decode bound (default: H100 SXM 3350 on CUDA).
    #[arg(long, value_parser = super::values::positive)]
    pub bandwidth_gbs: Option<f64>,
    #[command(flatten)]
    pub alloc: AllocArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Write the JSON here as well as printing it.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also time the attention pieces of a decode step at each context (µs per call)
    /// and the pieces of one prefill chunk there (ms per call).
    #[arg(long)]
    pub op_profile: bool,
    /// Draw decode tokens/s vs context (ours full, pruned, stock) to a .png or .svg.
    #[arg(long, value_parser = super::values::plot_path)]
    pub plot: Option<PathBuf>,
    /// Replace --json and --plot files that already exist.
    #[arg(long)]
    pub overwrite: bool,
}

/// Decode tokens/s vs context, one line per engine configuration.
fn plot_decode(rows: &[Value], title: &str, path: &std::path::Path) -> anyhow::Result<()> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut push = |name: String, x: f64, y: Option<f64>| {
        if let Some(y) = y {
            crate::eval::plot::push_point(&mut series, name, x, y);
        }
    };
    for r in rows {
        let Some(x) = r["context"].as_f64() else { continue };
        push("ours, full cache".into(), x, r["ours"]["decode_tps"]["median"].as_f64());
        push("ours, quantized matmul".into(), x, r["ours_quantized"]["decode_tps"]["median"].as_f64());
        push("candle stock quantized_llama".into(), x, r["stock"]["decode_tps"]["median"].as_f64());
        for p in r["pruned"].as_array().into_iter().flatten() {
            let name = format!("ours, {} {}", p["strategy"].as_str().unwrap_or("?"), p["budget"]);
            push(name, x, p["decode_tps"]["median"].as_f64());
        }
    }
    crate::eval::plot::plot_lines(title, "context (tokens)", "decode tokens/s", &series, path)?;
    Ok(())
}

/// Device memory (CUDA) of the full cache and of every pruned one, each
/// measured from its own prefill with nothing else of the prompt alive.
fn memory_figures(
    engine: &Engine,
    prompt: &[u32],
    opts: crate::engine::PrefillOptions,
    n: usize,
    strategies: &[(&str, Strategy)],
    budgets: &[f64],
    select: &crate::prune::SelectConfig,
) -> anyhow::Result<Value> {
    let dev = engine.model.device();
    let Some(base) = bench::memory::usage(dev) else { return Ok(Value::Null) };
    let full = bench::decode_memory(engine, prompt, opts, n, &|pre| Ok(pre.cache.clone()))?;
    let mut pruned = Vec::new();
    for (name, strat) in strategies {
        for &b in budgets {
            let m = bench::decode_memory(engine, prompt, opts, n, &|pre| {
                bench::pruned_cache(pre, strat, b, select, n + 1)
            })?;
            pruned.push(json!({"strategy": name, "budget": b, "memory": m}));
        }
    }
    Ok(json!({"in_use_before_bytes": base.used_bytes, "full": full, "pruned": pruned}))
}

/// A haystack prompt of exactly `n` tokens from the project's task generator.
fn prompt_tokens(engine: &Engine, n: usize) -> anyhow::Result<Vec<u32>> {
    let params =
        TaskParams { kinds: vec![TaskKind::Passkey], lengths: vec![n + 64], depths: vec![0.5], count: 1, seed: 3 };
    let count = |t: &str| engine.codec.encode_prompt(t, false).map(|v| v.len()).unwrap_or(t.len() / 4);
    let item = generate_tasks(&params, &count)?.remove(0);
    let mut ids = engine.codec.encode_prompt(&item.prompt, false)?;
    while ids.len() < n {
        ids.extend_from_within(..ids.len().min(n - ids.len()));
    }
    ids.truncate(n);
    Ok(ids)
}

fn stat(s: Stat) -> Value {
    json!({"median": s.median, "min": s.min, "max": s.max})
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    for path in [&a.json, &a.plot].into_iter().flatten() {
        crate::profile::check_target(path, a.overwrite)?;
    }
    let select = a.select.config();
    let profile = a.alloc.read_profile_for(&[crate::prune::StrategyKind::DepthKv])?;
    let engine = a.model.load()?;
    let profile = a.alloc.fitting_profile(profile, &engine)?;
    // Uniform always; DepthKV where a profile fits this model.
    let mut strategies = vec![("uniform", Strategy::Uniform)];
    if profile.is_some() {
        strategies.push(("depthkv", a.alloc.strategy(crate::prune::StrategyKind::DepthKv, profile.as_ref())?));
    }
    let dev = engine.model.device().clone();
    let n = a.decode_tokens;
    let opts = select.prefill_options();
    let quantized = if a.with_quantized {
        let mut o = a.model.load_options();
        o.weights = WeightMode::Quantized;
        Some(Engine::load_source(engine.source.clone(), &o)?)
    } else {
        None
    };
    let gguf = match &engine.source {
        ModelSource::Gguf(p) if !a.no_stock => Some(p.clone()),
        _ => None,
    };
    let mut stock_model = match &gguf {
        Some(p) => Some(stock::load(p, &dev)?),
        None => None,
    };
    let mut rows = Vec::new();
    let mut last_pre = None;
    for &ctx in &a.contexts {
        if ctx > engine.config().max_context || ctx <= n + select.window + select.sinks {
            rows.push(json!({"context": ctx, "skipped": format!("context must be in ({}, {}]", n + select.window + select.sinks, engine.config().max_context)}));
            continue;
        }
        let prompt = prompt_tokens(&engine, ctx - n)?;
        eprintln!("context {ctx}: prompt {} + {n} decoded", prompt.len());
        // Memory first, with no earlier prompt alive.
        drop(last_pre.take());
        let memory = memory_figures(&engine, &prompt, opts, n, &strategies, &a.budgets, &select)?;
        let prefill = bench::repeat(a.reps, || bench::prefill_tps(&engine, &prompt, opts))?;
        let pre = engine.prefill(&prompt, opts)?;
        bench::sync(&dev)?;
        let decode = bench::repeat(a.reps, || bench::decode_tps(&engine, &pre.cache, &pre.first_logits, n))?;
        let mut pruned = Vec::new();
        for (name, strat) in &strategies {
            for &b in &a.budgets {
                let cache = bench::pruned_cache(&pre, strat, b, &select, n + 1)?;
                let tps = bench::repeat(a.reps, || bench::decode_tps(&engine, &cache, &pre.first_logits, n))?;
                pruned.push(json!({"strategy": name, "budget": b, "decode_tps": stat(tps), "kv_bytes": cache.bytes()}));
            }
        }
        let q = match &quantized {
            Some(qe) => {
                let pre_q = qe.prefill(&prompt, opts)?;
                let p = bench::repeat(a.reps, || bench::prefill_tps(qe, &prompt, opts))?;
                let d = bench::repeat(a.reps, || bench::decode_tps(qe, &pre_q.cache, &pre_q.first_logits, n))?;
                json!({"prefill_tps": stat(p), "decode_tps": stat(d)})
            }
            None => Value::Null,
        };
        let stock_row = match stock_model.as_mut() {
            Some(_) if ctx > stock::STOCK_MAX_CONTEXT => {
                json!({"skipped": format!("stock quantized_llama has a fixed maximum context of {} tokens", stock::STOCK_MAX_CONTEXT)})
            }
            Some(m) => {
                let mut p = Vec::new();
                let mut d = Vec::new();
                stock::run(m, &prompt, n, &dev)?;
                for _ in 0..a.reps.max(1) {
                    let (pt, dt) = stock::run(m, &prompt, n, &dev)?;
                    p.push(pt);
                    d.push(dt);
                }
                m.clear_kv_cache();
                json!({"prefill_tps": stat(Stat::of(p)), "decode_tps": stat(Stat::of(d))})
            }
            None => Value::Null,
        };
        rows.push(json!({
            "context": ctx, "prompt_tokens": prompt.len(), "decoded_tokens": n,
            "ours": {"prefill_tps": stat(prefill), "decode_tps": stat(decode), "kv_bytes": pre.cache.bytes()},
            "device_memory": memory,
            "ours_quantized": q, "stock": stock_row, "pruned": pruned,
        }));
        last_pre = Some(pre);
    }

    // Re-run latency at the largest context: budget change -> prune -> tokens.
    let (rerun_name, rerun_strategy) = strategies.last().map(|(n, s)| (*n, s)).expect("uniform is always benched");
    let rerun = match &last_pre {
        Some(pre) => {
            let mut first = Vec::new();
            let mut all64 = Vec::new();
            for rep in 0..=a.reps.max(1) {
                bench::sync(&dev)?;
                let start = Instant::now();
                let b = 0.2 + 0.01 * rep as f64;
                let cache = bench::pruned_cache(pre, rerun_strategy, b, &select, 65)?;
                let mut dec = engine.decoder(
                    cache,
                    &pre.first_logits,
                    &crate::engine::GenParams { max_new_tokens: 64, ..Default::default() },
                );
                // The first token comes from the prefill logits; the second is the
                // first that reads the new cache, so it is the one timed.
                dec.step(&engine)?;
                dec.step(&engine)?;
                let t_first = start.elapsed().as_secs_f64() * 1e3;
                while dec.produced.len() < 64 {
                    if dec.step(&engine)?.is_none() {
                        break;
                    }
                }
                let t_all = start.elapsed().as_secs_f64() * 1e3;
                if rep > 0 {
                    first.push(t_first);
                    all64.push(t_all * 64.0 / dec.produced.len().max(1) as f64);
                }
            }
            json!({"context": pre.tokens.len(), "strategy": rerun_name, "first_token_ms": stat(Stat::of(first)), "tokens64_ms": stat(Stat::of(all64))})
        }
        None => Value::Null,
    };

    let calibration = if a.calib_prompts > 0 {
        let items: Vec<PromptItem> = (0..a.calib_prompts)
            .map(|i| {
                let ids = prompt_tokens(&engine, a.calib_context - 40).map(|mut v| {
                    let shift = i * 97 % v.len().max(1);
                    v.rotate_left(shift);
                    v
                })?;
                Ok(PromptItem {
                    id: format!("bench-{i}"),
                    prompt: engine.decode(&ids),
                    reference: None,
                    answers: None,
                    chat: Some(false),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let cfg = CalibConfig { select, prefill: opts, ..Default::default() };
        let specs: Vec<_> = items.iter().map(|p| p.spec(false)).collect();
        let res = calibrate(&engine, &specs, &cfg, &mut |_, _| true)?;
        json!({"prompts": a.calib_prompts, "context": a.calib_context, "layers": engine.config().n_layers, "seconds": res.seconds})
    } else {
        Value::Null
    };

    let op_profile = if a.op_profile {
        let mut per_ctx = serde_json::Map::new();
        for &ctx in &a.contexts {
            let ops = bench::attention_op_profile(&engine, ctx, 200)?;
            let mut row: serde_json::Map<String, Value> = ops.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let chunk = opts.chunk.min(ctx);
            let prefill = bench::prefill_op_profile(&engine, ctx, chunk, 5)?;
            row.insert(format!("prefill_chunk{chunk}_ms"), prefill.into_iter().map(|(k, v)| (k, json!(v))).collect());
            per_ctx.insert(ctx.to_string(), Value::Object(row));
        }
        Value::Object(per_ctx)
    } else {
        Value::Null
    };
    let weight_bytes = engine.model.weights().decode_bytes();
    let bw = a.bandwidth_gbs.or(match dev {
        candle_core::Device::Cpu => None,
        _ => Some(3350.0),
    });
    let bound = bw.map(|gbs| {
        let ctx = a.contexts.iter().copied().filter(|&c| c <= engine.config().max_context).max().unwrap_or(0);
        let kv = ctx * engine.config().n_layers * engine.info.kv_bytes_per_token_layer;
        let tps = gbs * 1e9 / (weight_bytes + kv) as f64;
        json!({"context": ctx, "weight_bytes": weight_bytes, "kv_bytes": kv, "bandwidth_gbs": gbs, "bound_decode_tps": tps})
    });
    let flash = engine.model.flash_support();
    let out = json!({
        "model": engine.info.name, "device": engine.info.device, "dtype": engine.info.dtype,
        "flash_attention": {"prefill": flash.prefill, "decode": flash.decode},
        "reps": a.reps, "contexts": rows, "rerun": rerun, "calibration": calibration,
        "decode_bandwidth_bound": bound, "weight_bytes_per_decode_step": weight_bytes,
        "attention_op_profile_us": op_profile,
    });
    let text = serde_json::to_string_pretty(&out)?;
    println!("{text}");
    if let Some(p) = &a.json {
        crate::profile::io::write_atomic(p, text.as_bytes(), a.overwrite)?;
    }
    if let Some(p) = &a.plot {
        let title = format!("decode speed, {} on {}", engine.info.name, engine.info.device);
        plot_decode(out["contexts"].as_array().map(Vec::as_slice).unwrap_or_default(), &title, p)?;
    }
    Ok(())
}
