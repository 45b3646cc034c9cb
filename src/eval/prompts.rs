//! Prompt sets as JSONL: one JSON object per line,
//!
//! ```text
//! {"id": "q1", "prompt": "...", "reference": "...", "answers": ["..."], "chat": true}
//! ```
//!
//! `id` and `prompt` are required; `reference` (a continuation whose NLL is
//! scored), `answers` (accepted answers for accuracy) and `chat` (wrap in the
//! model's chat template; unset lets the caller decide) are optional. Blank
//! lines are skipped and unknown keys are ignored. Every malformed line is
//! reported, with its 1-based line number, not just the first.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::userio::{read_bounded, BoundedReadError, MAX_PROMPT_SET_BYTES};

/// One prompt of a prompt set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptItem {
    pub id: String,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<bool>,
}

/// One problem on one line of a prompt file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

/// Why a prompt file could not be used.
#[derive(Debug)]
pub enum PromptsError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file could not be read within its size limit, or is not text.
    Read(BoundedReadError),
    /// Every problem found, in line order. `path` is `None` for text parsed
    /// from memory.
    Invalid {
        path: Option<PathBuf>,
        errors: Vec<LineError>,
    },
}

impl fmt::Display for PromptsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromptsError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            PromptsError::Read(e) => write!(f, "{e}"),
            PromptsError::Invalid { path, errors } => {
                let name = path.as_ref().map_or_else(|| "prompts".to_string(), |p| p.display().to_string());
                match errors.as_slice() {
                    [] => write!(f, "{name}: no prompts"),
                    [one] => write!(f, "{name}: line {}: {}", one.line, one.message),
                    many => {
                        write!(f, "{name}: {} problems:", many.len())?;
                        for e in many {
                            write!(f, "\n  line {}: {}", e.line, e.message)?;
                        }
                        Ok(())
                    }
                }
            }
        }
    }
}

impl std::error::Error for PromptsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PromptsError::Io { source, .. } => Some(source),
            PromptsError::Read(_) | PromptsError::Invalid { .. } => None,
        }
    }
}

impl PromptsError {
    /// The per-line problems (empty for I/O errors).
    pub fn line_errors(&self) -> &[LineError] {
        match self {
            PromptsError::Invalid { errors, .. } => errors,
            PromptsError::Io { .. } | PromptsError::Read(_) => &[],
        }
    }
}

/// Read and parse a JSONL prompt file.
pub fn load_prompts(path: impl AsRef<Path>) -> Result<Vec<PromptItem>, PromptsError> {
    let path = path.as_ref();
    let text = read_bounded(path, MAX_PROMPT_SET_BYTES).map_err(|e| match e {
        BoundedReadError::Io { path, source } => PromptsError::Io { path, source },
        other => PromptsError::Read(other),
    })?;
    parse_prompts(&text).map_err(|e| match e {
        PromptsError::Invalid { errors, .. } => PromptsError::Invalid { path: Some(path.to_path_buf()), errors },
        other => other,
    })
}

/// Parse JSONL prompt text. A set with no prompts at all is an error.
pub fn parse_prompts(text: &str) -> Result<Vec<PromptItem>, PromptsError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let item: PromptItem = match serde_json::from_str(raw) {
            Ok(item) => item,
            Err(e) => {
                errors.push(LineError { line, message: describe_json_error(&e) });
                continue;
            }
        };
        let mut bad = false;
        let mut problem = |message: String| {
            errors.push(LineError { line, message });
            bad = true;
        };
        if item.id.trim().is_empty() {
            problem("empty id".into());
        }
        if item.prompt.trim().is_empty() {
            problem(format!("empty prompt (id {:?})", item.id));
        }
        if let Some(answers) = &item.answers {
            if answers.is_empty() {
                problem(format!("\"answers\" is an empty list (id {:?}); leave it out instead", item.id));
            }
        }
        if !item.id.trim().is_empty() {
            if let Some(&first) = first_seen.get(&item.id) {
                problem(format!("duplicate id {:?} (first used on line {first})", item.id));
            } else {
                first_seen.insert(item.id.clone(), line);
            }
        }
        if !bad {
            items.push(item);
        }
    }
    if !errors.is_empty() {
        return Err(PromptsError::Invalid { path: None, errors });
    }
    if items.is_empty() {
        return Err(PromptsError::Invalid { path: None, errors: Vec::new() });
    }
    Ok(items)
}

fn describe_json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => &text,
    };
    if e.is_data() {
        // Type errors: "missing field `prompt`", "invalid type: ...".
        format!("{message} (column {})", e.column())
    } else {
        format!("invalid JSON at column {}: {message}", e.column())
    }
}

/// Serialize prompts as JSONL: one compact object per line, `\n`-terminated.
pub fn to_jsonl(items: &[PromptItem]) -> String {
    let mut out = String::new();
    for item in items {
        out.push_str(&serde_json::to_string(item).expect("prompt items always serialize"));
        out.push('\n');
    }
    out
}

/// Content hash of a prompt set: SHA-256 (lowercase hex) over a canonical
/// serialization of the items in order. Independent of the source file's
/// whitespace, key order and unknown keys; changes if any field, or the
/// order of the items, changes.
pub fn prompt_set_sha256(items: &[PromptItem]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"depthkv-prompt-set-v1\n");
    hasher.update(to_jsonl(items).as_bytes());
    crate::profile::fingerprint::hex(&hasher.finalize())
}

impl PromptItem {
    /// The prompt as the session scores it; `default_chat` applies where the
    /// item does not say.
    pub fn spec(&self, default_chat: bool) -> crate::session::scoring::PromptSpec<'_> {
        crate::session::scoring::PromptSpec {
            text: &self.prompt,
            chat: self.chat.unwrap_or(default_chat),
            reference: self.reference.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_required_and_optional_fields() {
        let text = concat!(
            "{\"id\": \"a\", \"prompt\": \"Hello\"}\n",
            "\n",
            "   \n",
            "{\"id\": \"b\", \"prompt\": \"Q?\", \"reference\": \"R\", \"answers\": [\"x\", \"y\"], \"chat\": true, \"extra\": 1}\r\n",
        );
        let items = parse_prompts(text).unwrap();
        assert_eq!(
            items,
            vec![
                PromptItem { id: "a".into(), prompt: "Hello".into(), reference: None, answers: None, chat: None },
                PromptItem {
                    id: "b".into(),
                    prompt: "Q?".into(),
                    reference: Some("R".into()),
                    answers: Some(vec!["x".into(), "y".into()]),
                    chat: Some(true),
                },
            ]
        );
    }

    #[test]
    fn collects_all_errors_with_line_numbers() {
        let text = [
            r#"{"id": "a", "prompt": "ok"}"#,
            r#"{"id": "b", "prompt": ""}"#,
            r#"not json"#,
            "",
            r#"{"id": "a", "prompt": "again"}"#,
            r#"{"id": "c"}"#,
            r#"{"id": "d", "prompt": "p", "answers": []}"#,
            r#"{"id": "e", "prompt": "p", "chat": "yes"}"#,
            r#"{"id": "f", "prompt": "fine"}"#,
        ]
        .join("\n");
        let err = parse_prompts(&text).unwrap_err();
        let lines: Vec<usize> = err.line_errors().iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 5, 6, 7, 8]);
        let msgs: Vec<&str> = err.line_errors().iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs[0], "empty prompt (id \"b\")");
        assert_eq!(msgs[1], "invalid JSON at column 2: expected ident");
        assert_eq!(msgs[2], "duplicate id \"a\" (first used on line 1)");
        assert_eq!(msgs[3], "missing field `prompt` (column 11)");
        assert!(msgs[4].contains("empty list"));
        assert!(msgs[5].starts_with("invalid type: string \"yes\", expected a boolean"));
        let shown = err.to_string();
        assert!(shown.starts_with("prompts: 6 problems:\n  line 2: empty prompt"));
    }

    #[test]
    fn empty_set_and_bom() {
        assert_eq!(parse_prompts("\n\n").unwrap_err().to_string(), "prompts: no prompts");
        let items = parse_prompts("\u{feff}{\"id\":\"x\",\"prompt\":\"p\"}").unwrap();
        assert_eq!(items[0].id, "x");
    }

    #[test]
    fn load_reports_path() {
        let dir = std::env::temp_dir().join(format!("depthkv-prompts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.jsonl");
        std::fs::write(&path, "{\"id\":\"x\",\"prompt\":\" \"}\n").unwrap();
        let err = load_prompts(&path).unwrap_err();
        assert_eq!(err.to_string(), format!("{}: line 1: empty prompt (id \"x\")", path.display()));
        std::fs::write(&path, "{\"id\":\"x\",\"prompt\":\"p\"}\n").unwrap();
        assert_eq!(load_prompts(&path).unwrap().len(), 1);
        assert!(matches!(load_prompts(dir.join("missing.jsonl")), Err(PromptsError::Io { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn jsonl_round_trip() {
        let items = vec![
            PromptItem {
                id: "1".into(),
                prompt: "line one\nline two \"quoted\"".into(),
                reference: Some("r".into()),
                answers: None,
                chat: Some(false),
            },
            PromptItem {
                id: "2".into(),
                prompt: "p".into(),
                reference: None,
                answers: Some(vec!["a".into()]),
                chat: None,
            },
        ];
        let text = to_jsonl(&items);
        assert_eq!(text.lines().count(), 2);
        assert_eq!(parse_prompts(&text).unwrap(), items);
    }

    #[test]
    fn set_hash_ignores_formatting_but_not_content_or_order() {
        let a = parse_prompts("{\"id\":\"1\",\"prompt\":\"p\"}\n{\"id\":\"2\",\"prompt\":\"q\"}").unwrap();
        let b = parse_prompts(
            "\n{ \"prompt\" : \"p\", \"id\" : \"1\", \"note\": 5 }\n\n{\"id\":\"2\",  \"prompt\":\"q\"}\n",
        )
        .unwrap();
        let h = prompt_set_sha256(&a);
        assert_eq!(h.len(), 64);
        assert_eq!(h, prompt_set_sha256(&b));
        let mut reversed = a.clone();
        reversed.reverse();
        assert_ne!(h, prompt_set_sha256(&reversed));
        let mut edited = a.clone();
        edited[1].prompt.push('!');
        assert_ne!(h, prompt_set_sha256(&edited));
        // Pinned (computed independently) so that an accidental change to the
        // canonical form is noticed: it would invalidate recorded profiles.
        assert_eq!(h, "4babdc13a4112c04135a9e93827cf4333daecbbff827590e44f2435ad9f8a7b9");
    }
}
