//! `depthkv parity DIR`: our logits against transformers' on a family fixture
//! (tests/fixtures/families/NAME, or a folder of them), as JSON lines.

use crate::engine::device::{self, DeviceChoice};
use crate::engine::parity::{self, Format};
use anyhow::{bail, Context};
use candle_core::DType;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct ParityArgs {
    /// A fixture folder (config.json, model.safetensors, model.gguf,
    /// reference.safetensors) or a folder of such folders.
    pub dir: PathBuf,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// f32 or bf16 (bf16 only on a GPU).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

fn fixtures(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if dir.join("reference.safetensors").exists() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut found: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("reference.safetensors").exists()).collect();
    found.sort();
    if found.is_empty() {
        bail!("{} holds no reference.safetensors (nor do its subfolders)", dir.display());
    }
    Ok(found)
}

pub fn run(a: ParityArgs) -> anyhow::Result<()> {
    // Flags first, before anything is loaded.
    let dtype = match a.dtype.as_str() {
        "f32" => DType::F32,
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        other => bail!("unknown --dtype `{other}`: use f32, bf16 or f16"),
    };
    let choice: DeviceChoice = a.device.parse()?;
    let dirs = fixtures(&a.dir)?;
    let dev = device::open(choice)?;
    let mut failed = false;
    for d in dirs {
        for format in Format::ALL {
            match parity::check(&d, format, &dev, dtype) {
                Ok(r) => println!("{}", serde_json::to_string(&r)?),
                Err(e) => {
                    failed = true;
                    println!(
                        "{}",
                        serde_json::json!({"fixture": d.display().to_string(), "format": format, "error": e.to_string()})
                    );
                }
            }
        }
    }
    if failed {
        bail!("some fixtures could not be checked");
    }
    Ok(())
}
