//! Build a `tokenizers::Tokenizer` from the tokenizer embedded in a GGUF file's metadata,
//! so that one `.gguf` file is enough to run a model.
//!
//! | `tokenizer.ggml.model` | families                                  | built by                     |
//! |------------------------|-------------------------------------------|------------------------------|
//! | `gpt2`                 | SmolLM2, Llama 3, Qwen2, GPT-2, StarCoder | this module: byte-level BPE  |
//! | `llama`                | Llama 2, Mistral, Gemma, Phi-3 (SentencePiece) | [`super::gguf_spm`]: BPE with byte fallback, merges from scores |
//!
//! Other models (`bert`, `t5`, `rwkv`, ...) are refused with a message naming them.
//!
//! For `gpt2` the pre-tokenizer is chosen from `tokenizer.ggml.pre` so that it reproduces
//! what each family's own `tokenizer.json` does:
//!
//! | `tokenizer.ggml.pre`                 | pre-tokenizer (as in the family's tokenizer.json)            |
//! |--------------------------------------|--------------------------------------------------------------|
//! | `default`, `gpt-2`, `phi-2`, absent  | ByteLevel with the GPT-2 regex                               |
//! | `smollm`, `starcoder`, `refact`      | Digits(individual) then ByteLevel with the GPT-2 regex       |
//! | `llama-bpe`, `llama3`                | Split(Llama 3 regex, digits in runs of 1-3), ByteLevel; BPE `ignore_merges` |
//! | `qwen2`                              | NFC normalizer, Split(Qwen2 regex, single digits), ByteLevel |
//!
//! The `gpt2` decoder is byte-level. For both models, tokens typed CONTROL (3) or UNKNOWN (2) in
//! `tokenizer.ggml.token_type` become added *special* tokens (matched whole in the input,
//! dropped by `decode(.., skip_special_tokens = true)`); USER_DEFINED (4) tokens become added
//! tokens that are matched whole but not special, which is how llama.cpp's converter derives
//! that type from `tokenizer.json` (`special: false` added tokens). bos (and eos) are added by
//! a template when `add_bos_token` (`add_eos_token`) says so; absent, SentencePiece models and
//! Llama 3 add bos, as llama.cpp does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::{SpecialToken, TemplateProcessing};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

/// GGUF metadata keys read by this module.
pub mod keys {
    pub const MODEL: &str = "tokenizer.ggml.model";
    pub const PRE: &str = "tokenizer.ggml.pre";
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
    pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    pub const SCORES: &str = "tokenizer.ggml.scores";
    pub const ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
    pub const MERGES: &str = "tokenizer.ggml.merges";
    pub const BOS: &str = "tokenizer.ggml.bos_token_id";
    pub const EOS: &str = "tokenizer.ggml.eos_token_id";
    pub const EOT: &str = "tokenizer.ggml.eot_token_id";
    pub const UNK: &str = "tokenizer.ggml.unknown_token_id";
    pub const PAD: &str = "tokenizer.ggml.padding_token_id";
    pub const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
    pub const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
    pub const CHAT_TEMPLATE: &str = "tokenizer.chat_template";
}

/// The `tokenizer.ggml.pre` values this module can build a pre-tokenizer for.
pub const SUPPORTED_PRE: &[&str] =
    &["default", "gpt-2", "phi-2", "smollm", "starcoder", "refact", "llama-bpe", "llama3", "qwen2"];

/// Why a tokenizer could not be built from GGUF metadata.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("reading GGUF file {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("GGUF metadata has no `{key}` key; the file carries no usable tokenizer")]
    MissingKey { key: &'static str },
    #[error("GGUF metadata `{key}` is malformed: {reason}")]
    BadValue { key: &'static str, reason: String },
    #[error("tokenizer model {model:?} (GGUF `tokenizer.ggml.model`) is not supported: {reason}")]
    UnsupportedModel { model: String, reason: &'static str },
    #[error(
        "pre-tokenizer {pre:?} (GGUF `tokenizer.ggml.pre`) is not supported; supported: {}",
        SUPPORTED_PRE.join(", ")
    )]
    UnsupportedPreTokenizer { pre: String },
    #[error("building the tokenizer failed: {0}")]
    Build(String),
}

/// Token ids with a special role, read from GGUF metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// `tokenizer.ggml.bos_token_id`
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id` (end of turn; Llama 3 sets it)
    pub eot: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`
    pub unk: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`
    pub pad: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`; when absent, true for SentencePiece models and Llama 3.
    pub add_bos: bool,
    /// `tokenizer.ggml.add_eos_token`; false when absent.
    pub add_eos: bool,
}

impl SpecialTokens {
    /// Ids that end generation: eos and eot, deduplicated, in that order.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids = Vec::new();
        for id in [self.eos, self.eot].into_iter().flatten() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }
}

/// The pre-tokenizer families we reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PreFamily {
    /// GPT-2: ByteLevel's own regex.
    Gpt2,
    /// SmolLM / StarCoder: every digit split off, then the GPT-2 regex.
    DigitsGpt2,
    /// Llama 3: its own split regex (numbers in runs of 1-3 digits), BPE ignores merges
    /// for words already in the vocabulary.
    Llama3,
    /// Qwen2: NFC, then the Llama 3 style regex with single digits.
    Qwen2,
}

/// Llama 3's split regex, verbatim from its tokenizer.json.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split regex, verbatim from its tokenizer.json (Llama 3's with `\p{N}` alone).
const QWEN2_REGEX: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

impl PreFamily {
    fn from_pre(pre: Option<&str>) -> Result<Self, TokenizerError> {
        Ok(match pre {
            // llama.cpp treats a missing `pre` as "default" (older GPT-2 style conversions).
            None | Some("default" | "gpt-2" | "phi-2") => Self::Gpt2,
            Some("smollm" | "starcoder" | "refact") => Self::DigitsGpt2,
            Some("llama-bpe" | "llama3") => Self::Llama3,
            Some("qwen2") => Self::Qwen2,
            Some(other) => return Err(TokenizerError::UnsupportedPreTokenizer { pre: other.to_string() }),
        })
    }

    fn pre_tokenizer(self) -> Result<PreTokenizerWrapper, TokenizerError> {
        let build = |e: tokenizers::Error| TokenizerError::Build(format!("pre-tokenizer: {e}"));
        let split = |re: &str| {
            Split::new(SplitPattern::Regex(re.to_string()), SplitDelimiterBehavior::Isolated, false).map_err(build)
        };
        // ByteLevel(add_prefix_space, trim_offsets, use_regex)
        Ok(match self {
            Self::Gpt2 => ByteLevel::new(false, true, true).into(),
            Self::DigitsGpt2 => {
                Sequence::new(vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()]).into()
            }
            Self::Llama3 => {
                Sequence::new(vec![split(LLAMA3_REGEX)?.into(), ByteLevel::new(false, true, false).into()]).into()
            }
            Self::Qwen2 => {
                Sequence::new(vec![split(QWEN2_REGEX)?.into(), ByteLevel::new(false, false, false).into()]).into()
            }
        })
    }

    fn ignore_merges(self) -> bool {
        matches!(self, Self::Llama3)
    }

    fn default_add_bos(self) -> bool {
        matches!(self, Self::Llama3)
    }
}

fn as_int(v: &Value) -> Option<i128> {
    Some(match v {
        Value::U8(x) => (*x).into(),
        Value::I8(x) => (*x).into(),
        Value::U16(x) => (*x).into(),
        Value::I16(x) => (*x).into(),
        Value::U32(x) => (*x).into(),
        Value::I32(x) => (*x).into(),
        Value::U64(x) => (*x).into(),
        Value::I64(x) => (*x).into(),
        _ => return None,
    })
}

fn as_u32(v: &Value) -> Option<u32> {
    as_int(v).and_then(|n| u32::try_from(n).ok())
}

fn as_i64(v: &Value) -> Option<i64> {
    as_int(v).and_then(|n| i64::try_from(n).ok())
}

fn type_name(v: &Value) -> String {
    format!("{:?}", v.value_type())
}

pub(super) type Metadata = HashMap<String, Value>;

fn required<'a>(md: &'a Metadata, key: &'static str) -> Result<&'a Value, TokenizerError> {
    md.get(key).ok_or(TokenizerError::MissingKey { key })
}

fn string<'a>(md: &'a Metadata, key: &'static str) -> Result<Option<&'a str>, TokenizerError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(TokenizerError::BadValue { key, reason: format!("expected a string, found {}", type_name(v)) }),
    }
}

fn string_array<'a>(md: &'a Metadata, key: &'static str) -> Result<Vec<&'a str>, TokenizerError> {
    let bad = |reason: String| TokenizerError::BadValue { key, reason };
    let Value::Array(items) = required(md, key)? else {
        return Err(bad(format!("expected an array of strings, found {}", type_name(&md[key]))));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.as_str()),
            other => Err(bad(format!("element {i} is {}, expected a string", type_name(other)))),
        })
        .collect()
}

fn optional_id(md: &Metadata, key: &'static str) -> Option<u32> {
    md.get(key).and_then(as_u32)
}

pub(super) fn optional_bool(md: &Metadata, key: &'static str) -> Option<bool> {
    match md.get(key)? {
        Value::Bool(b) => Some(*b),
        other => as_u32(other).map(|n| n != 0),
    }
}

/// The special token ids (and add-bos/eos flags) stored in GGUF metadata.
/// Missing or non-integer ids read as `None`.
pub fn special_tokens(content: &Content) -> SpecialTokens {
    let md = &content.metadata;
    let sentencepiece = matches!(string(md, keys::MODEL), Ok(Some("llama")));
    let family_add_bos = sentencepiece
        || string(md, keys::PRE)
            .ok()
            .flatten()
            .and_then(|pre| PreFamily::from_pre(Some(pre)).ok())
            .is_some_and(PreFamily::default_add_bos);
    SpecialTokens {
        bos: optional_id(md, keys::BOS),
        eos: optional_id(md, keys::EOS),
        eot: optional_id(md, keys::EOT),
        unk: optional_id(md, keys::UNK),
        pad: optional_id(md, keys::PAD),
        add_bos: optional_bool(md, keys::ADD_BOS).unwrap_or(family_add_bos),
        add_eos: optional_bool(md, keys::ADD_EOS).unwrap_or(false),
    }
}

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_TYPE_UNKNOWN: i64 = 2;
pub(super) const TOKEN_TYPE_CONTROL: i64 = 3;
pub(super) const TOKEN_TYPE_USER_DEFINED: i64 = 4;
pub(super) const TOKEN_TYPE_UNUSED: i64 = 5;

/// Split a GGUF merge `"a b"` into its two parts. As in llama.cpp, the separating space is
/// searched from the second byte on, so a left part that is itself a space survives.
fn split_merge(merge: &str) -> Option<(String, String)> {
    let first_len = merge.chars().next()?.len_utf8();
    let pos = merge[first_len..].find(' ')? + first_len;
    let (a, b) = (&merge[..pos], &merge[pos + 1..]);
    (!b.is_empty()).then(|| (a.to_string(), b.to_string()))
}

/// The two tokenizer models a GGUF file can carry that we rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenizerModel {
    /// `gpt2`: byte-level BPE with explicit merges.
    ByteLevel(PreFamily),
    /// `llama`: SentencePiece pieces and scores.
    SentencePiece,
}

/// Build a `tokenizers::Tokenizer` from the tokenizer stored in a GGUF file's metadata.
pub fn tokenizer_from_gguf(content: &Content) -> Result<Tokenizer, TokenizerError> {
    let md = &content.metadata;

    let model = string(md, keys::MODEL)?.ok_or(TokenizerError::MissingKey { key: keys::MODEL })?;
    let kind = match model {
        "gpt2" => TokenizerModel::ByteLevel(PreFamily::from_pre(string(md, keys::PRE)?)?),
        "llama" => TokenizerModel::SentencePiece,
        _ => {
            return Err(TokenizerError::UnsupportedModel {
                model: model.to_string(),
                reason: "only \"gpt2\" (byte-level BPE) and \"llama\" (SentencePiece) are implemented",
            })
        }
    };

    let raw_tokens = string_array(md, keys::TOKENS)?;
    if raw_tokens.is_empty() {
        return Err(TokenizerError::BadValue { key: keys::TOKENS, reason: "the token list is empty".into() });
    }
    let n_tokens = u32::try_from(raw_tokens.len()).map_err(|_| TokenizerError::BadValue {
        key: keys::TOKENS,
        reason: format!("{} tokens do not fit u32 ids", raw_tokens.len()),
    })?;
    let token_types = token_types(md, raw_tokens.len())?;
    let tokens: Vec<String> =
        match (kind, &token_types) {
            (TokenizerModel::SentencePiece, Some(types)) => raw_tokens
                .iter()
                .zip(types)
                .map(|(t, &ty)| {
                    if ty == TOKEN_TYPE_USER_DEFINED {
                        super::gguf_spm::restore_user_defined(t)
                    } else {
                        t.to_string()
                    }
                })
                .collect(),
            _ => raw_tokens.iter().map(|t| t.to_string()).collect(),
        };

    let specials = special_tokens(content);
    let mut tokenizer = match kind {
        TokenizerModel::ByteLevel(family) => byte_level(md, &tokens, family)?,
        TokenizerModel::SentencePiece => {
            super::gguf_spm::sentencepiece(md, &tokens, token_types.as_deref(), specials.unk)?
        }
    };

    // Added tokens: control/unknown are special; user-defined are matched whole but not special.
    let mut special_added = Vec::new();
    let mut plain_added = Vec::new();
    match &token_types {
        Some(types) => {
            for (tok, ty) in tokens.iter().zip(types) {
                match *ty {
                    TOKEN_TYPE_CONTROL | TOKEN_TYPE_UNKNOWN => special_added.push(tok.as_str()),
                    TOKEN_TYPE_USER_DEFINED => plain_added.push(tok.as_str()),
                    _ => {}
                }
            }
        }
        None => {
            // No types: at least the ids the metadata names are special.
            let mut ids: Vec<u32> = [specials.bos, specials.eos, specials.eot, specials.unk]
                .into_iter()
                .flatten()
                .filter(|&id| id < n_tokens)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            special_added.extend(ids.into_iter().map(|id| tokens[id as usize].as_str()));
        }
    }
    let to_added = |toks: &[&str], special: bool| -> Vec<AddedToken> {
        toks.iter().filter(|t| !t.is_empty()).map(|t| AddedToken::from(*t, special).normalized(false)).collect()
    };
    tokenizer.add_special_tokens(&to_added(&special_added, true));
    tokenizer.add_tokens(&to_added(&plain_added, false));

    if specials.add_bos || specials.add_eos {
        tokenizer.with_post_processor(Some(post_processor(&specials, &tokens)?));
    }
    Ok(tokenizer)
}

/// `tokenizer.ggml.token_type`, when present, one integer per token.
fn token_types(md: &Metadata, n_tokens: usize) -> Result<Option<Vec<i64>>, TokenizerError> {
    per_token(md, keys::TOKEN_TYPE, n_tokens, "an integer", as_i64)
}

/// A metadata array with one `what` per token, when present; `convert` reads one element.
pub(super) fn per_token<T>(
    md: &Metadata,
    key: &'static str,
    n_tokens: usize,
    what: &str,
    convert: impl Fn(&Value) -> Option<T>,
) -> Result<Option<Vec<T>>, TokenizerError> {
    let Some(v) = md.get(key) else {
        return Ok(None);
    };
    let bad = |reason: String| TokenizerError::BadValue { key, reason };
    let Value::Array(items) = v else {
        return Err(bad(format!("expected an array with {what} per token, found {}", type_name(v))));
    };
    if items.len() != n_tokens {
        return Err(bad(format!("has {} entries but `{}` has {n_tokens}", items.len(), keys::TOKENS)));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| convert(v).ok_or_else(|| bad(format!("element {i} is {}, expected {what}", type_name(v)))))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The byte-level BPE model, pre-tokenizer and decoder of a `gpt2` tokenizer.
fn byte_level(md: &Metadata, tokens: &[String], family: PreFamily) -> Result<Tokenizer, TokenizerError> {
    let merges = string_array(md, keys::MERGES)?
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            split_merge(m).ok_or_else(|| TokenizerError::BadValue {
                key: keys::MERGES,
                reason: format!("merge {i} ({m:?}) is not two tokens separated by a space"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    // First occurrence wins when a token string repeats.
    let mut vocab = Vocab::with_capacity(tokens.len());
    for (id, tok) in (0u32..).zip(tokens) {
        vocab.entry(tok.clone()).or_insert(id);
    }

    let bpe =
        BPE::builder().vocab_and_merges(vocab, merges).ignore_merges(family.ignore_merges()).build().map_err(|e| {
            TokenizerError::BadValue { key: keys::MERGES, reason: format!("does not fit `{}`: {e}", keys::TOKENS) }
        })?;

    let mut tokenizer = Tokenizer::new(bpe);
    if family == PreFamily::Qwen2 {
        tokenizer.with_normalizer(Some(NFC));
    }
    tokenizer.with_pre_tokenizer(Some(family.pre_tokenizer()?));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    Ok(tokenizer)
}

/// A TemplateProcessing that adds bos and/or eos, in the shape Llama 3's tokenizer.json uses.
fn post_processor(specials: &SpecialTokens, tokens: &[String]) -> Result<TemplateProcessing, TokenizerError> {
    let lookup = |key: &'static str, id: Option<u32>| -> Result<SpecialToken, TokenizerError> {
        let id = id.ok_or(TokenizerError::MissingKey { key })?;
        let text = tokens.get(id as usize).ok_or_else(|| TokenizerError::BadValue {
            key,
            reason: format!("id {id} is outside the {} tokens", tokens.len()),
        })?;
        let name = if key == keys::BOS { "bos" } else { "eos" };
        SpecialToken::new(name.into(), vec![id], vec![text.clone()]).map_err(|e| TokenizerError::Build(e.to_string()))
    };
    let mut single = Vec::new();
    let mut pair = Vec::new();
    let mut special = Vec::new();
    if specials.add_bos {
        special.push(lookup(keys::BOS, specials.bos)?);
        single.push("bos");
        pair.push("bos");
    }
    single.push("$A");
    pair.push("$A");
    if specials.add_eos {
        special.push(lookup(keys::EOS, specials.eos)?);
        single.push("eos");
        pair.push("eos");
    }
    if specials.add_bos {
        pair.push("bos:1");
    }
    pair.push("$B:1");
    if specials.add_eos {
        pair.push("eos:1");
    }
    TemplateProcessing::builder()
        .try_single(single)
        .and_then(|b| b.try_pair(pair))
        .map_err(TokenizerError::Build)?
        .special_tokens(special)
        .build()
        .map_err(|e| TokenizerError::Build(e.to_string()))
}

/// Read a GGUF file's metadata and build its tokenizer and special tokens.
pub fn tokenizer_from_gguf_path(path: &Path) -> Result<(Tokenizer, SpecialTokens), TokenizerError> {
    let read_err = |message: String| TokenizerError::Read { path: path.to_path_buf(), message };
    let mut file = std::fs::File::open(path).map_err(|e| read_err(e.to_string()))?;
    let content = Content::read(&mut file).map_err(|e| read_err(e.to_string()))?;
    Ok((tokenizer_from_gguf(&content)?, special_tokens(&content)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::VersionedMagic;

    fn strs(v: &[&str]) -> Value {
        Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect())
    }

    /// A tiny byte-level BPE: "a", "b", "Ġ" (space), merges to "ab", "Ġa", "Ġab" (via "Ġ ab").
    fn tiny() -> Metadata {
        let mut md = Metadata::new();
        md.insert(keys::MODEL.into(), Value::String("gpt2".into()));
        md.insert(keys::PRE.into(), Value::String("smollm".into()));
        md.insert(keys::TOKENS.into(), strs(&["<s>", "</s>", "a", "b", "Ġ", "ab", "Ġa", "Ġab", "1", "<x>"]));
        md.insert(
            keys::TOKEN_TYPE.into(),
            Value::Array([3, 3, 1, 1, 1, 1, 1, 1, 1, 4].into_iter().map(Value::I32).collect()),
        );
        md.insert(keys::MERGES.into(), strs(&["a b", "Ġ a", "Ġ ab"]));
        md.insert(keys::BOS.into(), Value::U32(0));
        md.insert(keys::EOS.into(), Value::U32(1));
        md
    }

    fn content(metadata: Metadata) -> Content {
        Content { magic: VersionedMagic::GgufV3, metadata, tensor_infos: HashMap::new(), tensor_data_offset: 0 }
    }

    fn build(md: Metadata) -> Result<Tokenizer, TokenizerError> {
        tokenizer_from_gguf(&content(md))
    }

    fn err_of(md: Metadata) -> String {
        build(md).expect_err("expected an error").to_string()
    }

    #[test]
    fn tiny_tokenizer_encodes_and_decodes() {
        let tok = build(tiny()).unwrap();
        let enc = tok.encode("ab ab<s>a11", false).unwrap();
        assert_eq!(enc.get_ids(), &[5, 7, 0, 2, 8, 8]);
        assert_eq!(tok.decode(enc.get_ids(), false).unwrap(), "ab ab<s>a11");
        assert_eq!(tok.decode(enc.get_ids(), true).unwrap(), "ab aba11");
        assert_eq!(tok.get_vocab_size(true), 10);
    }

    #[test]
    fn user_defined_tokens_are_added_but_not_special() {
        let tok = build(tiny()).unwrap();
        let ids = tok.encode("a<x>b", false).unwrap().get_ids().to_vec();
        assert_eq!(ids, vec![2, 9, 3]);
        // Not special: kept when skipping special tokens.
        assert_eq!(tok.decode(&ids, true).unwrap(), "a<x>b");
    }

    #[test]
    fn add_bos_adds_a_post_processor() {
        let mut md = tiny();
        md.insert(keys::ADD_BOS.into(), Value::Bool(true));
        let tok = build(md).unwrap();
        assert_eq!(tok.encode("ab", true).unwrap().get_ids(), &[0, 5]);
        assert_eq!(tok.encode("ab", false).unwrap().get_ids(), &[5]);
    }

    #[test]
    fn missing_tokens_is_named() {
        let mut md = tiny();
        md.remove(keys::TOKENS);
        let e = err_of(md);
        assert!(e.contains("tokenizer.ggml.tokens"), "{e}");
    }

    #[test]
    fn missing_model_is_named() {
        let mut md = tiny();
        md.remove(keys::MODEL);
        let e = err_of(md);
        assert!(e.contains("tokenizer.ggml.model"), "{e}");
    }

    #[test]
    fn missing_merges_is_named() {
        let mut md = tiny();
        md.remove(keys::MERGES);
        let e = err_of(md);
        assert!(e.contains("tokenizer.ggml.merges"), "{e}");
    }

    #[test]
    fn unknown_model_is_refused_by_name() {
        let mut md = tiny();
        md.insert(keys::MODEL.into(), Value::String("bert".into()));
        let e = err_of(md);
        assert!(e.contains("\"bert\"") && e.contains("SentencePiece"), "{e}");
    }

    /// A tiny SentencePiece vocabulary: bos/eos, bytes for "é" (C3 A9), pieces ranked by score.
    fn tiny_spm() -> Metadata {
        let mut md = Metadata::new();
        md.insert(keys::MODEL.into(), Value::String("llama".into()));
        let toks =
            ["<unk>", "<s>", "</s>", "<0xC3>", "<0xA9>", "\u{2581}", "a", "b", "\u{2581}a", "ab", "\u{2581}ab", "<t>"];
        md.insert(keys::TOKENS.into(), strs(&toks));
        let scores = [0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, 0.0];
        md.insert(keys::SCORES.into(), Value::Array(scores.into_iter().map(Value::F32).collect()));
        let types = [2, 3, 3, 6, 6, 1, 1, 1, 1, 1, 1, 4];
        md.insert(keys::TOKEN_TYPE.into(), Value::Array(types.into_iter().map(Value::I32).collect()));
        md.insert(keys::BOS.into(), Value::U32(1));
        md.insert(keys::EOS.into(), Value::U32(2));
        md.insert(keys::UNK.into(), Value::U32(0));
        md
    }

    #[test]
    fn sentencepiece_prefixes_a_space_and_falls_back_to_bytes() {
        let tok = build(tiny_spm()).unwrap();
        // "▁a" (-4) outranks "ab" (-5), then "▁a b" merges to "▁ab": as SentencePiece's scores decide.
        assert_eq!(tok.encode("ab b", false).unwrap().get_ids(), &[10, 5, 7]);
        assert_eq!(tok.encode("é", true).unwrap().get_ids(), &[1, 5, 3, 4]);
        assert_eq!(tok.decode(&[1, 5, 3, 4], true).unwrap(), "é");
        assert_eq!(tok.encode("a<t>a", false).unwrap().get_ids(), &[8, 11, 8]);
        assert!(special_tokens(&content(tiny_spm())).add_bos);
    }

    #[test]
    fn sentencepiece_without_prefix_or_scores() {
        let mut md = tiny_spm();
        md.insert(keys::ADD_SPACE_PREFIX.into(), Value::Bool(false));
        let tok = build(md).unwrap();
        assert_eq!(tok.encode("ab b", false).unwrap().get_ids(), &[9, 5, 7]);
        assert_eq!(tok.decode(&[9, 5, 7], false).unwrap(), "ab b");
        let mut md = tiny_spm();
        md.remove(keys::SCORES);
        let e = err_of(md);
        assert!(e.contains("tokenizer.ggml.scores"), "{e}");
    }

    #[test]
    fn unknown_pre_is_named() {
        let mut md = tiny();
        md.insert(keys::PRE.into(), Value::String("klingon".into()));
        let e = err_of(md);
        assert!(e.contains("klingon") && e.contains("tokenizer.ggml.pre"), "{e}");
    }

    #[test]
    fn tokens_of_wrong_type_are_reported() {
        let mut md = tiny();
        md.insert(keys::TOKENS.into(), Value::U32(3));
        let e = err_of(md);
        assert!(e.contains("tokenizer.ggml.tokens") && e.contains("array"), "{e}");
        let mut md = tiny();
        md.insert(keys::TOKENS.into(), Value::Array(vec![Value::String("a".into()), Value::U8(1)]));
        let e = err_of(md);
        assert!(e.contains("tokenizer.ggml.tokens") && e.contains("element 1"), "{e}");
    }

    #[test]
    fn token_type_length_mismatch_is_reported() {
        let mut md = tiny();
        md.insert(keys::TOKEN_TYPE.into(), Value::Array(vec![Value::I32(1)]));
        let e = err_of(md);
        assert!(e.contains("tokenizer.ggml.token_type"), "{e}");
    }

    #[test]
    fn merge_outside_vocab_is_reported() {
        let mut md = tiny();
        md.insert(keys::MERGES.into(), strs(&["a b", "b q"]));
        let e = err_of(md);
        assert!(e.contains("tokenizer.ggml.merges"), "{e}");
        let mut md = tiny();
        md.insert(keys::MERGES.into(), strs(&["ab"]));
        let e = err_of(md);
        assert!(e.contains("tokenizer.ggml.merges") && e.contains("merge 0"), "{e}");
    }

    #[test]
    fn missing_token_type_still_marks_bos_eos_special() {
        let mut md = tiny();
        md.remove(keys::TOKEN_TYPE);
        let tok = build(md).unwrap();
        let ids = tok.encode("a</s>", false).unwrap().get_ids().to_vec();
        assert_eq!(ids, vec![2, 1]);
        assert_eq!(tok.decode(&ids, true).unwrap(), "a");
    }

    #[test]
    fn special_tokens_are_read() {
        let mut md = tiny();
        md.insert(keys::EOT.into(), Value::I32(1));
        md.insert(keys::PAD.into(), Value::U64(1));
        let sp = special_tokens(&content(md));
        assert_eq!(
            sp,
            SpecialTokens {
                bos: Some(0),
                eos: Some(1),
                eot: Some(1),
                unk: None,
                pad: Some(1),
                add_bos: false,
                add_eos: false,
            }
        );
        assert_eq!(sp.stop_ids(), vec![1]);
    }

    #[test]
    fn llama3_defaults_to_adding_bos() {
        let mut md = tiny();
        md.insert(keys::PRE.into(), Value::String("llama-bpe".into()));
        assert!(special_tokens(&content(md)).add_bos);
        let mut md = tiny();
        md.insert(keys::PRE.into(), Value::String("llama3".into()));
        let tok = build(md).unwrap();
        assert_eq!(tok.encode("ab", true).unwrap().get_ids(), &[0, 5]);
    }

    fn pre_split(family: PreFamily, text: &str) -> Vec<String> {
        use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};
        let mut pts = PreTokenizedString::from(text);
        family.pre_tokenizer().unwrap().pre_tokenize(&mut pts).unwrap();
        pts.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(s, _, _)| s.to_string())
            .collect()
    }

    /// Expected pieces from Python `regex.findall` with each family's tokenizer.json pattern,
    /// then byte-level mapped (space -> Ġ, newline -> Ċ).
    #[test]
    fn family_regexes_split_like_their_tokenizer_json() {
        let text = "I'M 12345 ok!!\n\n  x";
        assert_eq!(pre_split(PreFamily::Llama3, text), ["I", "'M", "Ġ", "123", "45", "Ġok", "!!ĊĊ", "Ġ", "Ġx"]);
        assert_eq!(
            pre_split(PreFamily::Qwen2, text),
            ["I", "'M", "Ġ", "1", "2", "3", "4", "5", "Ġok", "!!ĊĊ", "Ġ", "Ġx"]
        );
        // GPT-2: case-sensitive contractions, digit runs keep their leading space.
        assert_eq!(pre_split(PreFamily::Gpt2, text), ["I", "'", "M", "Ġ12345", "Ġok", "!!", "ĊĊĠ", "Ġx"]);
        // SmolLM: each digit isolated first, so the space before a number stands alone.
        assert_eq!(
            pre_split(PreFamily::DigitsGpt2, text),
            ["I", "'", "M", "Ġ", "1", "2", "3", "4", "5", "Ġok", "!!", "ĊĊĠ", "Ġx"]
        );
    }

    #[test]
    fn split_merge_handles_leading_space() {
        assert_eq!(split_merge("a b"), Some(("a".into(), "b".into())));
        assert_eq!(split_merge("  b"), Some((" ".into(), "b".into())));
        assert_eq!(split_merge("ab"), None);
        assert_eq!(split_merge("a "), None);
        assert_eq!(split_merge(""), None);
    }
}
