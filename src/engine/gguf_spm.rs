//! SentencePiece tokenizers stored in GGUF (`tokenizer.ggml.model = "llama"`: Llama 2, Mistral,
//! Gemma), rebuilt as the `tokenizer.json` that Hugging Face's converter makes for these
//! families: a BPE model with byte fallback whose merges are derived from the pieces and
//! their scores, `▁` for spaces, and a decoder that turns the pieces back into text.
//!
//! | GGUF                                        | tokenizer.json equivalent                          |
//! |---------------------------------------------|----------------------------------------------------|
//! | `add_space_prefix` true (default; Llama, Mistral) | normalizer Prepend("▁"), Replace(" ", "▁"); decoder strips the added space |
//! | `add_space_prefix` false (Gemma)            | normalizer Replace(" ", "▁")                       |
//! | `scores`                                    | merge `(a, b)` for every piece `a+b` whose halves are pieces, ranked by `a+b`'s score |
//! | type BYTE (`<0x41>`)                        | BPE `byte_fallback`                                |
//! | type USER_DEFINED                           | added token with its `▁` restored (llama.cpp's converter writes spaces) |
//!
//! The legacy normalizer form (a space prefix on every stretch of text between special tokens,
//! `" a"` becoming `"▁▁a"`) is the one Llama 2's and Mistral v0.1's tokenizer.json use, the one
//! SentencePiece itself implements and the one llama.cpp applies to GGUF files.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::{DecoderWrapper, NormalizerWrapper, Tokenizer};

use super::gguf_tokenizer::{
    keys, optional_bool, per_token, Metadata, TokenizerError, TOKEN_TYPE_CONTROL, TOKEN_TYPE_UNUSED,
    TOKEN_TYPE_USER_DEFINED,
};

/// SentencePiece's space marker.
const SPACE: &str = "\u{2581}";

/// Scores from `tokenizer.ggml.scores`, one per token (required: they rank the merges).
fn scores(md: &Metadata, n_tokens: usize) -> Result<Vec<f32>, TokenizerError> {
    let float = |v: &Value| match v {
        Value::F32(x) => Some(*x),
        Value::F64(x) => Some(*x as f32),
        _ => None,
    };
    per_token(md, keys::SCORES, n_tokens, "a float", float)?.ok_or(TokenizerError::MissingKey { key: keys::SCORES })
}

/// Whether text gets a leading `▁` (`tokenizer.ggml.add_space_prefix`; llama.cpp's default is
/// true for SentencePiece models, Gemma's converter writes false).
pub(super) fn adds_space_prefix(md: &Metadata) -> bool {
    optional_bool(md, keys::ADD_SPACE_PREFIX).unwrap_or(true)
}

/// llama.cpp's converter writes user-defined pieces with spaces where the piece had `▁`;
/// tokenizer.json keeps the `▁`, and so must the vocabulary for ids to match.
pub(super) fn restore_user_defined(token: &str) -> String {
    token.replace(' ', SPACE)
}

/// BPE merges as Hugging Face's SentencePiece converter derives them: `(l, r)` for every piece
/// `l + r` whose halves are both pieces, ranked by the merged piece's score (higher first),
/// then longer left half, then longer right half; ties keep piece order, then the halves' ids.
/// Control and user-defined pieces rank with SentencePiece's score for them, 0: llama.cpp's
/// converter overwrites it with -1000.
fn merges(tokens: &[String], scores: &[f32], types: Option<&[i64]>) -> Vec<(String, String)> {
    let ty = |id: usize| types.map_or(0, |t| t[id]);
    let mut ids: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    for (id, tok) in tokens.iter().enumerate() {
        ids.entry(tok.as_str()).or_insert(id);
    }
    // (score, left chars, right chars, merged id, left id, right id, split byte)
    let mut ranked: Vec<(f32, usize, usize, usize, usize, usize, usize)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        // Unused slots (llama.cpp's `[PAD7]` padding) are not pieces tokenizer.json knows.
        if ids.get(piece.as_str()) != Some(&id) || ty(id) == TOKEN_TYPE_UNUSED {
            continue;
        }
        let score = match ty(id) {
            TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED => 0.0,
            _ if scores[id].is_nan() => f32::NEG_INFINITY,
            // + 0.0 turns -0.0 into 0.0: they compare equal in the converter's sort.
            _ => scores[id] + 0.0,
        };
        let n_chars = piece.chars().count();
        for (chars, (split, _)) in piece.char_indices().enumerate().skip(1) {
            let (l, r) = piece.split_at(split);
            if let (Some(&li), Some(&ri)) = (ids.get(l), ids.get(r)) {
                ranked.push((score, chars, n_chars - chars, id, li, ri, split));
            }
        }
    }
    ranked.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then(b.2.cmp(&a.2))
            .then(a.3.cmp(&b.3))
            .then((a.4, a.5).cmp(&(b.4, b.5)))
    });
    ranked
        .into_iter()
        .map(|(_, _, _, id, _, _, split)| {
            let (l, r) = tokens[id].split_at(split);
            (l.to_string(), r.to_string())
        })
        .collect()
}

/// The BPE model, normalizer and decoder of a SentencePiece tokenizer. Added tokens and the
/// bos/eos template are the caller's, shared with the byte-level path.
pub(super) fn sentencepiece(
    md: &Metadata,
    tokens: &[String],
    types: Option<&[i64]>,
    unk: Option<u32>,
) -> Result<Tokenizer, TokenizerError> {
    let scores = scores(md, tokens.len())?;
    let merges = merges(tokens, &scores, types);

    let mut vocab = Vocab::with_capacity(tokens.len());
    for (id, tok) in (0u32..).zip(tokens) {
        vocab.entry(tok.clone()).or_insert(id);
    }
    let mut builder = BPE::builder().vocab_and_merges(vocab, merges).byte_fallback(true).fuse_unk(true);
    if let Some(unk) = unk.and_then(|id| tokens.get(id as usize)) {
        builder = builder.unk_token(unk.clone());
    }
    let bpe = builder.build().map_err(|e| TokenizerError::Build(format!("BPE from SentencePiece pieces: {e}")))?;

    let prefix = adds_space_prefix(md);
    let build = |e: tokenizers::Error| TokenizerError::Build(format!("normalizer: {e}"));
    let spaces = Replace::new(" ", SPACE).map_err(build)?;
    let normalizer: NormalizerWrapper = if prefix {
        NormalizerSequence::new(vec![Prepend::new(SPACE.to_string()).into(), spaces.into()]).into()
    } else {
        spaces.into()
    };
    let mut decoders: Vec<DecoderWrapper> =
        vec![Replace::new(SPACE, " ").map_err(build)?.into(), ByteFallback::new().into(), Fuse::new().into()];
    if prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_normalizer(Some(normalizer));
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn merges_follow_the_merged_pieces_scores() {
        let toks = owned(&["a", "b", "c", "ab", "bc", "abc", "[PAD6]", "ca", "cab"]);
        let scores = [0.0, 0.0, 0.0, -2.0, -1.0, -3.0, 0.0, 0.0, -0.0];
        let m = merges(&toks, &scores, Some(&[1, 1, 1, 1, 1, 1, TOKEN_TYPE_UNUSED, 1, 1]));
        let pairs: Vec<(&str, &str)> = m.iter().map(|(l, r)| (l.as_str(), r.as_str())).collect();
        // transformers' `generate_merges` on the same pieces and scores (the unused slot left out):
        // -0 ties with 0, longer halves first, then bc (-1), ab (-2), abc (-3).
        let want = [("ca", "b"), ("c", "ab"), ("c", "a"), ("b", "c"), ("a", "b"), ("ab", "c"), ("a", "bc")];
        assert_eq!(pairs, want);
    }

    #[test]
    fn user_defined_spaces_become_markers() {
        assert_eq!(restore_user_defined("  x"), "\u{2581}\u{2581}x");
    }
}
