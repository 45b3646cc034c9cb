//! Chat prompt formatting for the templates we know, without a Jinja engine.
//!
//! [`ChatTemplate::detect`] recognises a template from its Jinja source (GGUF
//! `tokenizer.chat_template`, or `chat_template` in tokenizer_config.json);
//! [`ChatTemplate::apply`] renders one user turn with the generation prompt, exactly as the
//! Jinja template renders `messages = [{role: user, content}]` with
//! `add_generation_prompt = true`.

use candle_core::quantized::gguf_file::{Content, Value};

/// A chat prompt format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\ncontent<|im_end|>\n` turns (SmolLM2, Qwen2). `default_system` is the
    /// system turn the template inserts when the conversation has none.
    ChatMl { default_system: Option<String> },
    /// Llama 3.0 headers: `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`, the
    /// first turn preceded by `<|begin_of_text|>` (the template's `bos_token`). The rendered
    /// string already holds that BOS: encode it without adding special tokens.
    /// (Llama 3.1+ templates, which insert a dated system turn, are rendered as 3.0.)
    Llama3,
    /// Gemma turns: `<start_of_turn>user\ncontent<end_of_turn>\n<start_of_turn>model\n` after
    /// `<bos>`; a system message is prepended to the user text (Gemma 3's template).
    Gemma,
    /// Mistral / Llama 2 instructions: `<s>[INST] content [/INST]`; a system
    /// message is prepended to the user text.
    MistralInst,
    /// No template: the user text is the prompt.
    None,
}

const SMOLLM2_SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

impl ChatTemplate {
    /// SmolLM2-Instruct's ChatML template, with its default system prompt.
    pub fn smollm2() -> Self {
        Self::ChatMl { default_system: Some(SMOLLM2_SYSTEM.to_string()) }
    }

    /// Recognise a template from its Jinja source; `None` (no template) gives
    /// [`ChatTemplate::None`], as does a template we do not recognise.
    pub fn detect(template: Option<&str>) -> Self {
        let Some(t) = template else {
            return Self::None;
        };
        if t.contains("<|im_start|>") {
            Self::ChatMl { default_system: chatml_default_system(t) }
        } else if t.contains("<|start_header_id|>") {
            Self::Llama3
        } else if t.contains("<start_of_turn>") {
            Self::Gemma
        } else if t.contains("[INST]") {
            Self::MistralInst
        } else {
            Self::None
        }
    }

    /// Detect the template stored in GGUF metadata (`tokenizer.chat_template`).
    pub fn from_gguf(content: &Content) -> Self {
        match content.metadata.get("tokenizer.chat_template") {
            Some(Value::String(t)) => Self::detect(Some(t)),
            _ => Self::None,
        }
    }

    /// The prompt for one user message, ending with the assistant's generation prompt;
    /// the template's default system turn, if any, is included.
    pub fn apply(&self, user: &str) -> String {
        self.apply_with_system(None, user)
    }

    /// As [`apply`](Self::apply), with an explicit system message replacing the default one.
    pub fn apply_with_system(&self, system: Option<&str>, user: &str) -> String {
        match self {
            Self::ChatMl { default_system } => {
                let mut out = String::new();
                if let Some(sys) = system.or(default_system.as_deref()) {
                    out.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
                }
                out.push_str(&format!("<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"));
                out
            }
            Self::Llama3 => {
                let turn = |role: &str, text: &str| {
                    format!("<|start_header_id|>{role}<|end_header_id|>\n\n{}<|eot_id|>", text.trim())
                };
                let mut out = String::from("<|begin_of_text|>");
                if let Some(sys) = system {
                    out.push_str(&turn("system", sys));
                }
                out.push_str(&turn("user", user));
                out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
                out
            }
            Self::Gemma => {
                let text = match system {
                    Some(sys) => format!("{sys}\n\n{user}"),
                    None => user.to_string(),
                };
                format!("<bos><start_of_turn>user\n{}<end_of_turn>\n<start_of_turn>model\n", text.trim())
            }
            Self::MistralInst => {
                let text = match system {
                    Some(sys) => format!("{sys}\n\n{user}"),
                    None => user.to_string(),
                };
                format!("<s>[INST] {} [/INST]", text.trim())
            }
            Self::None => user.to_string(),
        }
    }
}

/// The system prompt a ChatML template emits as a literal when the conversation has none:
/// a string literal that starts `<|im_start|>system` + newline and holds `<|im_end|>`.
/// Literals that only open the system turn (content concatenated after) are skipped.
fn chatml_default_system(template: &str) -> Option<String> {
    const MARK: &str = "<|im_start|>system";
    let mut from = 0;
    while let Some(found) = template[from..].find(MARK) {
        let start = from + found;
        from = start + MARK.len();
        let quote = match template[..start].chars().next_back() {
            Some(q @ ('\'' | '"')) => q,
            _ => continue,
        };
        let rest = &template[from..];
        let Some(body) = rest.strip_prefix('\n').or_else(|| rest.strip_prefix("\\n")) else {
            continue;
        };
        let Some(literal) = read_literal(body, quote) else {
            continue;
        };
        if let Some((system, _)) = literal.split_once("<|im_end|>") {
            if !system.is_empty() {
                return Some(system.to_string());
            }
        }
    }
    None
}

/// The rest of a Jinja string literal up to its closing `quote`, unescaped.
fn read_literal(body: &str, quote: char) -> Option<String> {
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c if c == quote => return Some(out),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-Instruct's chat_template, verbatim (real newlines inside the literals).
    const SMOLLM2_JINJA: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    /// Qwen2-Instruct's template (escaped `\n` in the literals).
    const QWEN2_JINJA: &str = r"{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    /// Shape of Qwen2.5's template: a tools branch opens the system turn without a literal
    /// body before the default one appears.
    const QWEN25_LIKE: &str = r"{%- if tools %}{{- '<|im_start|>system\n' }}{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}{%- endif %}{%- else %}{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}{%- endif %}{%- endif %}";

    const PLAIN_CHATML: &str = r"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    const LLAMA3_JINJA: &str = r"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

    #[test]
    fn smollm2_template_is_detected_with_its_default_system() {
        assert_eq!(ChatTemplate::detect(Some(SMOLLM2_JINJA)), ChatTemplate::smollm2());
    }

    #[test]
    fn smollm2_single_user_message() {
        // Output of jinja2 rendering SMOLLM2_JINJA with one user message "Hi" and
        // add_generation_prompt=True.
        assert_eq!(
            ChatTemplate::smollm2().apply("Hi"),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn explicit_system_replaces_the_default() {
        assert_eq!(
            ChatTemplate::smollm2().apply_with_system(Some("Be terse."), "Hi"),
            "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn user_text_is_not_trimmed_in_chatml() {
        let p = ChatTemplate::detect(Some(PLAIN_CHATML)).apply(" a\n");
        assert_eq!(p, "<|im_start|>user\n a\n<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn qwen2_default_system() {
        assert_eq!(
            ChatTemplate::detect(Some(QWEN2_JINJA)).apply("Hi"),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            ChatTemplate::detect(Some(QWEN25_LIKE)),
            ChatTemplate::ChatMl {
                default_system: Some("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.".into())
            }
        );
    }

    #[test]
    fn plain_chatml_has_no_default_system() {
        assert_eq!(ChatTemplate::detect(Some(PLAIN_CHATML)), ChatTemplate::ChatMl { default_system: None });
    }

    #[test]
    fn llama3() {
        let t = ChatTemplate::detect(Some(LLAMA3_JINJA));
        assert_eq!(t, ChatTemplate::Llama3);
        assert_eq!(
            t.apply(" Hi \n"),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        assert_eq!(
            t.apply_with_system(Some("Be terse."), "Hi"),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn no_or_unknown_template_passes_text_through() {
        assert_eq!(ChatTemplate::detect(None), ChatTemplate::None);
        assert_eq!(ChatTemplate::detect(Some("{{ messages[0]['content'] }}")), ChatTemplate::None);
        assert_eq!(ChatTemplate::None.apply("Hi"), "Hi");
    }

    #[test]
    fn escaped_quotes_in_the_default_system() {
        let t = r#"{{ '<|im_start|>system\nYou\'re "nice".<|im_end|>\n' }}"#;
        assert_eq!(
            ChatTemplate::detect(Some(t)),
            ChatTemplate::ChatMl { default_system: Some("You're \"nice\".".into()) }
        );
    }

    #[test]
    fn gemma_and_mistral_templates_render_one_user_turn() {
        let gemma =
            ChatTemplate::detect(Some("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n"));
        assert_eq!(gemma, ChatTemplate::Gemma);
        assert_eq!(gemma.apply("Hi"), "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
        let mistral = ChatTemplate::detect(Some(
            "{{ bos_token }}{% for m in messages %}{{ '[INST] ' + m['content'] + ' [/INST]' }}",
        ));
        assert_eq!(mistral, ChatTemplate::MistralInst);
        assert_eq!(mistral.apply_with_system(Some("Be brief."), "Hi"), "<s>[INST] Be brief.\n\nHi [/INST]");
    }
}
