//! Property-based fuzzing of the parsers that take user files: profile JSON,
//! prompt JSONL, keys.toml and theme TOML. Inputs are random bytes, random
//! mixes of syntax fragments and edge-case numbers, and random edits of a
//! valid file. Each parser must return (Ok or a clear error) without
//! panicking, and hold at most `ALLOC_PER_BYTE * input + ALLOC_BASE` heap
//! bytes at once (measured by the counting allocator of this test binary).
//!
//! `DEPTHKV_FUZZ_CASES` sets the cases per parser (default 2000, a few
//! seconds in all); docs/reliability.md records a longer run.

use crate::alloc_meter::peak_during;

use depthkv::ui::config::KeysFile;
use depthkv::ui::keys::Keymap;
use depthkv::ui::theme::Theme;
use proptest::prelude::*;
use proptest::sample::Index;
use std::path::Path;

/// Heap bound per input byte (parsed trees and error text) ...
const ALLOC_PER_BYTE: usize = 64;
/// ... plus a fixed allowance (built-in theme, key map, messages).
const ALLOC_BASE: usize = 512 << 10;

const SAMPLE_PROFILE: &str = include_str!("../../sample-profiles/smollm2-135m-depthkv.json");
const SAMPLE_THEME: &str = include_str!("../../themes/dark.toml");
const SAMPLE_PROMPTS: &str = concat!(
    r#"{"id": "a", "prompt": "The code is 4721. What is the code?", "answers": ["4721"], "chat": true}"#,
    "\n",
    r#"{"id": "b", "prompt": "Say hi.", "reference": "Hi!"}"#,
    "\n\n",
);
const SAMPLE_KEYS: &str = "[bindings]\nquit = \"q\"\nexport = [\"e\", \"ctrl-e\"]\nleft_coarse = \"shift-left\"\n";

/// Syntax pieces and hostile values the generators splice together.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "=",
    "\n",
    "[bindings]",
    "[ui]",
    "[heatmap]",
    "\"format_version\": 1",
    "\"n_layers\": 4000000000",
    "\"kept_fractions\": [",
    "1e308",
    "-1e308",
    "1e-320",
    "NaN",
    "-0",
    "0.5",
    "99999999999999999999999",
    "\"\\u0000\"",
    "\"\\u001b[2J\"",
    "\"\\ud800\"",
    "true",
    "null",
    "\"id\": \"x\"",
    "\"prompt\": \"p\"",
    "quit = ",
    "\"ctrl-alt-shift-f12\"",
    "extends = \"dark\"",
    "extends = \"fuzz\"",
    "bg = \"#zzzzzz\"",
    "ramp = []",
    "\u{feff}",
    "é",
    "\u{1b}",
];

fn cases() -> u32 {
    std::env::var("DEPTHKV_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() }
}

/// Up to 16 random edits (insert, delete, replace a byte, or duplicate a run) of `seed`.
fn edited(seed: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec((any::<Index>(), any::<u8>(), 0u8..4), 0..16).prop_map(move |edits| {
        let mut b = seed.as_bytes().to_vec();
        for (at, byte, op) in edits {
            let i = at.index(b.len() + 1);
            match op {
                0 => b.insert(i, byte),
                1 if i < b.len() => {
                    b.remove(i);
                }
                2 if i < b.len() => b[i] = byte,
                _ => {
                    let run = b[i..(i + 64).min(b.len())].to_vec();
                    b.splice(i..i, run);
                }
            }
        }
        String::from_utf8_lossy(&b).into_owned()
    })
}

/// Random bytes, fragment soup, or an edited valid file.
fn input(seed: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        prop::collection::vec(prop::sample::select(FRAGMENTS), 0..200).prop_map(|f| f.concat()),
        edited(seed),
    ]
}

/// Runs `parse` on `text`, checking the heap bound; the parse must not panic.
fn bounded<R>(what: &str, text: &str, parse: impl FnOnce(&str) -> R) -> R {
    let (r, peak) = peak_during(|| parse(text));
    let bound = ALLOC_PER_BYTE * text.len() + ALLOC_BASE;
    assert!(peak <= bound, "{what}: {peak} heap bytes for a {}-byte input (bound {bound})", text.len());
    r
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn profile_json_parses_or_errors_within_bounds(text in input(SAMPLE_PROFILE)) {
        let parsed = bounded("profile", &text, |t| depthkv::profile::io::parse(t, Path::new("fuzz.json")));
        if let Ok(p) = parsed {
            // What loads is valid, and everything done with a profile works on it.
            prop_assert!(p.validate().is_ok());
            depthkv::profile::export_kvpress(&p);
            prop_assert!(p.kept_fractions.len() == p.model.n_layers);
        }
    }

    #[test]
    fn prompt_jsonl_parses_or_errors_within_bounds(text in input(SAMPLE_PROMPTS)) {
        if let Ok(items) = bounded("prompts", &text, depthkv::eval::prompts::parse_prompts) {
            prop_assert!(!items.is_empty());
            prop_assert!(items.iter().all(|i| !i.id.trim().is_empty() && !i.prompt.trim().is_empty()));
        }
    }

    #[test]
    fn keys_toml_parses_or_errors_within_bounds(text in input(SAMPLE_KEYS)) {
        let _ = bounded("keys.toml", &text, |t| {
            toml::from_str::<KeysFile>(t).map(|file| Keymap::with_overrides(&file).map(|_| ()))
        });
    }

    #[test]
    fn theme_toml_parses_or_errors_within_bounds(text in input(SAMPLE_THEME)) {
        if let Ok(theme) = bounded("theme", &text, |t| Theme::from_toml(t, "fuzz")) {
            // A theme that loads can colour every heat value.
            for v in [f32::NAN, -1.0, 0.0, 0.5, 1.0, 2.0] {
                theme.heat(v);
            }
        }
    }
}

#[test]
fn the_unedited_samples_parse() {
    assert!(depthkv::profile::io::parse(SAMPLE_PROFILE, Path::new("sample")).is_ok());
    assert_eq!(depthkv::eval::prompts::parse_prompts(SAMPLE_PROMPTS).unwrap().len(), 2);
    let keys: KeysFile = toml::from_str(SAMPLE_KEYS).unwrap();
    assert!(Keymap::with_overrides(&keys).is_ok());
    assert!(Theme::from_toml(SAMPLE_THEME, "fuzz").is_ok());
}

#[test]
fn the_meter_sees_allocations() {
    let (v, peak) = peak_during(|| vec![1u8; 1 << 20]);
    assert!(peak >= 1 << 20, "peak {peak}");
    drop(v);
    let ((), none) = peak_during(|| ());
    assert_eq!(none, 0);
}
