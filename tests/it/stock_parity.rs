//! Our forward pass against candle-transformers' stock `quantized_llama` on
//! the default model's GGUF, at every prompt position.
//!
//! Both weight modes are checked against the stock model run the same way:
//! - quantized matmuls (stock as shipped): both sides quantize activations
//!   to 8 bits inside the same QMatMul kernels, fed one token at a time, so
//!   the logits agree to float rounding of the attention sums;
//! - dense weights (stock with CANDLE_DEQUANTIZE_ALL=1): our batched prompt
//!   pass against the stock model fed token by token. Sums run in another
//!   order (one matmul over the prompt vs one per token), so logits agree to
//!   float32 rounding accumulated over 30 layers: observed max |diff| is
//!   ~1e-4 on logits of magnitude ~20, and we allow 1e-2.
//!
//! candle's stock model reads CANDLE_DEQUANTIZE_ALL once per thread, so each
//! mode runs on a fresh thread, one after the other, in this single test.

use crate::common;

use candle_core::{Device, IndexOp, Tensor, D};
use candle_transformers::models::quantized_llama::ModelWeights;
use depthkv::engine::device::DeviceChoice;
use depthkv::engine::model::Logits;
use depthkv::engine::source::ModelSource;
use depthkv::engine::weights::WeightMode;
use depthkv::engine::{Engine, LoadOptions};

const PROMPT: &str = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n# The Eiffel tower is in Paris, and the Colosseum is in";

fn stock_logits(tokens: &[u32]) -> Vec<Tensor> {
    let path = common::default_model_path();
    let mut f = std::fs::File::open(&path).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
    let mut stock = ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
    tokens
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let input = Tensor::new(&[t], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
            stock.forward(&input, i).unwrap().squeeze(0).unwrap()
        })
        .collect()
}

fn engine(mode: WeightMode) -> Engine {
    let opts = LoadOptions { device: DeviceChoice::Cpu, weights: mode, ..Default::default() };
    Engine::load_source(ModelSource::Gguf(common::default_model_path()), &opts).unwrap()
}

/// Max |ours - stock| over positions; panics on the first argmax mismatch.
fn compare(ours: &[Tensor], stock: &[Tensor]) -> f32 {
    assert_eq!(ours.len(), stock.len());
    let mut max_diff = 0f32;
    for (i, (a, b)) in ours.iter().zip(stock).enumerate() {
        let am = a.argmax(D::Minus1).unwrap().to_scalar::<u32>().unwrap();
        let bm = b.argmax(D::Minus1).unwrap().to_scalar::<u32>().unwrap();
        assert_eq!(am, bm, "argmax differs at position {i}");
        let d = (a - b).unwrap().abs().unwrap().max(D::Minus1).unwrap().to_scalar::<f32>().unwrap();
        max_diff = max_diff.max(d);
    }
    max_diff
}

#[test]
fn logits_match_stock_quantized_llama_in_both_weight_modes() {
    let quantized = std::thread::spawn(|| {
        let e = engine(WeightMode::Quantized);
        let tokens = e.encode(PROMPT, false).unwrap();
        let mut cache = e.model.new_cache().unwrap();
        let ours: Vec<Tensor> = tokens
            .iter()
            .map(|&t| e.model.forward(&mut cache, &[t], Logits::Last).unwrap().squeeze(0).unwrap())
            .collect();
        compare(&ours, &stock_logits(&tokens))
    })
    .join()
    .unwrap();
    eprintln!("quantized: max |logit diff| {quantized}");
    assert!(quantized < 1e-3, "quantized mode differs from stock by {quantized}");

    std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1");
    let dense = std::thread::spawn(|| {
        let e = engine(WeightMode::Dequantized);
        let tokens = e.encode(PROMPT, false).unwrap();
        let mut cache = e.model.new_cache().unwrap();
        let all = e.model.forward(&mut cache, &tokens, Logits::All).unwrap();
        let ours: Vec<Tensor> = (0..tokens.len()).map(|i| all.i(i).unwrap()).collect();
        compare(&ours, &stock_logits(&tokens))
    })
    .join()
    .unwrap();
    eprintln!("dense: max |logit diff| {dense}");
    assert!(dense < 1e-2, "dense mode differs from stock by {dense}");
}
