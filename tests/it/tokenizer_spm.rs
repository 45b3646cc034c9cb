//! SentencePiece tokenizers rebuilt from GGUF metadata (`tokenizer.ggml.model = "llama"`) must
//! encode and decode exactly like the tokenizer.json Hugging Face's converter makes from the
//! same SentencePiece model. Fixtures: `tests/fixtures/spm/{llama,gemma}/`, made by
//! `scripts/make_spm_fixture.py` (a Llama/Mistral layout with a space prefix, a Gemma layout
//! without), each with the reference `tokenizer.json`, the GGUF llama.cpp's converter would
//! write and `expected.json`: transformers' own ids and decodes for a hostile corpus.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::Content;
use depthkv::engine::gguf_tokenizer::{special_tokens, tokenizer_from_gguf, SpecialTokens};
use depthkv::engine::{tokenizer, Detokenizer};
use serde::Deserialize;
use tokenizers::Tokenizer;

use crate::tokenizer_gguf::{added_tokens, assert_encodes_alike, assert_random_ids_decode_alike, ids, xorshift};

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    ids_with_special: Vec<u32>,
    decode: String,
    decode_skip_special: String,
}

#[derive(Deserialize)]
struct Expected {
    bos: u32,
    eos: u32,
    unk: u32,
    pad: Option<u32>,
    vocab_size: usize,
    cases: Vec<Case>,
}

struct Fixture {
    name: &'static str,
    dir: PathBuf,
    content: Content,
    gguf: Tokenizer,
    reference: Tokenizer,
    special: SpecialTokens,
    expected: Expected,
}

fn load(name: &'static str) -> Fixture {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spm").join(name);
    let read = |file: &str| {
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{name}/{file} missing from the fixtures: {e}"))
    };
    let expected: Expected = serde_json::from_str(&read("expected.json")).expect("parse expected.json");
    let reference = Tokenizer::from_file(dir.join("tokenizer.json")).expect("parse reference tokenizer.json");
    let mut file = std::fs::File::open(dir.join("tokenizer.gguf")).expect("open tokenizer.gguf");
    let content = Content::read(&mut file).expect("read GGUF metadata");
    let gguf = tokenizer_from_gguf(&content).unwrap_or_else(|e| panic!("{name}: tokenizer from GGUF: {e}"));
    let special = special_tokens(&content);
    Fixture { name, dir, content, gguf, reference, special, expected }
}

fn fixtures() -> &'static [Fixture; 2] {
    static F: OnceLock<[Fixture; 2]> = OnceLock::new();
    F.get_or_init(|| [load("llama"), load("gemma")])
}

/// Both tokenizers give the same ids for `text` (with and without bos) and decode them alike.
fn assert_same(f: &Fixture, text: &str) {
    assert_encodes_alike(&f.gguf, &f.reference, text, f.name);
}

#[test]
fn hostile_corpus_matches_transformers() {
    for f in fixtures() {
        assert!(f.expected.cases.len() >= 30, "{}: the hostile corpus is missing", f.name);
        for c in &f.expected.cases {
            let t = &c.text;
            // The reference file read by the Rust crate agrees with transformers itself ...
            assert_eq!(ids(&f.reference, t, false), c.ids, "{}: reference tokenizer.json on {t:?}", f.name);
            // ... and the tokenizer rebuilt from GGUF agrees with both.
            assert_eq!(ids(&f.gguf, t, false), c.ids, "{}: ids for {t:?}", f.name);
            assert_eq!(ids(&f.gguf, t, true), c.ids_with_special, "{}: ids with bos for {t:?}", f.name);
            assert_eq!(f.gguf.decode(&c.ids_with_special, false).unwrap(), c.decode, "{}: decode {t:?}", f.name);
            assert_eq!(
                f.gguf.decode(&c.ids_with_special, true).unwrap(),
                c.decode_skip_special,
                "{}: decode skipping specials {t:?}",
                f.name
            );
            assert_same(f, t);
        }
    }
}

/// The corpus really exercises what it is meant to: byte fallback, control tokens matched whole
/// inside the text and, for the Llama layout, the space prefix.
#[test]
fn hostile_corpus_covers_the_hazards() {
    for f in fixtures() {
        let case = |text: &str| f.expected.cases.iter().find(|c| c.text == text).expect("case");
        let is_byte = |id: &u32| f.gguf.id_to_token(*id).is_some_and(|t| t.starts_with("<0x"));
        assert!(case("rare CJK forcing bytes: 龘 鱻 麤 𠀋 𪚥").ids.iter().filter(|i| is_byte(i)).count() >= 12);
        assert!(case("emoji 😀🎉👩‍👩‍👧‍👦 and flags 🇫🇷 ❤️").ids.iter().any(is_byte));
        let bos_inside = case("<s>Hello</s>");
        let eos = f.expected.eos;
        if f.name == "llama" {
            assert_eq!(&bos_inside.ids[..1], &[f.expected.bos]);
            assert_eq!(bos_inside.ids.last(), Some(&eos));
        }
        let hello = case("Hello").ids.clone();
        let first = f.gguf.id_to_token(hello[0]).unwrap();
        assert_eq!(first.starts_with('\u{2581}'), f.name == "llama", "{}: first piece of Hello is {first:?}", f.name);
        assert_eq!(case("").ids, Vec::<u32>::new());
        assert_eq!(case("").ids_with_special, vec![f.expected.bos]);
    }
}

/// Deterministic pseudo-random strings over a pool of every tricky class.
#[test]
fn random_strings_match() {
    const POOL: &[&str] = &[
        "a", "Z", "the", "he", "ll", "é", "ß", "Å", "中", "文", "語", "한", "龘", "😀", "👍🏽", "\u{301}", "0", "7",
        "42", " ", "  ", "   ", "\t", "\n", "\r\n", "\u{a0}", "\u{200b}", "▁", "<s>", "</s>", "<unk>", "<bos>",
        "<eos>", "<pad>", "<tool>", "<ctrl>", "<", ">", "!", ".", ",", "'", "\"", "(", ")", "#", "x",
    ];
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
    for f in fixtures() {
        for _ in 0..400 {
            let len = (next() % 24) as usize;
            let text: String = (0..len).map(|_| POOL[(next() % POOL.len() as u64) as usize]).collect();
            assert_same(f, &text);
        }
    }
}

/// Decoding arbitrary ids (lone bytes, specials, pieces) agrees too.
#[test]
fn random_id_sequences_decode_alike() {
    for f in fixtures() {
        assert_random_ids_decode_alike(&f.gguf, &f.reference, 300, 16, f.name);
    }
}

#[test]
fn vocabulary_and_added_tokens_match() {
    for f in fixtures() {
        assert_eq!(f.gguf.get_vocab_size(true), f.expected.vocab_size, "{}", f.name);
        assert_eq!(f.gguf.get_vocab(true), f.reference.get_vocab(true), "{}", f.name);
        let added = added_tokens(&f.gguf);
        assert_eq!(added, added_tokens(&f.reference), "{}", f.name);
        // Control tokens are special, the user-defined <tool> is not.
        assert!(added.iter().any(|(_, c, s)| c == "<ctrl>" && *s), "{}", f.name);
        assert!(added.iter().any(|(_, c, s)| c == "<tool>" && !*s), "{}", f.name);
    }
}

#[test]
fn special_ids_bos_and_stop_ids() {
    for f in fixtures() {
        let e = &f.expected;
        assert_eq!(f.special.bos, Some(e.bos), "{}", f.name);
        assert_eq!(f.special.eos, Some(e.eos), "{}", f.name);
        assert_eq!(f.special.unk, Some(e.unk), "{}", f.name);
        assert_eq!(f.special.pad, e.pad, "{}", f.name);
        assert!(f.special.add_bos && !f.special.add_eos, "{}", f.name);
        assert_eq!(f.special.stop_ids(), vec![e.eos], "{}", f.name);
    }
}

/// The loader path a user gets with a lone .gguf (no tokenizer.json beside it): bos once at the
/// start, eos stops generation, and streamed text equals the whole decode.
#[test]
fn text_codec_from_a_lone_gguf() {
    for f in fixtures() {
        let dir = std::env::temp_dir().join(format!("depthkv-spm-{}-{}", f.name, std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lone = dir.join("model.gguf");
        std::fs::copy(f.dir.join("tokenizer.gguf"), &lone).unwrap();
        let codec = tokenizer::for_gguf(&lone, &f.content).expect("codec from a lone GGUF");
        let text = "  Hello world\n\tcafé 日本 😀";
        let want = ids(&f.reference, text, true);
        let got = codec.encode_prompt(text, false).unwrap();
        assert_eq!(got, want, "{}", f.name);
        assert_eq!(got.iter().filter(|&&i| i == f.expected.bos).count(), 1, "{}", f.name);
        assert!(codec.is_eos(f.expected.eos) && !codec.is_eos(f.expected.bos), "{}", f.name);
        // Token views: a word's piece keeps its space (the decoder strips only a decode's first).
        let words = ids(&f.reference, "Hello world", false);
        let want: Vec<String> =
            words.iter().map(|&i| f.reference.id_to_token(i).unwrap().replace('\u{2581}', " ")).collect();
        assert_eq!(codec.pieces(&words), want, "{}", f.name);
        let mut detok = Detokenizer::new();
        let mut streamed: String = got[1..].iter().map(|&id| detok.push(&codec, id)).collect();
        streamed.push_str(&detok.flush(&codec));
        assert_eq!(streamed, codec.decode(&got[1..]), "{}", f.name);
        std::fs::remove_dir_all(&dir).ok();
    }
}
