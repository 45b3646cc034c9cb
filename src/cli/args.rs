//! Arguments shared by every subcommand that loads a model.

use crate::engine::device::DeviceChoice;
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
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Activation and KV dtype on the GPU: f32, f16 or bf16 (the CPU always uses f32).
    #[arg(long)]
    pub dtype: Option<String>,
    /// GGUF weights: `dense` dequantizes once at load (exact weights), `quantized` keeps
    /// candle's quantized matmul (less memory, 8-bit activations), `auto` picks dense
    /// when the dense model fits in 4 GiB.
    #[arg(long, default_value = "auto")]
    pub weights: String,
}

impl ModelArgs {
    pub fn load_options(&self) -> anyhow::Result<LoadOptions> {
        let device: DeviceChoice = self.device.parse()?;
        let dtype = match self.dtype.as_deref() {
            None => None,
            Some("f32") => Some(candle_core::DType::F32),
            Some("f16") => Some(candle_core::DType::F16),
            Some("bf16") => Some(candle_core::DType::BF16),
            Some(other) => anyhow::bail!("unknown dtype `{other}`: use f32, f16 or bf16"),
        };
        Ok(LoadOptions { model: self.model.clone(), device, dtype, weights: self.weights.parse()? })
    }

    /// Loads the model, logging progress to stderr.
    pub fn load(&self) -> anyhow::Result<Engine> {
        let opts = self.load_options()?;
        let start = std::time::Instant::now();
        let engine = Engine::load(&opts, &mut |m| eprintln!("{m}")).context("loading the model")?;
        eprintln!(
            "loaded {} ({}, {} layers) on {} in {:.1}s",
            engine.info.name,
            engine.info.architecture,
            engine.info.n_layers,
            engine.info.device,
            start.elapsed().as_secs_f64()
        );
        Ok(engine)
    }
}
