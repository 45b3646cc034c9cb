//! Prompt sets in the formats people already have, turned into eval items:
//!
//! - `native`: our JSONL (`prompts`), plus an optional `"metric"` key.
//! - `longbench`: `input`, `context`, `answers`, `all_classes` (and `dataset`,
//!   `_id`): the question after the context, a chat turn, the metric by
//!   dataset (QA token F1, summaries ROUGE-L, classification and passage
//!   retrieval containment).
//! - `ruler`: RULER's prepared JSONL (`input` already holds context and
//!   question, `outputs` the values, optional `answer_prefix`): scored as the
//!   share of values found (RULER's `string_match_all`).
//! - `kvpress`: kvpress's evaluation columns (`context`, `question`,
//!   `answer_prefix`, `answers`): context then question in one user turn,
//!   the answer prefix after the assistant header, as kvpress's pipeline does.
//!
//! Every line may carry `"metric"` (contains, containsall, f1, rougel) to
//! override the format's choice. All malformed lines are reported at once.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde_json::Value;

use super::metrics::TaskMetric;
use super::prompts::{parse_prompts, LineError, PromptItem, PromptsError};

/// A prompt with how its output is scored.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalItem {
    pub item: PromptItem,
    pub metric: TaskMetric,
    /// Text that starts the assistant's answer (after the chat template's
    /// generation prompt), e.g. "Answer:".
    pub answer_prefix: Option<String>,
}

impl EvalItem {
    pub fn new(item: PromptItem) -> Self {
        EvalItem { item, metric: TaskMetric::Contains, answer_prefix: None }
    }

    /// Folds an answer prefix into the prompt text: under the chat template
    /// (`render` applies it) the prefix follows the generation prompt and the
    /// item is then sent as is; without one it is appended.
    pub fn with_prefix_rendered(mut self, default_chat: bool, render: &dyn Fn(&str) -> String) -> Self {
        let Some(prefix) = self.answer_prefix.take() else { return self };
        if self.item.chat.unwrap_or(default_chat) {
            self.item.prompt = format!("{}{prefix}", render(&self.item.prompt));
            self.item.chat = Some(false);
        } else {
            self.item.prompt.push_str(&prefix);
        }
        self
    }
}

/// Which layout a prompt file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptFormat {
    /// Decide from the first line's keys.
    Auto,
    Native,
    LongBench,
    Ruler,
    Kvpress,
}

impl FromStr for PromptFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "native" | "depthkv" => Ok(Self::Native),
            "longbench" => Ok(Self::LongBench),
            "ruler" => Ok(Self::Ruler),
            "kvpress" => Ok(Self::Kvpress),
            other => Err(format!("unknown prompt format `{other}`: use auto, native, longbench, ruler or kvpress")),
        }
    }
}

impl fmt::Display for PromptFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::LongBench => "longbench",
            Self::Ruler => "ruler",
            Self::Kvpress => "kvpress",
        })
    }
}

/// Guesses the format from the keys of the first JSON line.
pub fn detect_format(text: &str) -> PromptFormat {
    let first = text.lines().map(|l| l.trim_start_matches('\u{feff}').trim()).find(|l| !l.is_empty());
    let Some(Value::Object(o)) = first.and_then(|l| serde_json::from_str::<Value>(l).ok()) else {
        return PromptFormat::Native;
    };
    let has = |k: &str| o.contains_key(k);
    if has("prompt") {
        PromptFormat::Native
    } else if has("context") && has("question") {
        PromptFormat::Kvpress
    } else if has("context") && has("input") {
        PromptFormat::LongBench
    } else if has("input") && has("outputs") {
        PromptFormat::Ruler
    } else {
        PromptFormat::Native
    }
}

/// Reads and converts a prompt file.
pub fn load_eval_items(path: &Path, format: PromptFormat) -> Result<Vec<EvalItem>, PromptsError> {
    // The same size limit as every other prompt set (a /dev/zero never fills memory).
    let text = crate::userio::read_bounded(path, crate::userio::MAX_PROMPT_SET_BYTES).map_err(|e| match e {
        crate::userio::BoundedReadError::Io { path, source } => PromptsError::Io { path, source },
        other => PromptsError::Read(other),
    })?;
    parse_eval_items(&text, format).map_err(|e| match e {
        PromptsError::Invalid { errors, .. } => PromptsError::Invalid { path: Some(path.to_path_buf()), errors },
        other => other,
    })
}

/// Converts prompt text in `format` (resolving `Auto` first).
pub fn parse_eval_items(text: &str, format: PromptFormat) -> Result<Vec<EvalItem>, PromptsError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let format = if format == PromptFormat::Auto { detect_format(text) } else { format };
    let lines: Vec<(usize, &str)> =
        text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty()).collect();
    if format == PromptFormat::Native {
        let items = parse_prompts(text)?;
        let mut errors = Vec::new();
        let metrics: Vec<TaskMetric> =
            lines.iter().map(|&(line, raw)| line_metric(raw, line, &mut errors).unwrap_or_default()).collect();
        if !errors.is_empty() {
            return Err(PromptsError::Invalid { path: None, errors });
        }
        return Ok(items
            .into_iter()
            .zip(metrics)
            .map(|(item, metric)| EvalItem { metric, ..EvalItem::new(item) })
            .collect());
    }
    let mut items: Vec<(usize, EvalItem)> = Vec::new();
    let mut errors = Vec::new();
    for &(line, raw) in &lines {
        let converted = match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(o)) => convert(format, &o, line),
            Ok(_) => Err("expected a JSON object".to_string()),
            Err(e) => Err(format!("invalid JSON at column {}", e.column())),
        };
        match converted {
            Ok(mut e) => {
                if let Some(m) = line_metric(raw, line, &mut errors) {
                    e.metric = m;
                }
                items.push((line, e));
            }
            Err(message) => errors.push(LineError { line, message }),
        }
    }
    let mut seen = std::collections::HashMap::new();
    for (line, e) in &items {
        if let Some(first) = seen.insert(e.item.id.clone(), *line) {
            let message = format!("duplicate id {:?} (first used on line {first})", e.item.id);
            errors.push(LineError { line: *line, message });
        }
    }
    errors.sort_by_key(|e| e.line);
    if !errors.is_empty() || items.is_empty() {
        return Err(PromptsError::Invalid { path: None, errors });
    }
    Ok(items.into_iter().map(|(_, e)| e).collect())
}

/// The line's `"metric"` override, if any (a bad name is reported).
fn line_metric(raw: &str, line: usize, errors: &mut Vec<LineError>) -> Option<TaskMetric> {
    let v: Value = serde_json::from_str(raw).ok()?;
    let m = v.get("metric")?;
    match m.as_str().map(str::parse::<TaskMetric>) {
        Some(Ok(m)) => Some(m),
        Some(Err(message)) => {
            errors.push(LineError { line, message });
            None
        }
        None => {
            errors.push(LineError { line, message: "\"metric\" must be a string".into() });
            None
        }
    }
}

type Object = serde_json::Map<String, Value>;

fn text_field(o: &Object, key: &str) -> Result<String, String> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("\"{key}\" must be a string")),
        None => Err(format!("missing \"{key}\"")),
    }
}

fn opt_text(o: &Object, key: &str) -> Result<Option<String>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => text_field(o, key).map(Some),
    }
}

/// A list of strings, or one string as a list of one.
fn answers_field(o: &Object, key: &str) -> Result<Vec<String>, String> {
    let list = match o.get(key) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(format!("\"{key}\" must hold strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("\"{key}\" must be a list of strings")),
        None => return Err(format!("missing \"{key}\"")),
    };
    if list.iter().all(|a| a.trim().is_empty()) {
        return Err(format!("\"{key}\" has no non-empty answer"));
    }
    Ok(list)
}

fn id_field(o: &Object, keys: &[&str], prefix: &str, line: usize) -> String {
    keys.iter()
        .find_map(|k| match o.get(*k) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(format!("{prefix}-{n}")),
            _ => None,
        })
        .unwrap_or_else(|| format!("{prefix}-line{line}"))
}

fn convert(format: PromptFormat, o: &Object, line: usize) -> Result<EvalItem, String> {
    match format {
        PromptFormat::LongBench => longbench(o, line),
        PromptFormat::Ruler => ruler(o, line),
        PromptFormat::Kvpress => kvpress(o, line),
        PromptFormat::Native | PromptFormat::Auto => unreachable!("handled by the caller"),
    }
}

/// LongBench datasets scored by ROUGE-L and by containment; the rest (QA) by token F1.
const LONGBENCH_SUMMARY: [&str; 4] = ["gov_report", "qmsum", "multi_news", "vcsum"];
const LONGBENCH_CONTAINS: [&str; 5] = ["passage_retrieval_en", "passage_retrieval_zh", "passage_count", "trec", "lsht"];

fn longbench(o: &Object, line: usize) -> Result<EvalItem, String> {
    let context = text_field(o, "context")?;
    let input = text_field(o, "input")?;
    let answers = answers_field(o, "answers")?;
    let dataset = opt_text(o, "dataset")?.unwrap_or_default();
    let dataset = dataset.trim_end_matches("_e");
    let classes: Option<Vec<String>> = match o.get("all_classes") {
        None | Some(Value::Null) => None,
        Some(_) => Some(answers_field(o, "all_classes")?),
    };
    let (metric, prompt) = if LONGBENCH_SUMMARY.contains(&dataset) {
        let ask = if input.trim().is_empty() { String::new() } else { format!(" {input}") };
        (TaskMetric::RougeL, format!("{context}\n\nWrite a short summary of the text above.{ask}\n\nSummary:"))
    } else if let Some(classes) = classes {
        let prompt = format!(
            "{context}\n\nClassify the text below as one of these labels: {}. Give only the label.\n\n{input}",
            classes.join(", ")
        );
        (TaskMetric::Contains, prompt)
    } else if LONGBENCH_CONTAINS.contains(&dataset) {
        (TaskMetric::Contains, format!("{context}\n\n{input}"))
    } else {
        let prompt = format!(
            "Answer the question from the text below. Give only the answer, no other words.\n\n{context}\n\nQuestion: {input}\nAnswer:"
        );
        (TaskMetric::F1, prompt)
    };
    if prompt.trim().is_empty() {
        return Err("empty context and input".into());
    }
    let id = id_field(o, &["_id", "id"], "longbench", line);
    Ok(EvalItem {
        item: PromptItem { id, prompt, reference: None, answers: Some(answers), chat: None },
        metric,
        answer_prefix: None,
    })
}

fn ruler(o: &Object, line: usize) -> Result<EvalItem, String> {
    let input = text_field(o, "input")?;
    if input.trim().is_empty() {
        return Err("empty \"input\"".into());
    }
    let answers = answers_field(o, "outputs")?;
    let id = id_field(o, &["id", "index"], "ruler", line);
    Ok(EvalItem {
        item: PromptItem { id, prompt: input, reference: None, answers: Some(answers), chat: None },
        metric: TaskMetric::ContainsAll,
        answer_prefix: opt_text(o, "answer_prefix")?.filter(|p| !p.is_empty()),
    })
}

fn kvpress(o: &Object, line: usize) -> Result<EvalItem, String> {
    let context = text_field(o, "context")?;
    let question = text_field(o, "question")?;
    if context.trim().is_empty() && question.trim().is_empty() {
        return Err("empty context and question".into());
    }
    let answers = answers_field(o, "answers").or_else(|_| answers_field(o, "answer"))?;
    let id = id_field(o, &["id", "index"], "kvpress", line);
    Ok(EvalItem {
        item: PromptItem {
            id,
            prompt: format!("{context}{question}"),
            reference: None,
            answers: Some(answers),
            chat: None,
        },
        metric: TaskMetric::Contains,
        answer_prefix: opt_text(o, "answer_prefix")?.filter(|p| !p.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_from_keys() {
        assert_eq!(detect_format(r#"{"id":"a","prompt":"p"}"#), PromptFormat::Native);
        assert_eq!(detect_format(r#"{"context":"c","question":"q","answers":["a"]}"#), PromptFormat::Kvpress);
        assert_eq!(detect_format("\n{\"input\":\"q\",\"context\":\"c\",\"answers\":[\"a\"]}"), PromptFormat::LongBench);
        assert_eq!(detect_format(r#"{"index":0,"input":"q","outputs":["1"]}"#), PromptFormat::Ruler);
        assert_eq!(detect_format("not json"), PromptFormat::Native);
        assert_eq!("LongBench".parse::<PromptFormat>().unwrap(), PromptFormat::LongBench);
        assert!("csv".parse::<PromptFormat>().is_err());
    }

    #[test]
    fn native_lines_can_set_a_metric() {
        let t = "{\"id\":\"a\",\"prompt\":\"p\",\"answers\":[\"x\"],\"metric\":\"f1\"}\n\n{\"id\":\"b\",\"prompt\":\"q\"}\n";
        let items = parse_eval_items(t, PromptFormat::Auto).unwrap();
        assert_eq!(items.iter().map(|e| e.metric).collect::<Vec<_>>(), [TaskMetric::F1, TaskMetric::Contains]);
        let bad = parse_eval_items("{\"id\":\"a\",\"prompt\":\"p\",\"metric\":\"bleu\"}", PromptFormat::Native);
        assert!(bad.unwrap_err().to_string().contains("unknown task metric `bleu`"));
    }

    #[test]
    fn errors_name_every_bad_line() {
        let t = "{\"context\":\"c\",\"input\":\"q\"}\n{\"context\":\"c\",\"input\":\"q\",\"answers\":[\"a\"]}\n[1]\n";
        let e = parse_eval_items(t, PromptFormat::LongBench).unwrap_err();
        let lines: Vec<usize> = e.line_errors().iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 3]);
        assert!(e.line_errors()[0].message.contains("missing \"answers\""));
    }

    #[test]
    fn answer_prefix_follows_the_generation_prompt() {
        let e = EvalItem {
            answer_prefix: Some("Answer:".into()),
            ..EvalItem::new(PromptItem {
                id: "x".into(),
                prompt: "Q?".into(),
                reference: None,
                answers: None,
                chat: None,
            })
        };
        let chat = e.clone().with_prefix_rendered(true, &|u| format!("<user>{u}</user><bot>"));
        assert_eq!((chat.item.prompt.as_str(), chat.item.chat), ("<user>Q?</user><bot>Answer:", Some(false)));
        let raw = e.with_prefix_rendered(false, &|_| unreachable!());
        assert_eq!((raw.item.prompt.as_str(), raw.item.chat), ("Q?Answer:", None));
    }
}
