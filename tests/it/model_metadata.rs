//! Model metadata never sizes an allocation unchecked: crafted GGUF headers
//! and config.json files with absurd numbers are refused with a message,
//! and random mutations of both never panic.

use candle_core::quantized::gguf_file;
use depthkv::engine::{config, gguf_header, weights};
use proptest::prelude::*;
use std::io::Cursor;

/// A metadata value of a crafted GGUF file.
#[derive(Clone, Debug)]
enum V {
    U32(u32),
    U64(u64),
    F32(f32),
    Str(String),
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// Writes a version-3 GGUF file: metadata, f32 tensors (zeros), aligned to 32.
fn gguf(kvs: &[(&str, V)], tensors: &[(&str, Vec<u64>)]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        push_str(&mut out, k);
        match v {
            V::U32(x) => out.extend(4u32.to_le_bytes().into_iter().chain(x.to_le_bytes())),
            V::U64(x) => out.extend(10u32.to_le_bytes().into_iter().chain(x.to_le_bytes())),
            V::F32(x) => out.extend(6u32.to_le_bytes().into_iter().chain(x.to_le_bytes())),
            V::Str(s) => {
                out.extend(8u32.to_le_bytes());
                push_str(&mut out, s);
            }
        }
    }
    let mut offset = 0u64;
    let mut data = 0u64;
    for (name, dims) in tensors {
        push_str(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(0u32.to_le_bytes()); // F32
        out.extend(offset.to_le_bytes());
        let bytes = dims.iter().try_fold(4u64, |a, &d| a.checked_mul(d)).unwrap_or(0).min(1 << 20);
        offset += bytes.div_ceil(32) * 32;
        data = offset;
    }
    out.resize(out.len().div_ceil(32) * 32, 0);
    out.resize(out.len() + data as usize, 0);
    out
}

/// A tiny but complete llama header with two layers' worth of metadata.
fn llama_kvs(block_count: V) -> Vec<(&'static str, V)> {
    vec![
        ("general.architecture", V::Str("llama".into())),
        ("llama.block_count", block_count),
        ("llama.embedding_length", V::U32(8)),
        ("llama.attention.head_count", V::U32(2)),
        ("llama.context_length", V::U32(64)),
        ("llama.rope.freq_base", V::F32(10000.0)),
    ]
}

fn open(bytes: &[u8]) -> String {
    let dir = tempdir();
    let path = dir.join("m.gguf");
    std::fs::write(&path, bytes).unwrap();
    let r = weights::open_gguf(&path).map(|_| ());
    std::fs::remove_dir_all(&dir).ok();
    r.expect_err("must be refused").to_string()
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d =
        std::env::temp_dir().join(format!("depthkv-meta-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn gguf_with_billions_of_layers_is_refused() {
    let bytes = gguf(&llama_kvs(V::U32(4_000_000_000)), &[("token_embd.weight", vec![8, 16])]);
    let e = open(&bytes);
    assert!(e.contains("layers") && e.contains("4000000000"), "{e}");
}

#[test]
fn gguf_tensor_of_2_pow_64_elements_is_refused() {
    let bytes = gguf(&llama_kvs(V::U32(2)), &[("token_embd.weight", vec![1 << 32, 1 << 32])]);
    let e = open(&bytes);
    assert!(e.contains("tensor 0") && e.contains("overflows"), "{e}");
    let bytes = gguf(&llama_kvs(V::U32(2)), &[("token_embd.weight", vec![1 << 32, 1 << 20])]);
    let e = open(&bytes);
    assert!(e.contains("token_embd.weight") && e.contains("past the end of the file"), "{e}");
}

#[test]
fn gguf_counts_beyond_the_file_are_refused() {
    let mut bytes = gguf(&llama_kvs(V::U32(2)), &[]);
    bytes[8..16].copy_from_slice(&(1u64 << 50).to_le_bytes()); // tensor count
    assert!(open(&bytes).contains("tensor count"));
    let mut bytes = gguf(&llama_kvs(V::U32(2)), &[]);
    bytes[24..32].copy_from_slice(&u64::MAX.to_le_bytes()); // first key's length
    assert!(open(&bytes).contains("key length"));
    let bytes = gguf(&[("general.alignment", V::U32(0))], &[]);
    assert!(open(&bytes).contains("alignment"));
    let bytes = gguf(&llama_kvs(V::U64(u64::MAX)), &[("token_embd.weight", vec![8, 16])]);
    assert!(open(&bytes).contains("layers"));
}

fn hf(edit: &[(&str, serde_json::Value)]) -> String {
    let mut c = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
        "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0
    });
    for (k, v) in edit {
        c[*k] = v.clone();
    }
    let dir = tempdir();
    std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
    let r = weights::read_hf_config(&dir).map(|_| ());
    std::fs::remove_dir_all(&dir).ok();
    r.expect_err("must be refused").to_string()
}

#[test]
fn config_json_with_absurd_numbers_is_refused() {
    let e = hf(&[("num_hidden_layers", serde_json::json!(1_000_000_000_000u64))]);
    assert!(e.contains("layers = 1000000000000"), "{e}");
    let e = hf(&[("max_position_embeddings", serde_json::json!(1_000_000_000_000_000u64))]);
    assert!(e.contains("context length"), "{e}");
    let e = hf(&[("rms_norm_eps", serde_json::json!(-1.0))]);
    assert!(e.contains("rms_norm_eps"), "{e}");
    let e = hf(&[("rope_theta", serde_json::json!(-5.0))]);
    assert!(e.contains("rope_theta -5"), "{e}");
}

#[test]
fn unknown_architecture_and_rope_type_are_named() {
    let e = hf(&[("architectures", serde_json::json!(["FalconForCausalLM"]))]);
    assert!(e.contains("FalconForCausalLM") && e.contains("gemma2"), "{e}");
    let e = hf(&[("rope_scaling", serde_json::json!({"rope_type": "dynamic", "factor": 2.0}))]);
    assert!(e.contains("`dynamic`"), "{e}");
    let e = hf(&[("rope_scaling", serde_json::json!({"type": "ntk-by-parts", "factor": 2.0}))]);
    assert!(e.contains("`ntk-by-parts`"), "{e}");
}

/// Runs the header check, candle's reader and our config on `bytes`, as
/// `open_gguf` does; any outcome but a panic is fine.
fn read_all(bytes: &[u8]) {
    let mut cur = Cursor::new(bytes);
    if gguf_header::check(&mut cur).is_ok() {
        if let Ok(content) = gguf_file::Content::read(&mut cur) {
            let _ = config::from_gguf(&content);
        }
    }
}

fn seed_file() -> Vec<u8> {
    let mut kvs = llama_kvs(V::U32(2));
    kvs.push(("llama.attention.sliding_window", V::U32(4)));
    gguf(&kvs, &[("token_embd.weight", vec![8, 16]), ("output_norm.weight", vec![8])])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_gguf_headers_never_panic(
        edits in prop::collection::vec((0usize..400, any::<u8>()), 1..8),
        cut in 0usize..1200,
    ) {
        let mut bytes = seed_file();
        for (at, b) in edits {
            if let Some(x) = bytes.get_mut(at) { *x = b; }
        }
        bytes.truncate(cut.max(4));
        read_all(&bytes);
    }

    #[test]
    fn random_config_json_never_panics(
        values in prop::collection::vec(prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            (-1e20f64..1e20).prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            "[a-z_]{0,12}".prop_map(serde_json::Value::from),
            Just(serde_json::json!({"rope_type": "yarn", "factor": 0.0})),
            Just(serde_json::json!({"rope_type": "longrope", "short_factor": [1.0], "long_factor": []})),
            Just(serde_json::json!(["sliding_attention", "full_attention"])),
        ], 16),
    ) {
        let keys = ["hidden_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers", "vocab_size",
            "max_position_embeddings", "rms_norm_eps", "head_dim", "rope_theta", "sliding_window",
            "query_pre_attn_scalar", "attn_logit_softcapping", "rope_scaling", "rope_parameters", "layer_types",
            "original_max_position_embeddings"];
        let mut c = serde_json::json!({"architectures": ["Gemma3ForCausalLM"]});
        for (k, v) in keys.iter().zip(values) {
            c[*k] = v;
        }
        let _ = config::from_hf_json(&c.to_string());
    }
}
