//! The engine on the real default model: answers, logits against candle's
//! stock quantized_llama, and the pruned cache against masked attention.

use crate::common;

use candle_core::{DType, Device, IndexOp, Tensor, D};
use depthkv::engine::model::Logits;
use depthkv::engine::GenParams;
use depthkv::engine::PrefillOptions;

#[test]
fn answers_capital_of_france() {
    let engine = common::default_engine();
    let tokens = engine.encode("What is the capital of France?", true).unwrap();
    let pre = engine.prefill(&tokens, PrefillOptions::default()).unwrap();
    let params = GenParams { max_new_tokens: 16, ..Default::default() };
    let out = engine.generate(pre.cache, &pre.first_logits, &params, &mut |_| true).unwrap();
    let text = engine.decode(&out);
    assert!(text.contains("Paris"), "answer was {text:?}");
}

/// A cache that keeps every slot, gathered into new buffers, decodes with
/// bit-identical logits.
#[test]
fn keeping_every_token_is_bit_identical() {
    let engine = common::default_engine();
    let tokens = engine.encode("Write a haiku about the sea and the wind in autumn.", true).unwrap();
    let pre = engine.prefill(&tokens, PrefillOptions { chunk: 7, window: 8, accumulated: true }).unwrap();
    let n = tokens.len() as u32;
    let heads = engine.config().n_kv_heads;
    let keep: Vec<_> = (0..engine.config().n_layers).map(|_| Some(vec![(0..n).collect::<Vec<u32>>(); heads])).collect();
    let mut full = pre.cache.clone();
    let mut gathered = pre.cache.pruned(&keep, 4).unwrap();
    assert_eq!(gathered.bytes(), full.bytes());
    let mut tok = 1u32;
    for _ in 0..6 {
        let a = engine.model.forward(&mut full, &[tok], Logits::Last).unwrap();
        let b = engine.model.forward(&mut gathered, &[tok], Logits::Last).unwrap();
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a, b);
        tok = a.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1)).unwrap().0 as u32;
    }
}

/// Chunked prefill gives the same cache and logits as one chunk, up to float rounding.
#[test]
fn chunked_prefill_matches_single_chunk() {
    let engine = common::default_engine();
    let tokens =
        engine.encode("The quick brown fox jumps over the lazy dog, again and again, until dusk.", false).unwrap();
    let a = engine.prefill(&tokens, PrefillOptions { chunk: 4096, window: 8, accumulated: true }).unwrap();
    let b = engine.prefill(&tokens, PrefillOptions { chunk: 5, window: 8, accumulated: true }).unwrap();
    let d = (&a.first_logits - &b.first_logits).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(d < 1e-3, "first logits differ by {d}");
    for (x, y) in a.stats.window.iter().flatten().flatten().zip(b.stats.window.iter().flatten().flatten()) {
        assert!((x - y).abs() < 1e-4);
    }
    // Each window query's attention sums to one per query head.
    let g = (engine.config().n_heads / engine.config().n_kv_heads) as f32;
    let s: f32 = a.stats.window[3][1].iter().sum();
    assert!((s - 8.0 * g).abs() < 1e-2, "window attention mass {s}");
}

/// Skipping H2O's sums changes nothing else a prefill produces, and a prefill
/// without them refuses to be pruned by H2O instead of keeping nothing.
#[test]
fn prefill_without_h2o_sums_is_otherwise_identical() {
    use depthkv::prune::{apply, Scorer, SelectConfig};
    let engine = common::default_engine();
    let tokens = engine.encode("Name the planets of the solar system in order, then the largest moon.", true).unwrap();
    let with = engine.prefill(&tokens, PrefillOptions { chunk: 9, window: 8, accumulated: true }).unwrap();
    let without = engine.prefill(&tokens, PrefillOptions { chunk: 9, window: 8, accumulated: false }).unwrap();
    assert_eq!(with.stats.accumulated.len(), engine.config().n_layers);
    assert!(without.stats.accumulated.is_empty());
    assert_eq!(with.stats.window, without.stats.window);
    assert_eq!(with.stats.key_norms, without.stats.key_norms);
    let logits = |p: &depthkv::engine::Prefilled| p.first_logits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(logits(&with), logits(&without));
    let budgets = vec![tokens.len() / 2; engine.config().n_layers];
    let snap = SelectConfig::default();
    assert!(apply::prune(&without, &budgets, &snap, 0).is_ok());
    let h2o = SelectConfig { scorer: Scorer::H2o, ..snap };
    let err = apply::prune(&without, &budgets, &h2o, 0).unwrap_err().to_string();
    assert!(err.contains("H2O"), "{err}");
    let (_, occ) = apply::prune(&with, &budgets, &h2o, 0).unwrap();
    assert!(occ.kept.iter().flatten().all(|h| h.len() == tokens.len() / 2));
    assert!(h2o.prefill_options().accumulated && !snap.prefill_options().accumulated);
}

/// Plain reference: one decode step where each layer attends over the FULL
/// cache with an explicit mask hiding the pruned slots. Pruning by gathering
/// must give the same logits.
#[test]
fn pruned_cache_equals_masked_attention() {
    let engine = common::default_engine();
    let cfg = engine.config().clone();
    let tokens = engine.encode("List three colours of the rainbow, then name a fruit that is yellow.", true).unwrap();
    let pre = engine.prefill(&tokens, PrefillOptions::default()).unwrap();
    let l = tokens.len() as u32;
    // A different, arbitrary subset per layer and head (always keeping the last token).
    let keep: Vec<Vec<Vec<u32>>> = (0..cfg.n_layers)
        .map(|li| {
            (0..cfg.n_kv_heads)
                .map(|h| {
                    let k = (l / 2) as usize;
                    let mut v: Vec<u32> =
                        (0..l - 1).filter(|p| (p * 7 + li as u32 * 3 + h as u32) % 5 < 3).take(k - 1).collect();
                    v.push(l - 1);
                    v
                })
                .collect()
        })
        .collect();
    let k_counts: Vec<usize> = keep.iter().map(|k| k[0].len()).collect();
    // Equal counts within a layer here (no padding); the next test covers uneven heads.
    let keep: Vec<Vec<Vec<u32>>> = keep
        .into_iter()
        .map(|layer| {
            let m = layer.iter().map(|h| h.len()).min().unwrap();
            layer
                .into_iter()
                .map(|mut h| {
                    let last = *h.last().unwrap();
                    h.truncate(m - 1);
                    h.push(last);
                    h
                })
                .collect()
        })
        .collect();
    assert!(k_counts.iter().all(|&k| k > 2));
    let pruned = pre.cache.pruned(&keep.iter().cloned().map(Some).collect::<Vec<_>>(), 2).unwrap();
    assert!(pruned.layers()[0].bias().unwrap().is_none(), "even heads need no padding");
    let d = step_difference(engine, &pre.cache, pruned, &keep, tokens.len());
    assert!(d < 1e-3, "pruned vs masked logits differ by {d}");
}

/// Max |logit difference| of one decode step from `pruned` against the
/// masked-attention reference over the full cache.
fn step_difference(
    engine: &depthkv::engine::Engine,
    full: &depthkv::engine::cache::KvCache,
    mut pruned: depthkv::engine::cache::KvCache,
    keep: &[Vec<Vec<u32>>],
    prompt_len: usize,
) -> f32 {
    let next = 42u32;
    let ours = engine.model.forward(&mut pruned, &[next], Logits::Last).unwrap().flatten_all().unwrap();
    let reference = reference_masked_step(engine, full, keep, next, prompt_len);
    (ours - reference).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

/// Layer × head budgets: heads of a layer keep different numbers of slots
/// (the shorter ones padded and masked in the cache); the logits must still
/// equal attention over the full cache with each head's own mask.
#[test]
fn uneven_head_budgets_equal_masked_attention() {
    let engine = common::default_engine();
    let cfg = engine.config().clone();
    let tokens =
        engine.encode("Name two planets with rings and one without, then say which is largest.", true).unwrap();
    let pre = engine.prefill(&tokens, PrefillOptions::default()).unwrap();
    let l = tokens.len() as u32;
    let keep: Vec<Vec<Vec<u32>>> = (0..cfg.n_layers)
        .map(|li| {
            (0..cfg.n_kv_heads)
                .map(|h| {
                    // Head h keeps about a (h + 1)-th share: counts differ within each layer.
                    let modulus = (h as u32 + 2) * 2;
                    let mut v: Vec<u32> = (0..l - 1).filter(|p| (p * 3 + li as u32).is_multiple_of(modulus)).collect();
                    v.push(l - 1);
                    v
                })
                .collect()
        })
        .collect();
    assert!(keep.iter().all(|layer| layer[0].len() > layer[cfg.n_kv_heads - 1].len()), "heads must differ");
    let pruned = pre.cache.pruned(&keep.iter().cloned().map(Some).collect::<Vec<_>>(), 2).unwrap();
    assert!(pruned.layers()[0].bias().unwrap().is_some(), "uneven heads are padded and masked");
    let d = step_difference(engine, &pre.cache, pruned, &keep, tokens.len());
    assert!(d < 1e-3, "uneven-head pruned vs masked logits differ by {d}");
}

fn reference_masked_step(
    engine: &depthkv::engine::Engine,
    full: &depthkv::engine::cache::KvCache,
    keep: &[Vec<Vec<u32>>],
    token: u32,
    pos: usize,
) -> Tensor {
    let cfg = engine.config();
    let w = engine.model.weights();
    let (hq, hkv, d) = (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim);
    let g = hq / hkv;
    let eps = cfg.rms_eps;
    // The query weights may carry 1/sqrt(d) already; apply whatever is left.
    let scale = engine.model.attention_scale();
    let rms = |x: &Tensor, wt: &Tensor| -> Tensor {
        let var = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        x.broadcast_div(&(var + eps).unwrap().sqrt().unwrap()).unwrap().broadcast_mul(wt).unwrap()
    };
    // Interleaved RoPE at the true position, written out pair by pair.
    let rope = |x: &Tensor| -> Tensor {
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let mut out = v.clone();
        for head in 0..v.len() / d {
            for i in 0..d / 2 {
                let theta = pos as f32 * cfg.rope_theta.powf(-2.0 * i as f32 / d as f32);
                let (a, b) = (v[head * d + 2 * i], v[head * d + 2 * i + 1]);
                out[head * d + 2 * i] = a * theta.cos() - b * theta.sin();
                out[head * d + 2 * i + 1] = a * theta.sin() + b * theta.cos();
            }
        }
        Tensor::from_vec(out, x.shape(), &Device::Cpu).unwrap()
    };
    let mut x = w.embed.i(token as usize).unwrap().unsqueeze(0).unwrap().unsqueeze(0).unwrap();
    for (li, lw) in w.layers.iter().enumerate() {
        let h = rms(&x, &lw.attn_norm);
        let q = rope(&lw.q.forward(&h).unwrap().reshape((hq, d)).unwrap());
        let k_new = rope(&lw.k.forward(&h).unwrap().reshape((hkv, d)).unwrap());
        let v_new = lw.v.forward(&h).unwrap().reshape((hkv, d)).unwrap();
        let (kc, vc) = full.layers()[li].kv().unwrap();
        let mut heads_out = Vec::new();
        for qh in 0..hq {
            let kvh = qh / g;
            let keys = Tensor::cat(&[kc.i((0, kvh)).unwrap(), k_new.i(kvh).unwrap().unsqueeze(0).unwrap()], 0).unwrap();
            let vals = Tensor::cat(&[vc.i((0, kvh)).unwrap(), v_new.i(kvh).unwrap().unsqueeze(0).unwrap()], 0).unwrap();
            let scores: Vec<f32> = (keys.matmul(&q.i(qh).unwrap().unsqueeze(1).unwrap()).unwrap() * scale)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let kept = &keep[li][kvh];
            let masked: Vec<f32> = scores
                .iter()
                .enumerate()
                .map(|(j, &s)| if j == pos || kept.contains(&(j as u32)) { s } else { f32::NEG_INFINITY })
                .collect();
            let m = masked.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = masked.iter().map(|s| (s - m).exp()).collect();
            let z: f32 = e.iter().sum();
            let p = Tensor::from_vec(e.iter().map(|x| x / z).collect::<Vec<_>>(), (1, pos + 1), &Device::Cpu).unwrap();
            heads_out.push(p.matmul(&vals).unwrap());
        }
        let attn = Tensor::cat(&heads_out, 1).unwrap().unsqueeze(0).unwrap();
        x = (x + lw.o.forward(&attn).unwrap()).unwrap();
        let h = rms(&x, &lw.ffn_norm);
        let act = candle_nn::ops::silu(&lw.gate.forward(&h).unwrap()).unwrap();
        x = (&x + lw.down.forward(&(act * lw.up.forward(&h).unwrap()).unwrap()).unwrap()).unwrap();
    }
    let x = rms(&x, &w.norm);
    w.lm_head.forward(&x).unwrap().flatten_all().unwrap().to_dtype(DType::F32).unwrap()
}
