//! Careless and hostile input (issue 13): every flag is checked before the
//! model loads, every user file is read with a size limit, outputs are never
//! clobbered, user text cannot drive the terminal, and one bad prompt does not
//! lose an evaluation.

use crate::cli::{depthkv, fails_with, stderr, tmp};
use crate::common;

use depthkv::eval::formats::EvalItem;
use depthkv::eval::methods::Method;
use depthkv::eval::prompts::PromptItem;
use depthkv::eval::runner::{evaluate, EvalConfig};
use depthkv::prune::{SelectConfig, Strategy};
use depthkv::ui::fake::{self, Harness};
use depthkv::ui::TuiOptions;
use std::path::{Path, PathBuf};

/// A model path that does not exist: a command that reports anything else
/// checked its flags before trying to load the model.
const NO_MODEL: &str = "/nonexistent/model.gguf";

/// Fails with `needle` and without touching the model.
fn refused_before_loading(args: &[&str], needle: &str) {
    let all = cat(args, &["--model", NO_MODEL]);
    fails_with(&all, needle);
    let err = stderr(&depthkv(&all));
    assert!(!err.contains("model file not found"), "{args:?} loaded the model first: {err}");
}

/// `base` followed by `extra`.
fn cat<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    [base, extra].concat()
}

fn sample_profile() -> serde_json::Value {
    serde_json::from_str(include_str!("../../sample-profiles/smollm2-135m-depthkv.json")).unwrap()
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

#[test]
fn flags_are_checked_before_the_model_loads() {
    let gen = |extra: &[&str], needle: &str| {
        refused_before_loading(&cat(&["generate", "--prompt", "hi", "--budget", "0.5"], extra), needle)
    };
    gen(&["--mix", "2"], "2 is outside the valid range [0, 1]");
    gen(&["--floor", "1"], "1 is outside the valid range [0, 1)");
    gen(&["--softmax-temperature", "0"], "0 is outside the valid range (0, ∞]");
    gen(&["--strategy", "bogus"], "invalid value 'bogus' for '--strategy");
    gen(&["--scorer", "nope"], "invalid value 'nope' for '--scorer");
    gen(&["--temperature", "-1"], "-1 is outside the valid range [0, 100]");
    gen(&["--temperature", "NaN"], "NaN is outside the valid range [0, 100]");
    gen(&["--temperature", "0.7", "--top-p", "2"], "2 is outside the valid range (0, 1]");
    gen(&["--top-p", "0.9"], "--top-p only applies when sampling");
    gen(&["--kernel", "0"], "0 is outside the valid range 1..=1024");
    gen(&["--window", "0"], "0 is outside the valid range 1..=1048576");
    gen(&["--device", "tpu"], "invalid value 'tpu' for '--device");
    gen(&["--dtype", "f8"], "invalid value 'f8' for '--dtype");
    gen(&["--weights", "int3"], "invalid value 'int3' for '--weights");

    let prompts = write(&tmp("flags.jsonl"), "{\"id\": \"a\", \"prompt\": \"hello\"}\n");
    let eval = |extra: &[&str], needle: &str| {
        refused_before_loading(&cat(&["eval", "--prompts", prompts.to_str().unwrap()], extra), needle)
    };
    eval(&["--variant", "x=bogus"], "unknown strategy `bogus`");
    eval(&["--variant", "x=depthkv:mix=2"], "mix: 2 is outside the valid range [0, 1]");
    eval(&["--variant", "uniform=depthkv-rank"], "is used twice (or is a built-in method)");
    eval(&["--plot", "x.gif"], "plots are written as .png or .svg");
    eval(&["--budgets", "0.2,0"], "0 is outside the valid range (0, 1]");
    refused_before_loading(
        &["calibrate", "--prompts", "p.jsonl", "--out", "o.json", "--strategy", "uniform"],
        "uniform",
    );
    refused_before_loading(&["--theme", "/nonexistent/theme.toml"], "theme");
}

#[test]
fn budgets_the_selection_cannot_honour_are_refused() {
    let gen = |extra: &[&str], needle: &str| {
        fails_with(&cat(&["generate", "--prompt", "What is the capital of France?", "--max-new", "2"], extra), needle)
    };
    gen(&["--budget", "1e-9"], "the valid range there is [");
    gen(&["--budget", "0.2", "--window", "100000"], "cover the whole");
    gen(&["--budget", "0.2", "--sinks", "100000"], "cover the whole");
}

#[test]
fn endless_files_are_refused_not_read() {
    fails_with(&["profile", "show", "/dev/zero"], "/dev/zero is larger than the 16 MiB");
    refused_before_loading(&["generate", "--prompt-file", "/dev/zero"], "/dev/zero is larger than the 64 MiB");
    refused_before_loading(&["eval", "--prompts", "/dev/zero"], "/dev/zero is larger than the 256 MiB");
    refused_before_loading(&["tui", "--prompt-file", "/dev/zero"], "/dev/zero is larger than");
    // The TUI's import (`i`) reads through the same limit, so it cannot freeze.
    let e = depthkv::ui::profile_io::import(Path::new("/dev/zero"), Some(&fake::model_info(24))).unwrap_err();
    assert!(e.contains("/dev/zero is larger than the 16 MiB"), "{e}");
}

#[test]
fn outputs_are_never_clobbered() {
    let existing = write(&tmp("notes.txt"), "my notes");
    let prompts = write(&tmp("clobber.jsonl"), "{\"id\": \"a\", \"prompt\": \"hello\"}\n");
    let p = prompts.to_str().unwrap();
    refused_before_loading(&["eval", "--prompts", p, "--json", existing.to_str().unwrap()], "pass --overwrite");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "my notes");

    // The same word everywhere, and never --force (which means something else in calibrate).
    for args in [
        vec!["tasks", "gen", "--estimate", "--out", existing.to_str().unwrap()],
        vec!["calibrate", "--prompts", p, "--out", existing.to_str().unwrap()],
        vec!["profile", "export", "--out", existing.to_str().unwrap()],
    ] {
        let err = stderr(&depthkv(&args));
        assert!(err.contains("already exists; pass --overwrite to replace it"), "{args:?}: {err}");
        assert!(!err.contains("--force"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "my notes");

    // Even with --overwrite, a symlink or a device is not replaced by a regular file.
    let link = tmp("link.json");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&existing, &link).unwrap();
    fails_with(&["profile", "export", "--out", link.to_str().unwrap(), "--overwrite"], "is a symbolic link");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    fails_with(&["profile", "export", "--out", "/dev/null", "--overwrite"], "is a device, socket or pipe");
    assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
    fails_with(&["tasks", "gen", "--estimate", "--out", "/dev/null", "--overwrite"], "device");

    let o = depthkv(&["profile", "export", "--out", existing.to_str().unwrap(), "--overwrite"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&existing).unwrap().contains("compression_ratios"));
}

#[test]
fn stale_staging_files_of_killed_writers_are_removed() {
    let dir = tmp("stale");
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = dir.join(format!(".ratios.json.tmp-{dead}-0"));
    std::fs::write(&stale, vec![0u8; 4096]).unwrap();
    let out = dir.join("ratios.json");
    let o = depthkv(&["profile", "export", "--out", out.to_str().unwrap(), "--overwrite"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.is_file());
    assert!(!stale.exists(), "the staging file of a dead process is still there");
}

#[test]
fn task_generation_is_bounded() {
    let out = tmp("tasks-bounded.jsonl");
    let o = out.to_str().unwrap();
    let gen =
        |extra: &[&str], needle: &str| fails_with(&cat(&["tasks", "gen", "--estimate", "--out", o], extra), needle);
    gen(&["--count", "1000000000"], "outside the valid range 1..=1048576");
    gen(&["--lengths", "1000000000"], "outside the valid range 1..=1048576");
    gen(&["--count", "100000"], "one command writes at most 100000");
    gen(&["--lengths", "1000000", "--count", "100"], "prompt tokens in all");
    gen(&["--kinds", "passkey,nope"], "invalid value 'nope' for '--kinds");
    // With the model's tokenizer, lengths past its context are refused.
    fails_with(&["tasks", "gen", "--out", o, "--lengths", "100000"], "longer than the model's context of 8192");
    assert!(!out.exists());
}

#[test]
fn profile_text_cannot_drive_the_terminal() {
    let mut v = sample_profile();
    v["notes"] = "\u{1b}[2J\u{1b}]0;pwned\u{7} hello".into();
    v["model"]["name"] = "Smol\u{1b}[31mLM".into();
    let path = write(&tmp("escape.json"), &v.to_string());
    let o = depthkv(&["profile", "show", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "control characters reached stdout: {out:?}");
    assert!(out.contains("notes     \\u{1b}[2J\\u{1b}]0;pwned\\u{7} hello"), "{out}");
    assert!(out.contains("Smol\\u{1b}[31mLM"), "{out}");
}

#[test]
fn tui_text_never_holds_control_characters() {
    let opts = TuiOptions {
        prompt: "Read \u{1b}[2J this \u{1b}]0;title\u{7} text".into(),
        profile_name: Some("evil\u{1b}[5m".into()),
        ..TuiOptions::default()
    };
    let mut h = Harness::new(&opts, (160, 48));
    h.load(8, "Read \u{1b}[2J this \u{9b}31m text");
    h.act(depthkv::ui::app::Action::ProfileExported(Err("\u{1b}]0;pwned\u{7}".into())));
    let buf = h.draw();
    for cell in buf.content() {
        assert!(!cell.symbol().chars().any(char::is_control), "control character in a cell: {:?}", cell.symbol());
    }
}

#[test]
fn tui_export_dialog_refuses_folders_and_empty_names() {
    use crossterm::event::{KeyCode, KeyModifiers};
    let dir = tmp("export-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let mut h = Harness::new(&TuiOptions::default(), (160, 48));
    h.load(8, fake::DEMO_PROMPT);
    fn submit(h: &mut Harness, text: &str) -> String {
        h.press(KeyCode::Char('e'));
        h.press_with(KeyCode::Char('u'), KeyModifiers::CONTROL);
        for c in text.chars() {
            h.press(KeyCode::Char(c));
        }
        h.press(KeyCode::Enter);
        h.app.current_message().map(|m| m.text.clone()).unwrap_or_default()
    }
    let msg = submit(&mut h, dir.to_str().unwrap());
    assert!(msg.contains("is a folder; give a file name in it"), "{msg}");
    assert!(!dir.with_extension("json").exists(), "wrote DIR.json beside the folder");
    let msg = submit(&mut h, "   ");
    assert!(msg.contains("no file name given: nothing exported"), "{msg}");
}

#[test]
fn eval_checks_every_prompt_before_the_first_forward_pass() {
    let long = "lorem ipsum dolor sit amet ".repeat(6000);
    let text = format!(
        "{}\n{}\n",
        serde_json::json!({"id": "short", "prompt": "The secret code is 4721. What is the secret code?"}),
        serde_json::json!({"id": "long-one", "prompt": long})
    );
    let prompts = write(&tmp("mixed.jsonl"), &text);
    let report = tmp("mixed-report.json");
    let o = depthkv(&[
        "eval",
        "--prompts",
        prompts.to_str().unwrap(),
        "--budgets",
        "0.9",
        "--window",
        "4",
        "--json",
        report.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("found before any evaluation"), "{err}");
    assert!(err.contains("long-one: ") && err.contains("context is 8192"), "{err}");
    assert!(!err.contains("short:"), "{err}");
    assert!(!report.exists());
}

#[test]
fn a_prompt_failing_mid_run_is_recorded_and_the_run_continues() {
    let engine = common::default_engine();
    let item = |id: &str, prompt: String| PromptItem {
        id: id.into(),
        prompt,
        reference: None,
        answers: Some(vec!["4721".into()]),
        chat: Some(false),
    };
    let prompts = vec![
        EvalItem::new(item("fine", "The secret code is 4721. Remember it. The secret code is".into())),
        EvalItem::new(item("too-long", "lorem ipsum dolor sit amet ".repeat(6000))),
    ];
    let select = SelectConfig { window: 4, ..SelectConfig::default() };
    let cfg = EvalConfig {
        budgets: vec![0.6],
        methods: vec![Method::global("uniform", Strategy::Uniform)],
        continuation_tokens: 4,
        answer_tokens: 4,
        select,
        prefill: depthkv::engine::PrefillOptions { window: 4, ..Default::default() },
        permutations: 10,
        ..Default::default()
    };
    let report = evaluate(engine, &prompts, &cfg, &mut |_, _| true).unwrap();
    assert_eq!(report.failed_prompts.len(), 1);
    assert_eq!(report.failed_prompts[0].id, "too-long");
    assert!(report.failed_prompts[0].error.contains("context is 8192"), "{:?}", report.failed_prompts);
    assert!(report.results.iter().all(|r| r.n_prompts == 1), "{:?}", report.results);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["failed_prompts"][0]["id"], "too-long");
}

#[test]
fn small_things() {
    // Errors are printed once: no "Caused by" repeating the message.
    let o = depthkv(&["profile", "show", "/nonexistent/p.json"]);
    let err = stderr(&o);
    assert_eq!(err.trim_end(), "error: profile not found: /nonexistent/p.json");
    let o = depthkv(&["profile", "show", "/dev/zero"]);
    assert_eq!(stderr(&o).matches("larger than").count(), 1, "{}", stderr(&o));
    assert!(!stderr(&o).contains("Caused by"));

    // A device given as the model is named as such, not "not found".
    fails_with(&["generate", "--model", "/dev/null", "--prompt", "hi"], "/dev/null is not a model file");

    // `--format json` copies the profile exactly, digit for digit.
    let text = include_str!("../../sample-profiles/smollm2-135m-depthkv.json").replacen(
        "\"global_budget\": 0.2",
        "\"global_budget\": 0.20000000000000001110223",
        1,
    );
    assert!(text.contains("0.20000000000000001110223"));
    let src = write(&tmp("digits.json"), &text);
    let out = tmp("digits-copy.json");
    let _ = std::fs::remove_file(&out);
    let o = depthkv(&["profile", "export", src.to_str().unwrap(), "--format", "json", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
}
