//! Text in and out: the tokenizer, the chat template and the stop tokens.

use super::chat::ChatTemplate;
use super::error::{EngineError, Result};
use super::gguf_tokenizer;
use candle_core::quantized::gguf_file;
use std::path::Path;
use tokenizers::Tokenizer;

pub struct TextCodec {
    pub tokenizer: Tokenizer,
    pub chat: ChatTemplate,
    stop_ids: Vec<u32>,
    bos: Option<u32>,
    /// A special token pieces are decoded after (see [`TextCodec::pieces`]).
    anchor: Option<u32>,
}

impl TextCodec {
    /// Tokenizes `text`; with `chat` the model's chat template wraps it as a
    /// user turn (an error if the model has none).
    pub fn encode_prompt(&self, text: &str, chat: bool) -> Result<Vec<u32>> {
        let text = match chat {
            true if !self.has_chat() => {
                return Err(EngineError::Tokenizer(
                    "this model has no chat template; pass --raw to send the prompt as is".into(),
                ))
            }
            true => self.chat.apply(text),
            false => text.to_string(),
        };
        let enc = self.tokenizer.encode(text.as_str(), false).map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        let mut ids = enc.get_ids().to_vec();
        if let (Some(bos), false) = (self.bos, chat) {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, true).unwrap_or_default()
    }

    /// Text of each token on its own (for token views). Each is decoded after
    /// a special token and cut after it: SentencePiece decoders strip the
    /// leading space of a decode, which would take a word's space off its piece.
    pub fn pieces(&self, ids: &[u32]) -> Vec<String> {
        let decode = |ids: &[u32]| self.tokenizer.decode(ids, false).unwrap_or_default();
        let alone = |i: u32| decode(&[i]);
        let Some(anchor) = self.anchor else {
            return ids.iter().map(|&i| alone(i)).collect();
        };
        let head = decode(&[anchor]);
        ids.iter()
            .map(|&i| decode(&[anchor, i]).strip_prefix(head.as_str()).map_or_else(|| alone(i), str::to_string))
            .collect()
    }

    pub fn is_eos(&self, token: u32) -> bool {
        self.stop_ids.contains(&token)
    }

    /// Whether the model is an instruct model (has a chat template).
    pub fn has_chat(&self) -> bool {
        !matches!(self.chat, ChatTemplate::None)
    }
}

/// A GGUF model: a tokenizer.json beside the file wins, else the tokenizer
/// stored in the GGUF metadata is rebuilt, so the .gguf alone is enough.
pub fn for_gguf(path: &Path, content: &gguf_file::Content) -> Result<TextCodec> {
    let specials = gguf_tokenizer::special_tokens(content);
    let sibling = path.with_file_name("tokenizer.json");
    let tokenizer = if sibling.exists() {
        Tokenizer::from_file(&sibling).map_err(|e| EngineError::Tokenizer(format!("{}: {e}", sibling.display())))?
    } else {
        gguf_tokenizer::tokenizer_from_gguf(content).map_err(|e| EngineError::MissingTokenizer(e.to_string()))?
    };
    let template = content.metadata.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned();
    let chat = ChatTemplate::from_gguf(content);
    let stop_ids = stop_ids(specials.stop_ids(), &template, &tokenizer);
    let anchor = specials.bos.or(specials.eos);
    Ok(TextCodec { tokenizer, chat, stop_ids, bos: specials.bos.filter(|_| specials.add_bos), anchor })
}

/// A Hugging Face folder: tokenizer.json is required; the chat template and
/// special tokens come from tokenizer_config.json when present.
pub fn for_folder(dir: &Path) -> Result<TextCodec> {
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.exists() {
        return Err(EngineError::MissingTokenizer(format!("{} does not exist", tok_path.display())));
    }
    let tokenizer =
        Tokenizer::from_file(&tok_path).map_err(|e| EngineError::Tokenizer(format!("{}: {e}", tok_path.display())))?;
    let cfg: serde_json::Value = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let template = cfg["chat_template"].as_str().map(str::to_string);
    let id = |key: &str| {
        let tok = match &cfg[key] {
            serde_json::Value::String(s) => Some(s.clone()),
            v => v["content"].as_str().map(str::to_string),
        };
        tok.and_then(|t| tokenizer.token_to_id(&t))
    };
    let eos: Vec<u32> = id("eos_token").into_iter().collect();
    let anchor = id("bos_token").or(eos.first().copied());
    let bos = id("bos_token").filter(|_| cfg["add_bos_token"].as_bool().unwrap_or(false));
    let stop_ids = stop_ids(eos, &template, &tokenizer);
    Ok(TextCodec { chat: ChatTemplate::detect(template.as_deref()), stop_ids, bos, anchor, tokenizer })
}

/// The declared end ids plus the end-of-turn marker the chat template uses
/// (`<|im_end|>` for ChatML, `<|eot_id|>` for Llama 3), which some models
/// declare as a different token than their eos.
fn stop_ids(mut ids: Vec<u32>, template: &Option<String>, tokenizer: &Tokenizer) -> Vec<u32> {
    for marker in ["<|im_end|>", "<|eot_id|>"] {
        if template.as_deref().is_some_and(|t| t.contains(marker)) {
            ids.extend(tokenizer.token_to_id(marker));
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}
