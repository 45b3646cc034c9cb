//! The command line on the real default model: bad input gets a clear
//! message (never a panic), and calibrate → profile → eval works end to end.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) fn depthkv(args: &[&str]) -> Output {
    // Pin the data directory to the installed default model: a test that
    // points DEPTHKV_HOME elsewhere for a while (fetch_and_hub) must not
    // send a concurrent command to install a second copy there.
    let model = common::default_model_path();
    let home = model.parent().and_then(Path::parent).expect("models/<file> inside the data directory");
    Command::new(env!("CARGO_BIN_EXE_depthkv"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("DEPTHKV_HOME", home)
        .output()
        .expect("run depthkv")
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails with a message containing `needle`, without panicking.
pub(crate) fn fails_with(args: &[&str], needle: &str) {
    let o = depthkv(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(err.to_lowercase().contains(&needle.to_lowercase()), "{args:?}: expected `{needle}` in: {err}");
}

pub(crate) fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("depthkv-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A GGUF with the given metadata and one small embedding tensor.
fn write_gguf(path: &Path, arch: &str, with_tokens: bool) {
    use candle_core::quantized::{gguf_file, QTensor};
    use candle_core::{Device, Tensor};
    let s = |x: &str| gguf_file::Value::String(x.to_string());
    let u = gguf_file::Value::U32;
    let mut md = vec![
        ("general.architecture".to_string(), s(arch)),
        (format!("{arch}.block_count"), u(1)),
        (format!("{arch}.embedding_length"), u(8)),
        (format!("{arch}.attention.head_count"), u(2)),
    ];
    if with_tokens {
        md.push(("tokenizer.ggml.model".into(), s("gpt2")));
    }
    let emb = QTensor::quantize(
        &Tensor::zeros((4, 8), candle_core::DType::F32, &Device::Cpu).unwrap(),
        candle_core::quantized::GgmlDType::F32,
    )
    .unwrap();
    let md_ref: Vec<(&str, &gguf_file::Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &md_ref, &[("token_embd.weight", &emb)]).unwrap();
}

#[test]
fn bad_input_is_reported_clearly() {
    let gen = |model: &str, extra: &[&str]| {
        let mut v = vec!["generate", "--model", model, "--prompt", "hi"];
        v.extend_from_slice(extra);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run =
        |args: Vec<String>, needle: &str| fails_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), needle);

    run(gen("/nonexistent/model.gguf", &[]), "not found");

    let real = std::fs::read(common::default_model_path()).unwrap();
    let truncated = tmp("truncated.gguf");
    std::fs::write(&truncated, &real[..2 << 20]).unwrap();
    run(gen(truncated.to_str().unwrap(), &[]), "past the end of the file");

    let corrupt = tmp("corrupt.gguf");
    std::fs::write(&corrupt, b"this is not a gguf file at all, just some bytes").unwrap();
    run(gen(corrupt.to_str().unwrap(), &[]), "could not read GGUF");

    let neox = tmp("neox.gguf");
    write_gguf(&neox, "gptneox", false);
    run(gen(neox.to_str().unwrap(), &[]), "unsupported architecture `gptneox`");

    let notok = tmp("notok.gguf");
    write_gguf(&notok, "llama", false);
    run(gen(notok.to_str().unwrap(), &[]), "no tokenizer");

    run(vec!["generate".into(), "--device".into(), "cuda".into(), "--prompt".into(), "hi".into()], "CUDA");
    run(vec!["generate".into(), "--prompt".into(), "   ".into()], "empty");
    let long = "lorem ipsum dolor ".repeat(4000);
    run(vec!["generate".into(), "--raw".into(), "--prompt".into(), long], "context is 8192");
    run(
        vec!["generate".into(), "--prompt".into(), "hi".into(), "--budget".into(), "1.5".into()],
        "outside the valid range (0, 1]",
    );
    run(
        vec![
            "generate".into(),
            "--prompt".into(),
            "hi".into(),
            "--budget".into(),
            "0.5".into(),
            "--strategy".into(),
            "bogus".into(),
        ],
        "bogus",
    );
    run(vec!["generate".into(), "--prompt".into(), "hi".into(), "--scorer".into(), "nope".into()], "nope");
    run(vec!["eval".into(), "--prompts".into(), "/nonexistent.jsonl".into()], "nonexistent");
}

#[test]
fn calibrate_profile_eval_end_to_end() {
    let prompts = tmp("prompts.jsonl");
    std::fs::write(
        &prompts,
        concat!(
            r#"{"id": "a", "prompt": "The harbour town of Keswin has a red lighthouse, a fish market and a bakery that opens at five. The secret code for the gate is 4721. Remember it. What is the secret code for the gate?", "answers": ["4721"]}"#,
            "\n\n",
            r#"{"id": "b", "prompt": "Write one sentence about a cat that sleeps on a warm windowsill in the afternoon sun while the street below is busy.", "chat": true}"#,
            "\n"
        ),
    )
    .unwrap();
    let profile = tmp("profile.json");
    let _ = std::fs::remove_file(&profile);
    let p = profile.to_str().unwrap();
    let q = prompts.to_str().unwrap();
    let o = depthkv(&["calibrate", "--prompts", q, "--out", p, "--tokens", "8", "--window", "8", "--budget", "0.5"]);
    assert!(o.status.success(), "calibrate failed: {}", stderr(&o));
    let prof: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&profile).unwrap()).unwrap();
    let sens = prof["sensitivity"].as_array().unwrap();
    assert_eq!(sens.len(), 30);
    assert!(sens.iter().any(|s| s["mean"].as_f64().unwrap() > 0.0), "every layer measured zero damage");
    let pv = prof["calibration"]["p_value"].as_f64().unwrap();
    assert!(pv > 0.0 && pv <= 1.0);
    let fracs = prof["kept_fractions"].as_array().unwrap();
    let mean: f64 = fracs.iter().map(|f| f.as_f64().unwrap()).sum::<f64>() / 30.0;
    assert!((mean - 0.5).abs() < 0.01, "mean kept fraction {mean}");

    // Export never overwrites silently.
    fails_with(&["calibrate", "--prompts", q, "--out", p], "already exists");

    let kv = tmp("kvpress.json");
    let _ = std::fs::remove_file(&kv);
    let o = depthkv(&["profile", "export", p, "--out", kv.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let kvj: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&kv).unwrap()).unwrap();
    let ratios = kvj["compression_ratios"].as_array().unwrap();
    assert_eq!(ratios.len(), 30);
    assert!((ratios[0].as_f64().unwrap() - (1.0 - fracs[0].as_f64().unwrap())).abs() < 1e-6);

    let report = tmp("report.json");
    let o = depthkv(&[
        "eval",
        "--prompts",
        q,
        "--profile",
        p,
        "--budgets",
        "0.3,0.6",
        "--tokens",
        "8",
        "--answer-tokens",
        "24",
        "--window",
        "8",
        "--json",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "eval failed: {}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("| depthkv"), "no markdown table: {table}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 1 + 3 * 2);
    let full = &results[0];
    assert_eq!(full["method"], "full");
    assert_eq!(full["kl_to_full"].as_f64().unwrap(), 0.0);
    assert_eq!(full["top1_agreement"].as_f64().unwrap(), 1.0);
    assert_eq!(full["accuracy"].as_f64().unwrap(), 1.0, "the full cache should find the planted code");
    for row in &results[1..] {
        assert!(row["kv_bytes"].as_u64().unwrap() < full["kv_bytes"].as_u64().unwrap());
        assert!(row["kl_to_full"].as_f64().unwrap() >= 0.0);
    }
    let cmp = r["comparisons"].as_array().unwrap();
    assert!(cmp.iter().all(|c| c["p_value"].as_f64().unwrap() > 0.0));
    assert_eq!(cmp.len(), 2 * 2 * 2);
}

/// `bench` and `eval` on a model other than the default run without
/// `--force`: the built-in profile (made for the default model) is left out
/// with a note, uniform and pyramid still run.
#[test]
fn bench_and_eval_run_on_another_model_without_its_profile() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families/llama3");
    let model = model.to_str().unwrap();
    let prompts = tmp("other-model-prompts.jsonl");
    let text = "The keeper of the lighthouse wrote down the weather every morning, the ships that passed, \
                and the colour of the sea, and on the last page the code 4417 for the store room.";
    std::fs::write(&prompts, format!("{{\"id\": \"a\", \"prompt\": \"{text}\"}}\n")).unwrap();
    let report = tmp("other-model-eval.json");
    let _ = std::fs::remove_file(&report);
    let o = depthkv(&[
        "eval",
        "--model",
        model,
        "--prompts",
        prompts.to_str().unwrap(),
        "--budgets",
        "0.6",
        "--tokens",
        "4",
        "--answer-tokens",
        "4",
        "--raw",
        "--json",
        report.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "eval failed: {err}");
    assert!(err.contains("depthkv skipped"), "no note about the left-out profile: {err}");
    let json = std::fs::read_to_string(&report).unwrap();
    assert!(json.contains("\"uniform\"") && json.contains("\"pyramid\""), "{json}");
    assert!(!json.contains("\"depthkv\""), "depthkv ran with another model's profile: {json}");

    let bench = tmp("other-model-bench.json");
    let _ = std::fs::remove_file(&bench);
    let o = depthkv(&[
        "bench",
        "--model",
        model,
        "--contexts",
        "240",
        "--reps",
        "1",
        "--decode-tokens",
        "4",
        "--budgets",
        "0.6",
        "--no-stock",
        "--calib-prompts",
        "0",
        "--json",
        bench.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "bench failed: {}", stderr(&o));
    let json = std::fs::read_to_string(&bench).unwrap();
    assert!(json.contains("\"uniform\"") && !json.contains("\"depthkv\""), "{json}");
}
