//! Decode-phase eviction on the real default model: every layer stays within
//! its budget while generating, sinks survive, and without pressure nothing changes.

use crate::common;

use depthkv::engine::evict::Evictor;
use depthkv::engine::GenParams;
use depthkv::engine::PrefillOptions;
use depthkv::prune::{apply, SelectConfig, Strategy};

#[test]
fn layers_stay_within_budget_while_generating() {
    let engine = common::default_engine();
    let select = SelectConfig { window: 8, ..Default::default() };
    let prompt = "Write a short story about a lighthouse keeper who finds a message in a bottle, \
                  with three characters and a surprising ending that takes place during a winter storm.";
    let tokens = engine.encode(prompt, true).unwrap();
    let l = tokens.len();
    let pre = engine.prefill(&tokens, PrefillOptions { window: 8, ..Default::default() }).unwrap();
    let n = engine.config().n_layers;
    let budgets = apply::budgets_for(&Strategy::Uniform, 0.5, l, n, &select).unwrap();
    let (cache, _) = apply::prune(&pre, &budgets, &select, 64).unwrap();
    let params = GenParams { max_new_tokens: 40, ..Default::default() };
    let batch = 4;
    let mut dec =
        engine.evicting_decoder(cache, &pre.first_logits, &params, Evictor::new(budgets.clone(), 4, 8, batch));
    let mut steps = 0;
    while dec.step(engine).unwrap().is_some() {
        steps += 1;
        for (len, b) in dec.cache.lens().iter().zip(&budgets) {
            assert!(*len < b + batch, "a layer holds {len} slots with budget {b}");
        }
    }
    assert!(steps > 20, "generation stopped after {steps} tokens");
    let evicted = dec.evictor.as_ref().unwrap().evicted;
    assert!(evicted > 0, "nothing was evicted");
    for layer in dec.cache.layers() {
        for h in 0..layer.kv_heads() {
            assert_eq!(&layer.positions(h)[..4], &[0, 1, 2, 3], "attention sinks were evicted");
        }
    }
    assert!(!engine.decode(&dec.produced).trim().is_empty());
}

#[test]
fn without_pressure_eviction_changes_nothing() {
    let engine = common::default_engine();
    let tokens = engine.encode("Name three planets of the solar system.", true).unwrap();
    let pre = engine.prefill(&tokens, PrefillOptions::default()).unwrap();
    let params = GenParams { max_new_tokens: 12, ..Default::default() };
    let full = vec![tokens.len() + 100; engine.config().n_layers];
    let plain = engine.generate(pre.cache.clone(), &pre.first_logits, &params, &mut |_| true).unwrap();
    let mut dec = engine.evicting_decoder(pre.cache.clone(), &pre.first_logits, &params, Evictor::new(full, 4, 32, 16));
    while dec.step(engine).unwrap().is_some() {}
    assert_eq!(dec.produced, plain);
    assert_eq!(dec.evictor.unwrap().evicted, 0);
}
