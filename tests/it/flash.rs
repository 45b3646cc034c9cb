//! Our flash attention kernels (CUDA) against the materialized path.
//!
//! The reference is the materialized path in f32 on the same GPU. Our
//! kernels compute in bf16 with f32 accumulation, so each is held to being
//! no less accurate than the materialized path in bf16: a wrong mask, tile,
//! fragment or split merge is orders of magnitude beyond that. Run on the
//! GPU machine with `cargo test --features cuda flash` (CI has no GPU).
#![cfg(feature = "cuda")]

use crate::common::default_model_path;
use candle_core::{DType, Device, Tensor};
use depthkv::engine::cache::KvCache;
use depthkv::engine::device::DeviceChoice;
use depthkv::engine::flash::AttentionKernel;
use depthkv::engine::model::Logits;
use depthkv::engine::source::ModelSource;
use depthkv::engine::{Engine, LoadOptions, PrefillOptions};
use std::collections::HashMap;
use std::path::Path;

/// Real text for the default model: 16,000 characters of the repository's
/// own documentation, frozen (docs/ as of 2026-12-01) so edits to the docs
/// do not change what the test measures.
const TEXT: &str = include_str!("../fixtures/text/flash-prompt.txt");

/// The three engines compared: flash in bf16, materialized in bf16 and f32.
struct Trio {
    flash: Engine,
    bf16: Engine,
    f32: Engine,
}

fn load(source: &ModelSource, dtype: DType, attention: AttentionKernel) -> Engine {
    let opts = LoadOptions { device: DeviceChoice::Cuda, dtype: Some(dtype), attention, ..Default::default() };
    Engine::load_source(source.clone(), &opts).expect("load on CUDA")
}

impl Trio {
    fn new(source: ModelSource) -> Self {
        Self {
            flash: load(&source, DType::BF16, AttentionKernel::Auto),
            bf16: load(&source, DType::BF16, AttentionKernel::Materialized),
            f32: load(&source, DType::F32, AttentionKernel::Materialized),
        }
    }
}

fn host(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Flash's mean error against the f32 reference is of the materialized bf16
/// path's order (within 1.5×). Through a whole model both are dominated by
/// bf16 rounding, and single logits of it vary 2× between paths; the
/// kernels themselves are held tighter by `kernels_match_f32_attention`.
fn assert_as_accurate(what: &str, flash: &[f32], bf16: &[f32], reference: &[f32]) {
    let (ef, eb) = (mean_diff(flash, reference), mean_diff(bf16, reference));
    let (mf, mb) = (max_diff(flash, reference), max_diff(bf16, reference));
    eprintln!("{what}: mean |Δ| flash {ef:.5}, materialized bf16 {eb:.5} (max {mf:.4}, {mb:.4})");
    assert!(ef.is_finite() && ef <= 1.5 * eb + 1e-3, "{what}: flash mean |Δ| {ef} against materialized bf16 {eb}");
}

fn mean_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

/// Keeps every third slot and the last 64 of each layer, the same count in
/// every head (no padding, so the flash decode kernel serves it).
fn thinned(cache: &KvCache) -> KvCache {
    let keep: Vec<Option<Vec<Vec<u32>>>> = cache
        .layers()
        .iter()
        .map(|l| {
            let t = l.len() as u32;
            let slots: Vec<u32> = (0..t).filter(|&s| s % 3 == 0 || s + 64 >= t).collect();
            Some(vec![slots; l.kv_heads()])
        })
        .collect();
    cache.pruned(&keep, 32).unwrap()
}

/// Prefill logits and SnapKV window statistics; then decode steps (one token
/// per forward: the decode kernel) on the full and on a thinned cache, and a
/// several-token forward on the thinned cache (the prefill kernel over a
/// pruned cache with causal new tokens).
fn check(trio: &Trio, tokens: &[u32]) {
    let opts = PrefillOptions { chunk: 512, window: 32, accumulated: false };
    let pre: Vec<_> =
        [&trio.flash, &trio.bf16, &trio.f32].iter().map(|e| e.model.prefill(tokens, opts).unwrap()).collect();
    // The last position's logits of five prompt lengths: one row alone is
    // a single sample of bf16 noise, and varies 3x with the text.
    let mut logits: Vec<Vec<f32>> = pre.iter().map(|p| host(&p.2)).collect();
    for cut in [4999, 4500, 3001, 2048] {
        let tokens = &tokens[..cut.min(tokens.len())];
        for (e, l) in [&trio.flash, &trio.bf16, &trio.f32].iter().zip(logits.iter_mut()) {
            l.extend(host(&e.model.prefill(tokens, opts).unwrap().2));
        }
    }
    assert_as_accurate("prefill logits, 5 prompts", &logits[0], &logits[1], &logits[2]);
    let window: Vec<Vec<f32>> = pre.iter().map(|p| p.1.window.iter().flatten().flatten().copied().collect()).collect();
    assert!(window[0].iter().any(|&x| x > 0.0), "window statistics were recorded");
    assert_as_accurate("window statistics", &window[0], &window[1], &window[2]);

    let next: Vec<u32> = tokens[..40].to_vec();
    for (label, thin) in [("full cache", false), ("thinned cache", true)] {
        let mut caches: Vec<KvCache> = pre.iter().map(|p| if thin { thinned(&p.0) } else { p.0.clone() }).collect();
        // Eight steps judged together: single steps of bf16 noise vary by 2x.
        let mut steps: [Vec<f32>; 3] = Default::default();
        for &tok in &next[..8] {
            for (i, (e, c)) in [&trio.flash, &trio.bf16, &trio.f32].iter().zip(caches.iter_mut()).enumerate() {
                steps[i].extend(host(&e.model.forward(c, &[tok], Logits::Last).unwrap()));
            }
        }
        assert_as_accurate(&format!("8 decode steps, {label}"), &steps[0], &steps[1], &steps[2]);
        let chunk: Vec<Vec<f32>> = [&trio.flash, &trio.bf16, &trio.f32]
            .iter()
            .zip(caches.iter_mut())
            .map(|(e, c)| host(&e.model.forward(c, &next[8..], Logits::All).unwrap()))
            .collect();
        assert_as_accurate(&format!("32-token forward, {label}"), &chunk[0], &chunk[1], &chunk[2]);
    }
}

#[test]
fn flash_matches_materialized_on_the_default_model() {
    // SmolLM2: head size 64, three query heads per KV head.
    let trio = Trio::new(ModelSource::Gguf(default_model_path()));
    // About 6,000 tokens of it (the whole would pass the model's 8,192-token context).
    let mut tokens = trio.flash.encode(TEXT, false).unwrap();
    assert!(tokens.len() > 5001, "enough text for two long chunks");
    tokens.truncate(5001); // more than one flash chunk, not a multiple of any tile
    check(&trio, &tokens);
}

/// A random-weight Llama with Llama-3.1-8B's attention shape (head size 128,
/// four query heads per KV head), small elsewhere, written as safetensors.
fn write_llama_128(dir: &Path) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families/llama3");
    std::fs::copy(fixture.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let (hidden, heads, kv_heads, d, ff, layers, vocab) = (512, 4, 1, 128, 1024, 2, 506);
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": hidden, "intermediate_size": ff, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "head_dim": d, "num_hidden_layers": layers,
        "max_position_embeddings": 16384, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "tie_word_embeddings": false, "vocab_size": vocab, "bos_token_id": 0, "eos_token_id": 0,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let dev = Device::Cpu;
    let randn = |shape: &[usize], std: f64| Tensor::randn(0f32, std as f32, shape, &dev).unwrap();
    let ones = |n: usize| Tensor::ones(n, DType::F32, &dev).unwrap();
    let mut w: HashMap<String, Tensor> = HashMap::new();
    w.insert("model.embed_tokens.weight".into(), randn(&[vocab, hidden], 1.0));
    w.insert("lm_head.weight".into(), randn(&[vocab, hidden], 0.05));
    w.insert("model.norm.weight".into(), ones(hidden));
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        // Large q/k weights make attention peaked, so a misplaced slot shows.
        w.insert(format!("{p}.self_attn.q_proj.weight"), randn(&[heads * d, hidden], 0.08));
        w.insert(format!("{p}.self_attn.k_proj.weight"), randn(&[kv_heads * d, hidden], 0.08));
        w.insert(format!("{p}.self_attn.v_proj.weight"), randn(&[kv_heads * d, hidden], 0.05));
        w.insert(format!("{p}.self_attn.o_proj.weight"), randn(&[hidden, heads * d], 0.05));
        w.insert(format!("{p}.mlp.gate_proj.weight"), randn(&[ff, hidden], 0.05));
        w.insert(format!("{p}.mlp.up_proj.weight"), randn(&[ff, hidden], 0.05));
        w.insert(format!("{p}.mlp.down_proj.weight"), randn(&[hidden, ff], 0.05));
        w.insert(format!("{p}.input_layernorm.weight"), ones(hidden));
        w.insert(format!("{p}.post_attention_layernorm.weight"), ones(hidden));
    }
    candle_core::safetensors::save(&w, dir.join("model.safetensors")).unwrap();
}

#[test]
fn flash_matches_materialized_at_the_8b_head_shape() {
    let dir = std::env::temp_dir().join(format!("depthkv-flash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_llama_128(&dir);
    let trio = Trio::new(ModelSource::Safetensors(dir.clone()));
    // Random ids: this model has no language to keep.
    let mut state = 0x9e37_79b9_u64;
    let tokens: Vec<u32> = (0..6000)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % 500) as u32 + 3
        })
        .collect();
    check(&trio, &tokens);
    std::fs::remove_dir_all(&dir).ok();
}

/// The fused residual-add + norm and activation-times-up kernels against
/// the same computation in f32 from the same (rounded) inputs, in every
/// dtype they serve: within one rounding of the output (candle's separate
/// bf16 ops round twice, so they are not the reference).
#[test]
fn fused_ops_match_f32() {
    use depthkv::engine::config::Activation;
    use depthkv::engine::fused;
    let dev = Device::new_cuda(0).unwrap();
    let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        // Relative size of one rounding of the output, doubled.
        let rel = match dtype {
            DType::F32 => 1e-5,
            DType::F16 => 2.0 * 2f32.powi(-11),
            _ => 2.0 * 2f32.powi(-8),
        };
        let close = |what: &str, got: &Tensor, want: &Tensor| {
            for (a, b) in host(got).iter().zip(host(want)) {
                assert!((a - b).abs() <= rel * b.abs() + 1e-6, "{dtype:?} {what}: {a} against {b}");
            }
        };
        let x = Tensor::randn(0f32, 1.0, (1, 37, 576), &dev).unwrap().to_dtype(dtype).unwrap();
        let r = Tensor::randn(0f32, 1.0, (1, 37, 576), &dev).unwrap().to_dtype(dtype).unwrap();
        let w = Tensor::randn(1f32, 0.2, 576, &dev).unwrap().to_dtype(dtype).unwrap();
        let (sum, norm) = fused::add_rms_norm(&x, &r, &w, 1e-5).unwrap();
        // The sum is rounded to the dtype (as candle's add rounds it), then normalized.
        let want_sum = (&x + &r).unwrap();
        assert_eq!(max_diff(&host(&sum), &host(&want_sum)), 0.0, "{dtype:?}: the sum is rounded as candle rounds it");
        close("rms norm", &norm, &candle_nn::ops::rms_norm(&f(&want_sum), &f(&w), 1e-5).unwrap());
        let gu = Tensor::randn(0f32, 2.0, (1, 37, 2 * 1536), &dev).unwrap().to_dtype(dtype).unwrap();
        for act in [Activation::Silu, Activation::GeluTanh, Activation::Gelu] {
            let got = fused::act_mul(&gu, act).unwrap();
            let (g, u) = (f(&gu.narrow(2, 0, 1536).unwrap()), f(&gu.narrow(2, 1536, 1536).unwrap()));
            close(&format!("{act:?}"), &got, &(fused::act_of(&g, act).unwrap() * u).unwrap());
        }
    }
}

/// The fused split + RoPE + append against candle's ops (narrow, rope,
/// slice_set) on the same inputs: q, and the whole cache buffers, so a slot
/// written off by one or a head swapped shows, as does a write outside the
/// new slots. Within one rounding of the dtype (the kernel uses candle's
/// RoPE expression; compilers may still contract it differently).
#[test]
fn rope_append_matches_candle_ops() {
    use depthkv::engine::qkv_rope::{self, Heads};
    let dev = Device::new_cuda(0).unwrap();
    // (query heads, KV heads, head size, new tokens, slots already live)
    let cases = [(32, 8, 128, 1, 8191), (32, 8, 128, 37, 100), (9, 3, 64, 1, 0), (9, 3, 64, 300, 5), (4, 4, 256, 3, 9)];
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        let rel = match dtype {
            DType::F32 => 1e-6,
            DType::F16 => 2f32.powi(-10),
            _ => 2f32.powi(-7),
        };
        for &(hq, hkv, d, n, live) in &cases {
            for interleaved in [false, true] {
                let what = format!("{dtype:?} {hq}/{hkv}x{d}, {n} new after {live}, interleaved {interleaved}");
                let rnd = |shape: &[usize]| Tensor::randn(0f32, 1.0, shape, &dev).unwrap().to_dtype(dtype).unwrap();
                let qkv = rnd(&[1, n, (hq + 2 * hkv) * d]);
                let angles = Tensor::randn(0f32, 3.0, (n, d / 2), &dev).unwrap();
                let (cos, sin) =
                    (angles.cos().unwrap().to_dtype(dtype).unwrap(), angles.sin().unwrap().to_dtype(dtype).unwrap());
                let cap = live + n + 7;
                let (kb, vb) = (rnd(&[1, hkv, cap, d]), rnd(&[1, hkv, cap, d]));
                let (want_k, want_v) = (kb.copy().unwrap(), vb.copy().unwrap());
                let heads = Heads { query: hq, kv: hkv, dim: d };
                let q = qkv_rope::rope_append(&qkv, &cos, &sin, heads, interleaved, &kb, &vb, live).unwrap();
                let split = |from: usize, h: usize| {
                    let t = qkv.narrow(2, from * d, h * d).unwrap().reshape((1, n, h, d)).unwrap();
                    t.transpose(1, 2).unwrap().contiguous().unwrap()
                };
                let rope = |t: &Tensor| match interleaved {
                    true => candle_nn::rotary_emb::rope_i(t, &cos, &sin).unwrap(),
                    false => candle_nn::rotary_emb::rope(t, &cos, &sin).unwrap(),
                };
                let want_q = rope(&split(0, hq));
                want_k.slice_set(&rope(&split(hq, hkv)), 2, live).unwrap();
                want_v.slice_set(&split(hq + hkv, hkv), 2, live).unwrap();
                assert_eq!(q.dims(), want_q.dims(), "{what}");
                for (name, got, want) in [("q", &q, &want_q), ("k cache", &kb, &want_k)] {
                    for (i, (a, b)) in host(got).iter().zip(host(want)).enumerate() {
                        assert!((a - b).abs() <= rel * b.abs() + 1e-6, "{what}: {name}[{i}] {a} against {b}");
                    }
                }
                assert_eq!(max_diff(&host(&vb), &host(&want_v)), 0.0, "{what}: v is copied exactly");
            }
        }
    }
}

/// Softmax(q·kᵀ·scale)·v in f32 from the kernels' own (rounded) inputs, with
/// new token `j` of `n_new` seeing slots `..= t - n_new + j`.
fn reference_attention(q: &Tensor, k: &Tensor, v: &Tensor, n_new: usize, scale: f64) -> Tensor {
    let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let (rows, t) = (q.dim(2).unwrap(), k.dim(2).unwrap());
    let mask: Vec<f32> = (0..rows)
        .flat_map(|r| (0..t).map(move |c| if c + n_new <= t + r % n_new { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    let mask = Tensor::from_vec(mask, (1, 1, rows, t), q.device()).unwrap();
    let att = (f(q).matmul(&f(k).t().unwrap()).unwrap() * scale).unwrap().broadcast_add(&mask).unwrap();
    candle_nn::ops::softmax_last_dim(&att).unwrap().matmul(&f(v)).unwrap()
}

/// Both kernels against f32 attention on the same bf16 inputs, over head
/// sizes, group sizes, cache lengths and chunk sizes, on a cache read in
/// place from a larger buffer. Queries and the new keys share a direction,
/// so new slots dominate their rows and a mask one slot off changes the
/// output; decode cases hide one dominant slot mid-cache, so a split merged
/// wrongly shows.
#[test]
fn kernels_match_f32_attention() {
    use depthkv::engine::flash;
    let dev = Device::new_cuda(0).unwrap();
    let bf = |t: Tensor| t.to_dtype(DType::BF16).unwrap();
    // (head size, query rows per KV head, slots, new tokens)
    let cases = [
        (64, 3, 300, 300),
        (64, 3, 5001, 1001),
        (128, 4, 4097, 200),
        (128, 1, 77, 77),
        (128, 7, 513, 129),
        (128, 8, 130, 2),
        (64, 3, 1, 1),
        (64, 3, 5000, 1),
        (128, 4, 33_000, 1),
        (128, 7, 777, 1),
        (256, 1, 3000, 1),
        (256, 8, 300, 1),
    ];
    for (d, g, t, n) in cases {
        let (heads, cap) = (2, t + 40);
        let scale = 3.0 / (d as f64).sqrt();
        let u = Tensor::randn(0f32, 1.0, (1, heads, 1, d), &dev).unwrap();
        let q = (Tensor::randn(0f32, 0.5, (1, heads, g * n, d), &dev).unwrap().broadcast_add(&(&u * 0.5).unwrap()))
            .unwrap();
        let mut k = Tensor::randn(0f32, 1.0, (1, heads, cap, d), &dev).unwrap();
        if n > 1 {
            let new = (k.narrow(2, t - n, n).unwrap() * 0.5).unwrap().broadcast_add(&(&u * 0.5).unwrap()).unwrap();
            k = Tensor::cat(&[&k.narrow(2, 0, t - n).unwrap(), &new, &k.narrow(2, t, cap - t).unwrap()], 2).unwrap();
        } else if t > 1 {
            let at = t / 2;
            let needle = (&u * 0.3).unwrap();
            k = Tensor::cat(&[&k.narrow(2, 0, at).unwrap(), &needle, &k.narrow(2, at + 1, cap - at - 1).unwrap()], 2)
                .unwrap();
        }
        let v = Tensor::randn(0f32, 1.0, (1, heads, cap, d), &dev).unwrap();
        let (q, k, v) = (bf(q), bf(k).narrow(2, 0, t).unwrap(), bf(v).narrow(2, 0, t).unwrap());
        assert!(flash::readable(&k) && flash::readable(&v));
        let got = match n {
            1 => flash::decode(&q, &k, &v, scale as f32).unwrap(),
            _ => flash::prefill(&q, &k, &v, n, true, scale as f32).unwrap(),
        };
        let want = host(&reference_attention(&q, &k, &v, n, scale));
        let err = max_diff(&host(&got), &want);
        eprintln!("d {d}, group {g}, {t} slots, {n} new: max |Δ| {err:.5}");
        assert!(err <= 0.02, "d {d}, group {g}, {t} slots, {n} new: max |Δ| {err}");
    }
}
