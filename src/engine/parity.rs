//! Logit-for-logit comparison of our forward pass with a reference saved by
//! `scripts/gen_family_fixtures.py` (Hugging Face transformers' own output).

use super::cache::KvCache;
use super::error::{EngineError, Result};
use super::model::{Logits, Model};
use super::weights;
use candle_core::{DType, Device, IndexOp, Tensor};
use serde::Serialize;
use std::path::Path;

/// Which copy of a fixture's weights to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Safetensors,
    Gguf,
}

impl Format {
    pub const ALL: [Format; 2] = [Format::Safetensors, Format::Gguf];
}

/// transformers' output for a fixed prompt.
pub struct Reference {
    pub prompt: Vec<u32>,
    /// The 32 tokens transformers chose greedily after the prompt.
    pub greedy: Vec<u32>,
    /// `[prompt + greedy, vocab]`: logits at every position.
    pub logits: Tensor,
}

impl Reference {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("reference.safetensors");
        let t = candle_core::safetensors::load(&path, &Device::Cpu)?;
        let get = |k: &str| {
            t.get(k).cloned().ok_or_else(|| EngineError::BadConfig(format!("{} has no `{k}`", path.display())))
        };
        let ids = |k: &str| -> Result<Vec<u32>> {
            Ok(get(k)?.to_dtype(DType::I64)?.to_vec1::<i64>()?.into_iter().map(|x| x as u32).collect())
        };
        Ok(Self { prompt: ids("prompt")?, greedy: ids("greedy")?, logits: get("logits")?.to_dtype(DType::F32)? })
    }
}

/// Loads a fixture folder's model in one format.
pub fn load_model(dir: &Path, format: Format, device: &Device, dtype: DType) -> Result<Model> {
    match format {
        Format::Safetensors => {
            let (config, tied) = weights::read_hf_config(dir)?;
            let w = weights::load_safetensors(dir, &config, tied, dtype, device)?;
            Model::new(config, w, dtype, device)
        }
        Format::Gguf => {
            let mut g = weights::open_gguf(&dir.join("model.gguf"))?;
            let w = weights::load_gguf(&mut g, device, Some(dtype))?;
            Model::new(g.config.clone(), w, dtype, device)
        }
    }
}

/// How closely our logits follow the reference.
#[derive(Debug, Clone, Serialize)]
pub struct ParityReport {
    /// The fixture folder's name.
    pub fixture: String,
    pub family: String,
    pub format: Format,
    pub dtype: String,
    /// Largest |ours - reference| over every position and vocabulary entry.
    pub max_abs_diff: f32,
    /// Position where it occurred.
    pub worst_position: usize,
    /// Our argmax equals transformers' greedy token at each of its steps.
    pub greedy_match: bool,
    /// Steps where it does not, with the reference's gap between its top two
    /// logits there (below the dtype's resolution a flip is expected).
    pub greedy_mismatches: Vec<(usize, f32)>,
    pub positions: usize,
}

/// Row-by-row outcome of [`compare`].
pub struct Comparison {
    /// Max |ours - reference| of each position's logits.
    pub diff: Vec<f32>,
    /// Greedy steps whose argmax differs, with the reference's top-2 gap.
    pub greedy_mismatches: Vec<(usize, f32)>,
}

fn argmax(row: &Tensor) -> Result<u32> {
    Ok(row.argmax(0)?.to_scalar::<u32>()?)
}

/// Runs the prompt in one forward, then the reference's greedy tokens one at
/// a time (teacher-forced, so every row stays comparable), and compares each
/// row of logits with the reference.
pub fn compare(model: &Model, reference: &Reference) -> Result<Comparison> {
    let mut cache: KvCache = model.new_cache()?;
    let prompt = model.forward(&mut cache, &reference.prompt, Logits::All)?;
    let mut rows = vec![prompt];
    for &tok in &reference.greedy {
        rows.push(model.forward(&mut cache, &[tok], Logits::Last)?);
    }
    // Compared on the host, where the reference lives.
    let ours = Tensor::cat(&rows, 0)?.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
    let want = &reference.logits;
    if ours.dims() != want.dims() {
        return Err(EngineError::BadConfig(format!("logits {:?} vs reference {:?}", ours.dims(), want.dims())));
    }
    let diff: Vec<f32> = (&ours - want)?.abs()?.max(1)?.to_vec1()?;
    let p = reference.prompt.len();
    let mut mismatches = Vec::new();
    for (i, &tok) in reference.greedy.iter().enumerate() {
        if argmax(&ours.i(p - 1 + i)?)? != tok {
            let mut row: Vec<f32> = want.i(p - 1 + i)?.to_vec1()?;
            row.sort_by(|a, b| b.total_cmp(a));
            mismatches.push((i, row[0] - row.get(1).copied().unwrap_or(f32::NEG_INFINITY)));
        }
    }
    Ok(Comparison { diff, greedy_mismatches: mismatches })
}

/// The whole check for one fixture folder and format.
pub fn check(dir: &Path, format: Format, device: &Device, dtype: DType) -> Result<ParityReport> {
    let reference = Reference::load(dir)?;
    let model = load_model(dir, format, device, dtype)?;
    let Comparison { diff, greedy_mismatches } = compare(&model, &reference)?;
    let (worst_position, max_abs_diff) =
        diff.iter().copied().enumerate().fold((0, 0f32), |a, (i, d)| if d > a.1 { (i, d) } else { a });
    Ok(ParityReport {
        fixture: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        family: model.config.arch.name().to_string(),
        format,
        dtype: format!("{dtype:?}").to_lowercase(),
        max_abs_diff,
        worst_position,
        greedy_match: greedy_mismatches.is_empty(),
        greedy_mismatches,
        positions: diff.len(),
    })
}
