//! Every supported model family against Hugging Face transformers itself.
//!
//! tests/fixtures/families holds, per family, a tiny random-weight checkpoint
//! made with transformers 5 (safetensors and the same weights as GGUF) and
//! transformers' logits at every position of a 96-token prompt plus its 32
//! greedy tokens (scripts/gen_family_fixtures.py). The prompt is longer than
//! the sliding windows (16) and than the scaled RoPE's original context (32),
//! so windows, soft-caps and RoPE scaling all change the numbers.

use candle_core::{DType, Device, IndexOp, Tensor};
use depthkv::engine::model::{Logits, Model};
use depthkv::engine::parity::{self, Format, Reference};
use depthkv::engine::{Engine, PrefillOptions};
use std::path::PathBuf;

const FAMILIES: [&str; 8] = ["llama3", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3"];

/// Max |logit difference| allowed, f32 on both sides. The reference ran on a
/// GPU (TF32 off), we run on the CPU: only summation order differs, about
/// 1e-6 relative per operation on logits of magnitude <= 6; measured maxima
/// are 1e-5 to 1e-4 (docs/models.md). 1e-3 leaves room for other BLAS
/// libraries while any real mistake (a wrong RoPE frequency, a missing
/// norm offset, a window off by one) moves logits by 1e-2 or far more.
const TOLERANCE: f32 = 1e-3;

pub fn dir(family: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families").join(family)
}

pub fn model(family: &str, format: Format) -> Model {
    parity::load_model(&dir(family), format, &Device::Cpu, DType::F32)
        .unwrap_or_else(|e| panic!("{family} {format:?}: {e}"))
}

#[test]
fn logits_and_greedy_tokens_match_transformers() {
    let mut failures = Vec::new();
    for family in FAMILIES {
        for format in Format::ALL {
            let r = parity::check(&dir(family), format, &Device::Cpu, DType::F32)
                .unwrap_or_else(|e| panic!("{family} {format:?}: {e}"));
            eprintln!(
                "{family:8} {format:?}: max |diff| {:.2e} at position {}, greedy {}",
                r.max_abs_diff, r.worst_position, r.greedy_match
            );
            assert_eq!(r.positions, 128);
            if r.max_abs_diff > TOLERANCE || !r.greedy_match {
                failures.push(format!("{family} {format:?}: {r:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Prefill in chunks smaller than the window crosses every mask boundary;
/// its last logits must still be the reference's.
#[test]
fn chunked_prefill_matches_the_reference() {
    for family in ["mistral", "gemma2", "gemma3", "phi3"] {
        let m = model(family, Format::Safetensors);
        let r = Reference::load(&dir(family)).unwrap();
        let (_, _, last) = m.prefill(&r.prompt, opts(7, 8)).unwrap();
        let want = r.logits.i(r.prompt.len() - 1).unwrap();
        let d = max_diff(&last.flatten_all().unwrap(), &want);
        assert!(d < TOLERANCE, "{family}: chunked prefill differs by {d}");
    }
}

pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

/// An arbitrary subset per layer and head, always keeping the last slot;
/// it includes positions far outside the sliding windows.
fn keep_sets(m: &Model, l: u32) -> Vec<Vec<Vec<u32>>> {
    let c = &m.config;
    (0..c.n_layers)
        .map(|li| {
            (0..c.n_kv_heads)
                .map(|h| {
                    let mut v: Vec<u32> =
                        (0..l - 1).filter(|p| (p * 7 + li as u32 * 3 + h as u32) % 5 < 3).take(40).collect();
                    v.push(l - 1);
                    v
                })
                .collect()
        })
        .collect()
}

/// A pruned cache (slots gathered away, original positions kept) decodes as
/// the full cache does with the pruned slots masked out of attention; on
/// sliding-window layers this holds only if the window is measured on the
/// original positions.
#[test]
fn pruned_cache_equals_masked_attention() {
    for family in FAMILIES {
        for format in Format::ALL {
            let m = model(family, format);
            let r = Reference::load(&dir(family)).unwrap();
            let (full, _, _) = m.prefill(&r.prompt, opts(32, 8)).unwrap();
            let l = r.prompt.len() as u32;
            let keep = keep_sets(&m, l);
            let hidden: Vec<Vec<Vec<u32>>> = keep
                .iter()
                .map(|layer| layer.iter().map(|k| (0..l).filter(|p| !k.contains(p)).collect()).collect())
                .collect();
            let mut pruned = full.pruned(&keep.iter().cloned().map(Some).collect::<Vec<_>>(), 4).unwrap();
            let mut masked = full.clone();
            // Several decode steps: the window slides over pruned and kept slots.
            for tok in [r.greedy[0], 5, 17, 230] {
                let a = m.forward(&mut pruned, &[tok], Logits::Last).unwrap();
                let b = m.forward_hiding(&mut masked, &[tok], Logits::Last, &hidden).unwrap();
                let d = max_diff(&a, &b);
                assert!(d < 1e-4, "{family} {format:?}: pruned vs masked differ by {d}");
            }
        }
    }
}

/// The folder loads as a whole workbench model: tokenizer, chat-less encode, generation.
#[test]
fn fixture_folders_open_as_engines() {
    use depthkv::engine::device::DeviceChoice;
    use depthkv::engine::source::ModelSource;
    use depthkv::engine::LoadOptions;
    for family in ["gemma2", "phi3"] {
        for source in [ModelSource::Safetensors(dir(family)), ModelSource::Gguf(dir(family).join("model.gguf"))] {
            let e = Engine::load_source(source, &LoadOptions { device: DeviceChoice::Cpu, ..Default::default() })
                .unwrap_or_else(|e| panic!("{family}: {e}"));
            let ids = e.encode("The quick brown fox", false).unwrap();
            assert!(!ids.is_empty());
            assert_eq!(e.info.architecture, family);
        }
    }
}

/// The fixtures are sensitive: dropping any one structural option moves the
/// logits far beyond the tolerance, so passing means each option is right.
#[test]
fn dropping_any_structural_option_is_caught() {
    use depthkv::engine::config::ModelConfig;
    use depthkv::engine::rope::Scaling;
    use depthkv::engine::weights;
    type Edit = fn(&mut ModelConfig);
    let cases: [(&str, &str, Edit); 9] = [
        ("mistral", "no sliding window", |c| c.layers.iter_mut().for_each(|l| l.window = None)),
        ("gemma2", "window one token wider", |c| c.layers.iter_mut().for_each(|l| l.window = l.window.map(|w| w + 1))),
        ("gemma2", "no attention soft-cap", |c| c.attn_softcap = None),
        ("gemma2", "no final soft-cap", |c| c.final_softcap = None),
        ("gemma3", "local layers on the global RoPE", |c| c.ropes[1] = c.ropes[0].clone()),
        ("llama3", "no llama3 scaling", |c| c.ropes[0].scaling = Scaling::None),
        ("qwen2", "no yarn scaling", |c| c.ropes[0].scaling = Scaling::None),
        ("qwen3", "no linear scaling", |c| c.ropes[0].scaling = Scaling::None),
        ("phi3", "no longrope scaling", |c| c.ropes[0].scaling = Scaling::None),
    ];
    for (family, what, edit) in cases {
        let d = dir(family);
        let (mut config, tied) = weights::read_hf_config(&d).unwrap();
        edit(&mut config);
        let w = weights::load_safetensors(&d, &config, tied, DType::F32, &Device::Cpu).unwrap();
        let m = Model::new(config, w, DType::F32, &Device::Cpu).unwrap();
        let diff = parity::compare(&m, &Reference::load(&d).unwrap()).unwrap().diff;
        let worst = diff.iter().cloned().fold(0f32, f32::max);
        assert!(worst > 10.0 * TOLERANCE, "{family} with {what}: max |diff| only {worst}");
    }
}

/// Prefill options recording every statistic, for the reference tests.
pub fn opts(chunk: usize, window: usize) -> PrefillOptions {
    PrefillOptions { chunk, window, accumulated: true }
}
