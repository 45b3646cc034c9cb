//! Incremental detokenization: text pieces for a growing token sequence.
//!
//! Decoding token by token is wrong for byte-level vocabularies: one
//! character can span several tokens, and a decoder given half of it yields
//! U+FFFD. Decoding the whole sequence every step is right but quadratic. We
//! decode a short window (from the last emitted boundary) and hold text back
//! while it ends in an incomplete character.

use super::tokenizer::TextCodec;

#[derive(Debug, Clone, Default)]
pub struct Detokenizer {
    ids: Vec<u32>,
    /// Start of the decode window: one emitted token of context, so
    /// tokenizers that strip a leading space at the start of a decode agree.
    prefix: usize,
    /// Tokens up to here have been emitted as text.
    read: usize,
}

impl Detokenizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a token; returns the text it completes (empty while a character
    /// is still incomplete).
    pub fn push(&mut self, codec: &TextCodec, id: u32) -> String {
        self.ids.push(id);
        let before = codec.decode(&self.ids[self.prefix..self.read]);
        let after = codec.decode(&self.ids[self.prefix..]);
        if after.ends_with('\u{FFFD}') || after.len() <= before.len() || !after.is_char_boundary(before.len()) {
            return String::new();
        }
        self.prefix = self.read;
        self.read = self.ids.len();
        after[before.len()..].to_string()
    }

    /// Text still held back at the end of a sequence (an incomplete
    /// character is emitted as the decoder renders it).
    pub fn flush(&mut self, codec: &TextCodec) -> String {
        let before = codec.decode(&self.ids[self.prefix..self.read]);
        let after = codec.decode(&self.ids[self.prefix..]);
        self.prefix = self.read;
        self.read = self.ids.len();
        match after.get(before.len()..) {
            Some(rest) if after.starts_with(&before) => rest.to_string(),
            _ => String::new(),
        }
    }

    /// The tokens pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}
