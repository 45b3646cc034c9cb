//! Arguments shared by every subcommand that loads a model.

use super::values::DtypeArg;
use crate::engine::device::DeviceChoice;
use crate::engine::flash::AttentionKernel;
use crate::engine::weights::WeightMode;
use crate::engine::{Engine, LoadOptions};
use anyhow::Context;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A .gguf file, a Hugging Face folder (config.json + safetensors + tokenizer.json),
    /// or a hub id (`owner/name` for safetensors, `owner/name:file.gguf`). Default: the
    /// bundled default model, installed on first use.
    #[arg(long)]
    pub model: Option<String>,
    /// Where to run: auto (CUDA when built with it and present), cpu or cuda.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Activation and KV dtype on the GPU (the CPU always uses f32).
    #[arg(long, value_enum)]
    pub dtype: Option<DtypeArg>,
    /// GGUF weights: `dense` dequantizes once at load (exact weights), `quantized` keeps
    /// candle's quantized matmul (less memory, 8-bit activations), `auto` picks dense
    /// when the dense model fits in 4 GiB.
    #[arg(long, value_enum, default_value_t = WeightMode::Auto)]
    pub weights: WeightMode,
    /// Attention kernels on the GPU: `auto` runs ours (no score matrix, RoPE fused with
    /// the cache append) where a layer allows it, `materialized` uses candle's ops and
    /// always writes the scores out (the reference path).
    #[arg(long, value_enum, default_value_t = AttentionKernel::Auto)]
    pub attention: AttentionKernel,
}

impl ModelArgs {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            model: self.model.clone(),
            device: self.device,
            dtype: self.dtype.map(Into::into),
            weights: self.weights,
            attention: self.attention,
        }
    }

    /// Loads the model, logging progress to stderr.
    pub fn load(&self) -> anyhow::Result<Engine> {
        let opts = self.load_options();
        let start = std::time::Instant::now();
        let engine = Engine::load(&opts, &mut |m| eprintln!("{m}")).context("loading the model")?;
        eprintln!(
            "loaded {} ({}, {} layers) on {} in {:.1}s",
            crate::userio::sanitize(&engine.info.name),
            crate::userio::sanitize(&engine.info.architecture),
            engine.info.n_layers,
            engine.info.device,
            start.elapsed().as_secs_f64()
        );
        Ok(engine)
    }
}
