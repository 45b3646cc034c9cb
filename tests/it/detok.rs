//! The incremental detokenizer shared by the CLI and the session, on the
//! default model's real tokenizer: multi-byte characters split over several
//! byte-level tokens come out whole, and the pieces add up to the full decode.

use crate::common;
use depthkv::engine::Detokenizer;

const TEXTS: &[&str] = &[
    "plain ASCII, nothing special",
    "naïve café, Ærøskøbing and Łódź",
    "東京の夜景はとても綺麗です。",
    "emoji 🙂🚀 and a flag 🇫🇷 between words",
    "mixed: größer als 5 €, kleiner als ¥100 — fin.",
];

#[test]
fn pieces_add_up_to_the_whole_decode() {
    let engine = common::default_engine();
    for text in TEXTS {
        let ids = engine.codec.encode_prompt(text, false).unwrap();
        let mut detok = Detokenizer::new();
        let mut pieces: Vec<String> = ids.iter().map(|&id| detok.push(&engine.codec, id)).collect();
        pieces.push(detok.flush(&engine.codec));
        let joined: String = pieces.concat();
        assert_eq!(joined, engine.decode(&ids), "{text:?}");
        assert!(!joined.contains('\u{FFFD}'), "{text:?} produced a replacement character: {pieces:?}");
    }
}

#[test]
fn incomplete_characters_are_held_back() {
    let engine = common::default_engine();
    let ids = engine.codec.encode_prompt("🙂", false).unwrap();
    assert!(ids.len() > 1, "the emoji should span several byte-level tokens, got {ids:?}");
    let mut detok = Detokenizer::new();
    let early: Vec<String> = ids[..ids.len() - 1].iter().map(|&id| detok.push(&engine.codec, id)).collect();
    assert!(early.iter().all(String::is_empty), "partial character leaked: {early:?}");
    assert_eq!(detok.push(&engine.codec, ids[ids.len() - 1]), "🙂");
}
