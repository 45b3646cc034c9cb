//! Seeded long-context retrieval tasks, written as prompt JSONL.
//!
//! Each item is a long "haystack" of generated prose about invented towns,
//! with one or more facts planted in it, followed by a question whose answer
//! is in those facts:
//!
//! - `passkey`: a number stated as "the pass key", asked back.
//! - `needle`: a secret code attached to one town, asked by town name.
//! - `multikey`: several labelled keys with values; one label is asked.
//! - `vartrack`: a chain of assignments (`VAR QDMR = 52731`, then
//!   `VAR HTUS = QDMR`, ...) plus a distractor chain; the value of the last
//!   variable of the first chain is asked.
//!
//! The planted fact that is asked about sits at the requested depth (the
//! fraction of the haystack that precedes it). Prompts are sized to an
//! approximate token count with a caller-supplied counter, so the real
//! tokenizer can be used; [`estimate_tokens`] is a rough fallback.
//!
//! Every item has its own random stream, derived from the seed and the
//! item's (kind, length, depth, index), so adding a kind or a length leaves
//! the other items unchanged. The same parameters, seed and counter give
//! byte-identical output with the same build (the generator relies on
//! `rand`'s `StdRng`, whose stream may change between `rand` releases).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use super::formats::EvalItem;
use super::metrics::TaskMetric;
use super::prompts::{to_jsonl, PromptItem};
use crate::profile::io::{write_atomic, ProfileError};

/// Token counter: text in, number of tokens out.
pub type TokenCounter<'a> = &'a dyn Fn(&str) -> usize;

/// Number of labelled keys planted in a `multikey` item.
pub const MULTIKEY_KEYS: usize = 4;
/// Assignments in each `vartrack` chain (the first binds the number).
pub const VARTRACK_HOPS: usize = 4;

/// Which kind of task to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    Passkey,
    Needle,
    MultiKey,
    VariableTracking,
    /// RULER multi-value: one key holds several values; all are asked.
    MultiValue,
    /// RULER multi-query: several keys are asked at once.
    MultiQuery,
    /// RULER common-words extraction: name the most repeated planted words.
    CommonWords,
    /// A question about a planted descriptive fact, scored by token F1.
    Qa,
}

impl TaskKind {
    pub const ALL: [TaskKind; 8] = [
        TaskKind::Passkey,
        TaskKind::Needle,
        TaskKind::MultiKey,
        TaskKind::VariableTracking,
        TaskKind::MultiValue,
        TaskKind::MultiQuery,
        TaskKind::CommonWords,
        TaskKind::Qa,
    ];
    /// The kinds `tasks gen` writes by default (the original retrieval suite).
    pub const DEFAULT: [TaskKind; 4] =
        [TaskKind::Passkey, TaskKind::Needle, TaskKind::MultiKey, TaskKind::VariableTracking];

    /// The name used in ids and on the command line.
    pub fn slug(self) -> &'static str {
        match self {
            TaskKind::Passkey => "passkey",
            TaskKind::Needle => "needle",
            TaskKind::MultiKey => "multikey",
            TaskKind::VariableTracking => "vartrack",
            TaskKind::MultiValue => "multivalue",
            TaskKind::MultiQuery => "multiquery",
            TaskKind::CommonWords => "cwe",
            TaskKind::Qa => "qa",
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

impl FromStr for TaskKind {
    type Err = TaskError;
    fn from_str(s: &str) -> Result<Self, TaskError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "passkey" => Ok(TaskKind::Passkey),
            "needle" => Ok(TaskKind::Needle),
            "multikey" | "multi-key" => Ok(TaskKind::MultiKey),
            "vartrack" | "variable-tracking" => Ok(TaskKind::VariableTracking),
            "multivalue" | "multi-value" => Ok(TaskKind::MultiValue),
            "multiquery" | "multi-query" => Ok(TaskKind::MultiQuery),
            "cwe" | "common-words" => Ok(TaskKind::CommonWords),
            "qa" => Ok(TaskKind::Qa),
            other => Err(TaskError::UnknownKind(other.to_string())),
        }
    }
}

/// What to generate: every combination of kind x length x depth, `count`
/// times each.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskParams {
    pub kinds: Vec<TaskKind>,
    /// Approximate prompt lengths in tokens.
    pub lengths: Vec<usize>,
    /// Depths in [0, 1] at which the asked fact is planted.
    pub depths: Vec<f64>,
    pub count: usize,
    pub seed: u64,
}

impl Default for TaskParams {
    fn default() -> Self {
        TaskParams {
            kinds: TaskKind::DEFAULT.to_vec(),
            lengths: vec![2000, 4000, 8000],
            depths: vec![0.1, 0.5, 0.9],
            count: 1,
            seed: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(
        "unknown task kind {0:?} (expected passkey, needle, multikey, vartrack, multivalue, multiquery, cwe or qa)"
    )]
    UnknownKind(String),
    #[error("no {0} given")]
    Empty(&'static str),
    #[error("depth {0} is outside [0, 1]")]
    BadDepth(f64),
    #[error("depths {0} and {1} give the same id; use depths that differ at two decimals")]
    DuplicateDepth(f64, f64),
    #[error("length {length} is too short for a {kind} task: the instructions, question and planted facts alone take about {needed} tokens")]
    TooShort { kind: TaskKind, length: usize, needed: usize },
    #[error(transparent)]
    Write(#[from] ProfileError),
}

/// Crude token estimate: one token per four characters, rounded up.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

/// Generate all items, ordered by kind, then length, then depth, then index.
pub fn generate_tasks(params: &TaskParams, count_tokens: TokenCounter<'_>) -> Result<Vec<PromptItem>, TaskError> {
    Ok(generate_task_items(params, count_tokens)?.into_iter().map(|e| e.item).collect())
}

/// [`generate_tasks`] with each item's task metric (several values: the
/// share found; QA over the document: token F1).
pub fn generate_task_items(params: &TaskParams, count_tokens: TokenCounter<'_>) -> Result<Vec<EvalItem>, TaskError> {
    check_params(params)?;
    let mut items = Vec::new();
    for &kind in &params.kinds {
        for &length in &params.lengths {
            for &depth in &params.depths {
                for index in 0..params.count {
                    let mut rng = item_rng(params.seed, kind, length, depth, index);
                    let task = plant(kind, depth, &mut rng);
                    let prompt = fit_prompt(&task, kind, length, count_tokens, &mut rng)?;
                    let item = PromptItem {
                        id: format!("{}-{length}-d{depth:.2}-{index}", kind.slug()),
                        prompt,
                        reference: Some(task.answers.join(", ")),
                        answers: Some(task.answers),
                        chat: Some(true),
                    };
                    items.push(EvalItem { metric: task.metric, ..EvalItem::new(item) });
                }
            }
        }
    }
    Ok(items)
}

/// [`generate_task_items`] serialized as JSONL; a metric other than
/// containment is written as the line's `"metric"`.
pub fn generate_tasks_jsonl(params: &TaskParams, count_tokens: TokenCounter<'_>) -> Result<String, TaskError> {
    Ok(items_jsonl(&generate_task_items(params, count_tokens)?))
}

fn items_jsonl(items: &[EvalItem]) -> String {
    let mut out = String::new();
    for e in items {
        let line = to_jsonl(std::slice::from_ref(&e.item));
        match e.metric {
            TaskMetric::Contains => out.push_str(&line),
            m => {
                let mut v: serde_json::Value = serde_json::from_str(&line).expect("prompt items always serialize");
                v["metric"] = serde_json::Value::String(m.name().into());
                out.push_str(&v.to_string());
                out.push('\n');
            }
        }
    }
    out
}

/// Generate and write the JSONL atomically; returns the number of items.
pub fn write_tasks_jsonl(
    params: &TaskParams,
    count_tokens: TokenCounter<'_>,
    path: &Path,
    overwrite: bool,
) -> Result<usize, TaskError> {
    let items = generate_task_items(params, count_tokens)?;
    write_atomic(path, items_jsonl(&items).as_bytes(), overwrite)?;
    Ok(items.len())
}

fn check_params(p: &TaskParams) -> Result<(), TaskError> {
    if p.kinds.is_empty() {
        return Err(TaskError::Empty("task kinds"));
    }
    if p.lengths.is_empty() {
        return Err(TaskError::Empty("lengths"));
    }
    if p.depths.is_empty() {
        return Err(TaskError::Empty("depths"));
    }
    if p.count == 0 {
        return Err(TaskError::Empty("items per combination (count is 0)"));
    }
    for (i, &d) in p.depths.iter().enumerate() {
        if !(0.0..=1.0).contains(&d) {
            return Err(TaskError::BadDepth(d));
        }
        for &e in &p.depths[..i] {
            if format!("{d:.2}") == format!("{e:.2}") {
                return Err(TaskError::DuplicateDepth(e, d));
            }
        }
    }
    Ok(())
}

fn item_rng(seed: u64, kind: TaskKind, length: usize, depth: f64, index: usize) -> StdRng {
    let key = format!("depthkv-tasks-v1|{seed}|{}|{length}|{depth:.6}|{index}", kind.slug());
    let digest = Sha256::digest(key.as_bytes());
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&digest);
    StdRng::from_seed(bytes)
}

/// A task before sizing: the framing text and the facts to plant.
struct Task {
    instruction: String,
    question: String,
    /// (depth, sentence), planted in this order when depths tie.
    plants: Vec<(f64, String)>,
    /// Put each planted statement on a line of its own (VAR assignments).
    plants_on_own_line: bool,
    /// Every value the answer must give (one for most kinds).
    answers: Vec<String>,
    metric: TaskMetric,
    world: prose::World,
}

fn plant(kind: TaskKind, depth: f64, rng: &mut StdRng) -> Task {
    let world = prose::World::new(rng);
    match kind {
        TaskKind::Passkey => {
            let key = rng.random_range(10_000..100_000u32).to_string();
            Task {
                instruction: "Somewhere in the long text below there is a pass key. Read all of it, \
                              find the pass key and keep it in mind: you will be asked for it at the end."
                    .into(),
                question: "What is the pass key? Reply with the number only.".into(),
                plants: vec![(depth, format!("The pass key is {key}. Keep this number in mind: {key}."))],
                plants_on_own_line: false,
                answers: vec![key],
                metric: TaskMetric::Contains,
                world,
            }
        }
        TaskKind::Needle => {
            let code = rng.random_range(1_000_000..10_000_000u32).to_string();
            let town = world.town(rng).to_string();
            Task {
                instruction: "The text below is a collection of notes about small towns. One of the \
                              notes records a secret code. Read carefully; a question about it follows."
                    .into(),
                question: format!("What is the secret code of {town}? Reply with the number only."),
                plants: vec![(depth, format!("A note for the archive: the secret code of {town} is {code}."))],
                plants_on_own_line: false,
                answers: vec![code],
                metric: TaskMetric::Contains,
                world,
            }
        }
        TaskKind::MultiKey => {
            let labels = prose::distinct_labels(rng, MULTIKEY_KEYS);
            let mut values: Vec<u32> = Vec::new();
            while values.len() < MULTIKEY_KEYS {
                let v = rng.random_range(100_000..1_000_000u32);
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            let statement = |label: &str, value: u32| {
                format!("Remember this: the key labelled \"{label}\" holds the value {value}.")
            };
            let mut plants = vec![(depth, statement(&labels[0], values[0]))];
            for k in 1..MULTIKEY_KEYS {
                let d = rng.random_range(0.0..=1.0);
                plants.push((d, statement(&labels[k], values[k])));
            }
            Task {
                instruction: format!(
                    "The text below hides {MULTIKEY_KEYS} labelled keys, each holding a number. Read \
                     everything; you will be asked for the value of one of the keys."
                ),
                question: format!(
                    "What value does the key labelled \"{}\" hold? Reply with the number only.",
                    labels[0]
                ),
                plants,
                plants_on_own_line: false,
                answers: vec![values[0].to_string()],
                metric: TaskMetric::Contains,
                world,
            }
        }
        TaskKind::MultiValue => {
            let town = world.town(rng).to_string();
            let codes = distinct_numbers(rng, MULTI_VALUES, 100_000..1_000_000);
            let plants = spread(depth, codes.iter().map(|c| format!("One of the special codes of {town} is {c}.")));
            Task {
                instruction: format!(
                    "The notes below about small towns mention {MULTI_VALUES} special codes of one town. \
                     Read everything; you will be asked for all of them."
                ),
                question: format!("What are all the special codes of {town}? List every number."),
                plants,
                plants_on_own_line: false,
                answers: codes,
                metric: TaskMetric::ContainsAll,
                world,
            }
        }
        TaskKind::MultiQuery => {
            let labels = prose::distinct_labels(rng, MULTIKEY_KEYS);
            let values = distinct_numbers(rng, MULTIKEY_KEYS, 100_000..1_000_000);
            let statements =
                labels.iter().zip(&values).map(|(l, v)| format!("The key labelled \"{l}\" holds the value {v}."));
            Task {
                instruction: format!(
                    "The text below hides {MULTIKEY_KEYS} labelled keys, each holding a number. Read \
                     everything; you will be asked for the values of two of the keys."
                ),
                question: format!(
                    "What values do the keys labelled \"{}\" and \"{}\" hold? Reply with the two numbers.",
                    labels[0], labels[1]
                ),
                plants: spread(depth, statements),
                plants_on_own_line: false,
                answers: values[..2].to_vec(),
                metric: TaskMetric::ContainsAll,
                world,
            }
        }
        TaskKind::CommonWords => {
            let words = prose::distinct_rare_words(rng, CWE_COMMON + CWE_RARE);
            // Common words are named CWE_REPEATS times, the others once, in a random order.
            let mut named: Vec<&String> = words[..CWE_COMMON].iter().flat_map(|w| vec![w; CWE_REPEATS]).collect();
            named.extend(&words[CWE_COMMON..]);
            let mut plants: Vec<(f64, String)> = named
                .iter()
                .map(|w| (rng.random_range(0.0..=1.0), format!("The word of the day was \"{w}\".")))
                .collect();
            plants.sort_by(|a, b| a.0.total_cmp(&b.0));
            Task {
                instruction: "The notes below record a word of the day now and then. Some words were \
                              chosen many times, others once. Count them as you read."
                    .into(),
                question: format!(
                    "Which {CWE_COMMON} words were chosen as the word of the day most often? Reply with the words only."
                ),
                plants,
                plants_on_own_line: false,
                answers: words[..CWE_COMMON].to_vec(),
                metric: TaskMetric::ContainsAll,
                world,
            }
        }
        TaskKind::Qa => {
            let town = world.town(rng).to_string();
            let (hill, river) = (prose::color(rng), prose::river(rng));
            let answer = format!("on the {hill} hill beside the river {river}");
            Task {
                instruction: "Below is a collection of notes about small towns. Read them; a question \
                              about one of the towns follows."
                    .into(),
                question: format!("Where is the spring fair of {town} held? Answer in a few words."),
                plants: vec![(depth, format!("Every spring the fair of {town} is held {answer}."))],
                plants_on_own_line: false,
                answers: vec![answer],
                metric: TaskMetric::F1,
                world,
            }
        }
        TaskKind::VariableTracking => {
            let names = prose::distinct_var_names(rng, 2 * VARTRACK_HOPS);
            let (chain, decoy) = names.split_at(VARTRACK_HOPS);
            let value = rng.random_range(10_000..100_000u32);
            let mut decoy_value = rng.random_range(10_000..100_000u32);
            while decoy_value == value {
                decoy_value = rng.random_range(10_000..100_000u32);
            }
            let mut plants = Vec::new();
            // The asked chain starts at the requested depth and spreads
            // evenly over the rest of the text, in order.
            for (j, name) in chain.iter().enumerate() {
                let d = depth + (1.0 - depth) * j as f64 / VARTRACK_HOPS as f64;
                let rhs = if j == 0 { value.to_string() } else { chain[j - 1].clone() };
                plants.push((d, format!("VAR {name} = {rhs}")));
            }
            // The decoy chain goes at random, increasing depths.
            let mut decoy_depths: Vec<f64> = (0..VARTRACK_HOPS).map(|_| rng.random_range(0.0..=1.0)).collect();
            decoy_depths.sort_by(f64::total_cmp);
            for (j, (name, d)) in decoy.iter().zip(decoy_depths).enumerate() {
                let rhs = if j == 0 { decoy_value.to_string() } else { decoy[j - 1].clone() };
                plants.push((d, format!("VAR {name} = {rhs}")));
            }
            Task {
                instruction: "The text below contains variable assignments, written as lines that start \
                              with VAR, scattered among unrelated notes. Follow the assignments carefully; \
                              a question about them comes at the end."
                    .into(),
                question: format!("What is the value of VAR {}? Reply with the number only.", chain[VARTRACK_HOPS - 1]),
                plants,
                plants_on_own_line: true,
                answers: vec![value.to_string()],
                metric: TaskMetric::Contains,
                world,
            }
        }
    }
}

/// Values a `multivalue` key holds.
pub const MULTI_VALUES: usize = 4;
/// `cwe`: words chosen often, how often, and words chosen once.
pub const CWE_COMMON: usize = 3;
const CWE_REPEATS: usize = 5;
const CWE_RARE: usize = 6;

/// `n` distinct numbers from `range`, as text.
fn distinct_numbers(rng: &mut StdRng, n: usize, range: std::ops::Range<u32>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(n);
    while out.len() < n {
        let v = rng.random_range(range.clone()).to_string();
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Plants the first statement at `depth` and the rest at random depths.
fn spread(depth: f64, statements: impl Iterator<Item = String>) -> Vec<(f64, String)> {
    // Fixed offsets keep the plants apart and reproducible without another stream.
    statements.enumerate().map(|(i, s)| (if i == 0 { depth } else { (depth + 0.29 * i as f64) % 1.0 }, s)).collect()
}

/// One haystack sentence with its token count; `para_end` marks the last
/// sentence of a paragraph.
struct Sentence {
    text: String,
    tokens: usize,
    para_end: bool,
}

/// Grow or trim the haystack until the whole prompt is within tolerance of
/// `length` tokens (or the adjustment budget is spent).
fn fit_prompt(
    task: &Task,
    kind: TaskKind,
    length: usize,
    count: TokenCounter<'_>,
    rng: &mut StdRng,
) -> Result<String, TaskError> {
    let fixed =
        count(&task.instruction) + count(&task.question) + task.plants.iter().map(|(_, s)| count(s)).sum::<usize>() + 4;
    let min_haystack = 32;
    if length < fixed + min_haystack {
        return Err(TaskError::TooShort { kind, length, needed: fixed + min_haystack });
    }
    let tolerance = (length / 50).max(4);
    let mut hay: Vec<Sentence> = Vec::new();
    let mut hay_tokens = 0usize;
    let mut para_left = 0usize;
    let mut push = |hay: &mut Vec<Sentence>, hay_tokens: &mut usize, rng: &mut StdRng| {
        if para_left == 0 {
            para_left = rng.random_range(3..=6);
        }
        para_left -= 1;
        let text = task.world.sentence(rng);
        let tokens = count(&format!(" {text}")).max(1);
        *hay_tokens += tokens;
        hay.push(Sentence { text, tokens, para_end: para_left == 0 });
    };
    while hay_tokens + fixed < length {
        push(&mut hay, &mut hay_tokens, rng);
    }
    let mut prompt = assemble(task, &hay);
    for _ in 0..8 {
        let actual = count(&prompt);
        if actual.abs_diff(length) <= tolerance {
            break;
        }
        if actual > length {
            let mut over = actual - length;
            while over > tolerance / 2 && hay.len() > 1 {
                let s = hay.pop().expect("len > 1");
                hay_tokens -= s.tokens;
                over = over.saturating_sub(s.tokens);
            }
        } else {
            let target = hay_tokens + (length - actual);
            while hay_tokens < target {
                push(&mut hay, &mut hay_tokens, rng);
            }
        }
        prompt = assemble(task, &hay);
    }
    Ok(prompt)
}

/// Lay out instruction, haystack with the plants at their depths, question.
fn assemble(task: &Task, hay: &[Sentence]) -> String {
    // Token offset of each sentence boundary: before[i] precedes sentence i.
    let mut before = Vec::with_capacity(hay.len() + 1);
    let mut acc = 0usize;
    before.push(0);
    for s in hay {
        acc += s.tokens;
        before.push(acc);
    }
    let total = acc as f64;
    let boundary = |depth: f64| -> usize {
        let target = depth * total;
        // `before` is increasing, so the closest boundary is next to the
        // first one at or past the target.
        let i = before.partition_point(|&b| (b as f64) < target);
        if i == 0 {
            0
        } else if i == before.len() || target - before[i - 1] as f64 <= before[i] as f64 - target {
            i - 1
        } else {
            i
        }
    };
    let mut at: Vec<(usize, usize)> = task.plants.iter().enumerate().map(|(k, (d, _))| (boundary(*d), k)).collect();
    // Sort by boundary, keeping plant order within a boundary.
    at.sort();

    let mut out = String::with_capacity(acc * 5 + 256);
    out.push_str(&task.instruction);
    out.push_str("\n\n");
    let mut next_plant = 0;
    let mut line_start = true;
    for i in 0..=hay.len() {
        while next_plant < at.len() && at[next_plant].0 == i {
            let text = &task.plants[at[next_plant].1].1;
            if task.plants_on_own_line {
                if !line_start {
                    out.push('\n');
                }
                out.push_str(text);
                out.push('\n');
                line_start = true;
            } else {
                if !line_start {
                    out.push(' ');
                }
                out.push_str(text);
                line_start = false;
            }
            next_plant += 1;
        }
        if let Some(s) = hay.get(i) {
            if !line_start {
                out.push(' ');
            }
            out.push_str(&s.text);
            line_start = false;
            if s.para_end && i + 1 < hay.len() {
                out.push_str("\n\n");
                line_start = true;
            }
        }
    }
    while out.ends_with('\n') {
        out.pop();
    }
    out.push_str("\n\n");
    out.push_str(&task.question);
    out
}

/// Procedural filler prose: short, varied, self-contained sentences about
/// invented towns, their machines, trades and weather. Every word list and
/// template here was written for depthkv. The prose never contains digits,
/// so numbers in a prompt always belong to planted facts.
mod prose {
    use rand::rngs::StdRng;
    use rand::Rng;

    fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
        &xs[rng.random_range(0..xs.len())]
    }

    const TOWN_HEADS: &[&str] = &[
        "Al", "Bel", "Cor", "Dun", "Esk", "Fal", "Grim", "Har", "Ist", "Kel", "Lind", "Mor", "Nes", "Orm", "Pell",
        "Rav", "Sten", "Thal", "Umb", "Vel", "Wick", "Yar", "Brae", "Quill",
    ];
    const TOWN_LINKS: &[&str] = &["", "", "a", "e", "en", "ar", "i", "o"];
    const TOWN_TAILS: &[&str] = &[
        "brook", "ford", "mere", "wick", "holm", "stead", "by", "dale", "haven", "moor", "gate", "ton", "bury", "fell",
        "marsh", "combe",
    ];
    const FIRST_NAMES: &[&str] = &[
        "Oswin", "Marta", "Idris", "Tamsin", "Bertil", "Nadia", "Corwen", "Liesl", "Rufus", "Ysolde", "Piet", "Agna",
        "Hollis", "Wren", "Dario", "Maud", "Emrys", "Sabine", "Tobiah", "Greta", "Anselm", "Ilse", "Fenna", "Jory",
    ];
    const TRADES: &[&str] = &[
        "clockmaker",
        "ferryman",
        "weaver",
        "miller",
        "glassblower",
        "cooper",
        "chandler",
        "tinsmith",
        "ropemaker",
        "beekeeper",
        "cartographer",
        "lamplighter",
        "saddler",
        "bookbinder",
    ];
    const MACHINES: &[&str] = &[
        "water pump",
        "tower clock",
        "windmill",
        "printing press",
        "brick kiln",
        "telegraph",
        "treadle lathe",
        "steam boiler",
        "cable ferry",
        "grain elevator",
        "signal lamp",
        "loom",
        "sawmill",
        "bell winch",
    ];
    const PLACES: &[&str] = &[
        "market square",
        "old mill",
        "signal house",
        "ferry landing",
        "town hall",
        "covered bridge",
        "chapel yard",
        "toll gate",
        "granary",
        "harbour wall",
        "lending library",
        "wool exchange",
    ];
    const GOODS: &[&str] = &[
        "barley",
        "copper wire",
        "salt fish",
        "lamp oil",
        "dyed wool",
        "river clay",
        "cider",
        "slate",
        "beeswax",
        "dried fruit",
        "tar",
        "linen",
    ];
    const WEATHER: &[&str] = &[
        "a cold drizzle",
        "a dry easterly wind",
        "thick morning fog",
        "a week of hail",
        "a warm southern breeze",
        "heavy snow",
        "a long grey overcast",
        "sudden thunderstorms",
        "a hard frost",
        "a sticky heat",
    ];
    const SEASONS: &[&str] = &["spring", "summer", "autumn", "winter"];
    const HARVESTS: &[&str] = &["poor", "fair", "generous", "meagre", "late", "splendid", "disappointing"];
    const WINDS: &[&str] = &["fierce", "gusty", "unpredictable", "relentless", "strong"];
    const ADJECTIVES: &[&str] = &[
        "stubborn",
        "ancient",
        "crooked",
        "cheerful",
        "rusty",
        "enormous",
        "narrow",
        "quiet",
        "splendid",
        "lopsided",
        "patient",
        "weathered",
    ];
    const COLORS: &[&str] = &["blue", "brown", "green", "red", "white", "grey", "yellow", "violet"];
    const ANIMALS: &[&str] = &["goats", "herons", "geese", "donkeys", "sheep", "cats", "crows", "ponies"];
    const RIVERS: &[&str] = &["Alm", "Teska", "Urn", "Brisk", "Oda", "Venn", "Lorr", "Sallow", "Mirre"];
    const VERBS: &[&str] =
        &["repaired", "repainted", "taken apart", "moved", "blessed", "inspected", "rebuilt", "cleaned"];
    const TIMES: &[&str] = &[
        "at dawn",
        "before noon",
        "late at night",
        "over a long weekend",
        "during the spring rains",
        "in a single afternoon",
    ];
    const FOODS: &[&str] =
        &["honey cakes", "smoked eel", "plum dumplings", "roasted chestnuts", "onion soup", "pickled pears"];
    const SMALL: &[&str] = &["two", "three", "four", "five", "six", "seven", "eight", "nine", "eleven", "twelve"];
    const CARRIERS: &[&str] = &["mule cart", "river barge", "mail coach", "a boy on a bicycle", "carrier pigeon"];
    const CROPS: &[&str] = &["rye", "turnips", "flax", "clover", "oats", "hops"];
    const LABEL_ADJ: &[&str] = &[
        "amber", "silent", "copper", "frozen", "velvet", "hollow", "golden", "bitter", "crimson", "distant", "gentle",
        "iron",
    ];
    const LABEL_NOUN: &[&str] = &[
        "heron", "lantern", "orchard", "anvil", "harbour", "thistle", "compass", "meadow", "falcon", "cellar",
        "violin", "glacier",
    ];

    // Slots: {town} {town2} {person} {person2} {trade} {machine} {place}
    // {trades} {good} {good2} {weather} {season} {adj} {adj2} {color}
    // {animal} {river} {verb} {time} {food} {small} {carrier} {crop}
    // {harvest} {wind}.
    const TEMPLATES: &[&str] = &[
        "In {town}, the {machine} by the {place} was {verb} {time}.",
        "{person} the {trade} says {weather} settled over {town} for {small} days last {season}.",
        "Most households in {town} keep {animal} and trade {good} at the {place}.",
        "The road from {town} to {town2} follows the river {river} for a while before climbing into the hills.",
        "Every {season}, the people of {town} hold a fair where {good} is weighed on an old brass scale.",
        "Nobody in {town} remembers who built the {machine}, though {person} insists it was a {trade} from the coast.",
        "{weather} rolled in from the west, and the {place} of {town} emptied within the hour.",
        "The {adj} {machine} in {town} needs oiling {small} times a week, or it begins to shriek.",
        "{person} keeps a careful ledger of every load of {good} that passes through {town}.",
        "When the {machine} stopped, the {trades} of {town} gathered around it and argued until dusk.",
        "Travellers say the {place} in {town} always smells faintly of {good}.",
        "There is a {color} door on the {place} that {person} paints again every {season}.",
        "{town} is known for its {adj} bridges, its {adj2} {trades} and its patient {animal}.",
        "The council of {town} voted to replace the {machine}, but the money went to the {place} instead.",
        "Children in {town} learn early that {weather} means the ferry will not run.",
        "A {trade} named {person} once walked from {town} to {town2} in {small} days without stopping at an inn.",
        "The {machine} hums through the night, and most of {town} has long since stopped hearing it.",
        "{person} mended the {machine} with a length of {good}, which surprised everyone.",
        "In {season} the river {river} rises until it laps at the steps of the {place}.",
        "Old maps of {town} show a {place} where there is now only a field of {crop}.",
        "Each morning the {trade} of {town} checks the {machine} before opening the {place}.",
        "Rain or shine, {person} sells {good} from a {color} cart at the edge of {town}.",
        "The winds above {town} are {wind}, so the roofs there are weighted with stones.",
        "Some say the {machine} in {town} was built backwards, since its wheel turns against the current of the {river}.",
        "Letters between {town} and {town2} travel by {carrier} and take about {small} days.",
        "{weather} is common in {town} during {season}.",
        "The {animal} of {town} wander where they please, and nobody minds much.",
        "At the {place}, {person} teaches young {trades} how to look after a {machine}.",
        "A festival in {town} marks the day the {machine} first ran, with music and {food}.",
        "The {place} in {town} was rebuilt after {weather} tore off its roof.",
        "{person} and {person2} have argued for years about the proper way to store {good}.",
        "On quiet evenings in {town} you can hear the {machine} of {town2} across the valley.",
        "The guild of {trades} in {town} meets in the back room of the {place}.",
        "Nobody fishes in the {river} during {season}, out of respect for an old promise.",
        "Visitors to {town} often ask about the {color} tower, and the locals rarely give the same answer twice.",
        "The {machine} was {verb} last {season} and has run smoothly ever since.",
        "{town} sends {good} downriver and takes {good2} in return.",
        "In {town} it is thought unlucky to whistle anywhere near the {machine}.",
        "The harvest around {town} was {harvest} this year, largely because of {weather}.",
        "{person} swears the {animal} of {town} can sense {weather} a day before it arrives.",
        "The {adj} {trade} of {town} eats {food} at the {place} every market day.",
        "A stranger once offered to buy the {machine} of {town}, and the whole town laughed.",
        "Between {town} and {town2} lies a moor where {animal} roam and {crop} grows wild.",
        "The bells of {town} ring {small} times at noon, one for each of its founding families.",
        "{person} claims to have seen the river {river} freeze solid in a single night.",
    ];

    /// The recurring cast of one item: a few towns and people, so the text
    /// reads like notes about one region rather than random names.
    pub struct World {
        towns: Vec<String>,
        people: Vec<&'static str>,
    }

    impl World {
        pub fn new(rng: &mut StdRng) -> World {
            let mut towns: Vec<String> = Vec::new();
            while towns.len() < 6 {
                let name = format!("{}{}{}", pick(rng, TOWN_HEADS), pick(rng, TOWN_LINKS), pick(rng, TOWN_TAILS));
                if !towns.contains(&name) {
                    towns.push(name);
                }
            }
            let mut people: Vec<&'static str> = Vec::new();
            while people.len() < 6 {
                let p = *pick(rng, FIRST_NAMES);
                if !people.contains(&p) {
                    people.push(p);
                }
            }
            World { towns, people }
        }

        pub fn town(&self, rng: &mut StdRng) -> &str {
            pick(rng, &self.towns).as_str()
        }

        /// One filled-in template, first letter capitalized.
        pub fn sentence(&self, rng: &mut StdRng) -> String {
            let template = *pick(rng, TEMPLATES);
            self.fill_template(template, rng)
        }

        fn fill_template(&self, template: &str, rng: &mut StdRng) -> String {
            let mut out = String::with_capacity(template.len() + 40);
            let mut chosen: Vec<(&str, String)> = Vec::new();
            let mut rest = template;
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let close = open + rest[open..].find('}').expect("templates are well formed");
                let slot = &rest[open + 1..close];
                let value = self.fill(slot, &chosen, rng);
                chosen.push((slot, value.clone()));
                out.push_str(&value);
                rest = &rest[close + 1..];
            }
            out.push_str(rest);
            capitalize_first(&out)
        }

        fn fill(&self, slot: &str, chosen: &[(&str, String)], rng: &mut StdRng) -> String {
            // A "2" slot must differ from its base slot, if that was used.
            let (base, must_differ) = match slot.strip_suffix('2') {
                Some(b) => (b, chosen.iter().find(|(s, _)| *s == b).map(|(_, v)| v)),
                None => (slot, None),
            };
            loop {
                let v = match base {
                    "town" => self.town(rng).to_string(),
                    "person" => pick(rng, &self.people).to_string(),
                    "trade" => pick(rng, TRADES).to_string(),
                    "trades" => plural(pick::<&str>(rng, TRADES)),
                    "harvest" => pick(rng, HARVESTS).to_string(),
                    "wind" => pick(rng, WINDS).to_string(),
                    "machine" => pick(rng, MACHINES).to_string(),
                    "place" => pick(rng, PLACES).to_string(),
                    "good" => pick(rng, GOODS).to_string(),
                    "weather" => pick(rng, WEATHER).to_string(),
                    "season" => pick(rng, SEASONS).to_string(),
                    "adj" => pick(rng, ADJECTIVES).to_string(),
                    "color" => pick(rng, COLORS).to_string(),
                    "animal" => pick(rng, ANIMALS).to_string(),
                    "river" => pick(rng, RIVERS).to_string(),
                    "verb" => pick(rng, VERBS).to_string(),
                    "time" => pick(rng, TIMES).to_string(),
                    "food" => pick(rng, FOODS).to_string(),
                    "small" => pick(rng, SMALL).to_string(),
                    "carrier" => pick(rng, CARRIERS).to_string(),
                    "crop" => pick(rng, CROPS).to_string(),
                    other => unreachable!("unknown template slot {other}"),
                };
                if must_differ != Some(&v) {
                    return v;
                }
            }
        }
    }

    fn plural(noun: &str) -> String {
        match noun.strip_suffix("man") {
            Some(stem) => format!("{stem}men"),
            None => format!("{noun}s"),
        }
    }

    fn capitalize_first(s: &str) -> String {
        let mut chars = s.chars();
        match chars.next() {
            Some(c) => c.to_uppercase().chain(chars).collect(),
            None => String::new(),
        }
    }

    /// Invented words for `cwe`: none occurs in the filler prose.
    const RARE_WORDS: &[&str] = &[
        "quorvel", "brindax", "tessaly", "mornick", "fallowin", "drusket", "pellior", "ganwick", "sorrate", "vimble",
        "kestrow", "lunniv", "orbatch", "thimsey", "caddreth", "wolliner",
    ];

    pub fn color(rng: &mut StdRng) -> &'static str {
        pick::<&str>(rng, COLORS)
    }

    pub fn river(rng: &mut StdRng) -> &'static str {
        pick::<&str>(rng, RIVERS)
    }

    /// `n` distinct invented words.
    pub fn distinct_rare_words(rng: &mut StdRng, n: usize) -> Vec<String> {
        assert!(n <= RARE_WORDS.len());
        let mut out: Vec<String> = Vec::with_capacity(n);
        while out.len() < n {
            let w = pick(rng, RARE_WORDS).to_string();
            if !out.contains(&w) {
                out.push(w);
            }
        }
        out
    }

    /// `n` distinct labels like `amber-heron`.
    pub fn distinct_labels(rng: &mut StdRng, n: usize) -> Vec<String> {
        assert!(n <= LABEL_ADJ.len() * LABEL_NOUN.len());
        let mut out: Vec<String> = Vec::with_capacity(n);
        while out.len() < n {
            let l = format!("{}-{}", pick(rng, LABEL_ADJ), pick(rng, LABEL_NOUN));
            if !out.contains(&l) {
                out.push(l);
            }
        }
        out
    }

    /// `n` distinct four-letter upper-case variable names.
    pub fn distinct_var_names(rng: &mut StdRng, n: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(n);
        while out.len() < n {
            let name: String = (0..4).map(|_| char::from(b'A' + rng.random_range(0..26u8))).collect();
            if name != "VAR" && !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    #[cfg(test)]
    pub(super) fn template_count() -> usize {
        TEMPLATES.len()
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use rand::SeedableRng;

        #[test]
        fn every_template_fills_cleanly() {
            let mut rng = StdRng::seed_from_u64(3);
            let world = World::new(&mut rng);
            for t in TEMPLATES {
                for _ in 0..20 {
                    let s = world.fill_template(t, &mut rng);
                    assert!(!s.contains('{') && !s.contains('}'), "{s}");
                    assert!(s.ends_with('.'), "{s}");
                    assert!(s.chars().next().unwrap().is_uppercase(), "{s}");
                    assert!(!s.chars().any(|c| c.is_ascii_digit()), "{s}");
                    assert!(!s.contains("  "), "{s}");
                }
            }
        }

        #[test]
        fn two_slots_differ_from_their_base() {
            let mut rng = StdRng::seed_from_u64(9);
            let world = World::new(&mut rng);
            for _ in 0..200 {
                let s = world.fill_template("{town}|{town2}|{person}|{person2}", &mut rng);
                let parts: Vec<&str> = s.split('|').collect();
                assert_ne!(parts[0], parts[1]);
                assert_ne!(parts[2], parts[3]);
            }
        }

        #[test]
        fn plurals() {
            assert_eq!(plural("ferryman"), "ferrymen");
            assert_eq!(plural("weaver"), "weavers");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::prompts::parse_prompts;
    use std::collections::{HashMap, HashSet};

    fn params(kinds: Vec<TaskKind>, lengths: Vec<usize>, depths: Vec<f64>, count: usize) -> TaskParams {
        TaskParams { kinds, lengths, depths, count, seed: 1234 }
    }

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    /// Text between the instruction and the question.
    fn haystack(prompt: &str) -> &str {
        let start = prompt.find("\n\n").unwrap() + 2;
        let end = prompt.rfind("\n\n").unwrap();
        &prompt[start..end]
    }

    #[test]
    fn same_seed_gives_identical_bytes() {
        let p = TaskParams { count: 2, lengths: vec![600, 1200], ..TaskParams::default() };
        let a = generate_tasks_jsonl(&p, &estimate_tokens).unwrap();
        let b = generate_tasks_jsonl(&p, &estimate_tokens).unwrap();
        assert_eq!(a, b);
        let other = TaskParams { seed: 1, ..p.clone() };
        assert_ne!(a, generate_tasks_jsonl(&other, &estimate_tokens).unwrap());
        // Output is valid prompt JSONL.
        assert_eq!(parse_prompts(&a).unwrap().len(), 4 * 2 * 3 * 2);
    }

    #[test]
    fn items_do_not_depend_on_other_combinations() {
        let small = params(vec![TaskKind::Needle], vec![800], vec![0.5], 1);
        let big = params(vec![TaskKind::Passkey, TaskKind::Needle], vec![500, 800], vec![0.1, 0.5], 2);
        let one = generate_tasks(&small, &estimate_tokens).unwrap();
        let all = generate_tasks(&big, &estimate_tokens).unwrap();
        let same = all.iter().find(|i| i.id == "needle-800-d0.50-0").unwrap();
        assert_eq!(&one[0], same);
    }

    #[test]
    fn ids_order_and_fields() {
        let p = params(vec![TaskKind::Passkey], vec![400], vec![0.1, 0.5], 2);
        let items = generate_tasks(&p, &estimate_tokens).unwrap();
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["passkey-400-d0.10-0", "passkey-400-d0.10-1", "passkey-400-d0.50-0", "passkey-400-d0.50-1"]);
        for item in &items {
            assert_eq!(item.chat, Some(true));
            let answers = item.answers.as_ref().unwrap();
            assert_eq!(answers.len(), 1);
            assert_eq!(item.reference.as_deref(), Some(answers[0].as_str()));
            assert_eq!(answers[0].len(), 5);
            assert!(item.prompt.contains(&format!("The pass key is {}.", answers[0])));
            assert!(item.prompt.ends_with("What is the pass key? Reply with the number only."));
        }
    }

    #[test]
    fn lengths_track_the_counter() {
        for &length in &[1000usize, 4000, 8000] {
            let p = params(TaskKind::ALL.to_vec(), vec![length], vec![0.5], 1);
            for item in generate_tasks(&p, &estimate_tokens).unwrap() {
                let n = estimate_tokens(&item.prompt);
                let tol = (length / 50).max(4);
                assert!(n.abs_diff(length) <= tol, "{}: {n} tokens", item.id);
            }
            // A very different counter (whitespace words) is honoured too.
            for item in generate_tasks(&p, &words).unwrap() {
                let n = words(&item.prompt);
                assert!(n.abs_diff(length) <= (length / 50).max(4), "{}: {n} words", item.id);
            }
        }
    }

    #[test]
    fn needle_sits_at_requested_depth() {
        for &depth in &[0.0, 0.1, 0.5, 0.9, 1.0] {
            let p = params(vec![TaskKind::Passkey, TaskKind::Needle, TaskKind::MultiKey], vec![3000], vec![depth], 2);
            for item in generate_tasks(&p, &estimate_tokens).unwrap() {
                let answer = &item.answers.as_ref().unwrap()[0];
                let hay = haystack(&item.prompt);
                let at = hay.find(answer.as_str()).expect("answer planted");
                let frac = at as f64 / hay.len() as f64;
                assert!((frac - depth).abs() < 0.05, "{}: at {frac:.3}", item.id);
            }
        }
    }

    #[test]
    fn multikey_has_distinct_keys_and_asks_one() {
        let p = params(vec![TaskKind::MultiKey], vec![2000], vec![0.3], 3);
        for item in generate_tasks(&p, &estimate_tokens).unwrap() {
            let hay = haystack(&item.prompt);
            let planted: Vec<&str> = hay.matches("the key labelled \"").collect();
            assert_eq!(planted.len(), MULTIKEY_KEYS);
            let question = item.prompt.rsplit("\n\n").next().unwrap();
            let label = question.split('"').nth(1).unwrap();
            let fact = format!("the key labelled \"{label}\" holds the value {}.", item.answers.as_ref().unwrap()[0]);
            assert_eq!(hay.matches(&fact).count(), 1, "{}", item.id);
        }
    }

    /// Resolve the VAR chains in a prompt the way a reader would.
    fn resolve(prompt: &str, var: &str) -> Option<String> {
        let mut env: HashMap<String, String> = HashMap::new();
        for piece in prompt.split("VAR ").skip(1) {
            let mut it = piece.splitn(2, " = ");
            let (Some(name), Some(rhs)) = (it.next(), it.next()) else {
                continue;
            };
            let rhs: String = rhs.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            let value = if rhs.chars().all(|c| c.is_ascii_digit()) { rhs } else { env.get(&rhs)?.clone() };
            env.insert(name.to_string(), value);
        }
        env.get(var).cloned()
    }

    #[test]
    fn variable_chains_resolve_to_the_answer() {
        let p = params(vec![TaskKind::VariableTracking], vec![1500], vec![0.0, 0.5, 0.9], 3);
        for item in generate_tasks(&p, &estimate_tokens).unwrap() {
            let question = item.prompt.rsplit("\n\n").next().unwrap();
            let var = question.strip_prefix("What is the value of VAR ").unwrap().split('?').next().unwrap();
            let answer = &item.answers.as_ref().unwrap()[0];
            assert_eq!(resolve(&item.prompt, var).as_ref(), Some(answer), "{}", item.id);
            // Two chains of VARTRACK_HOPS assignments each.
            assert_eq!(haystack(&item.prompt).matches("VAR ").count(), 2 * VARTRACK_HOPS);
        }
    }

    #[test]
    fn haystack_is_varied_prose_without_digits() {
        let p = params(vec![TaskKind::Passkey], vec![8000], vec![0.5], 1);
        let item = &generate_tasks(&p, &estimate_tokens).unwrap()[0];
        let answer = &item.answers.as_ref().unwrap()[0];
        let hay = haystack(&item.prompt).replace(answer.as_str(), "");
        assert!(!hay.chars().any(|c| c.is_ascii_digit()));
        let sentences: Vec<&str> =
            hay.split(". ").flat_map(|s| s.split(".\n\n")).map(str::trim).filter(|s| !s.is_empty()).collect();
        let distinct: HashSet<&str> = sentences.iter().copied().collect();
        assert!(sentences.len() > 300, "{} sentences", sentences.len());
        assert!(
            distinct.len() as f64 > 0.9 * sentences.len() as f64,
            "{} distinct of {}",
            distinct.len(),
            sentences.len()
        );
        // Most templates show up in a long haystack.
        let openings: HashSet<String> =
            sentences.iter().map(|s| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ")).collect();
        assert!(openings.len() > prose::template_count() / 2);
        assert!(hay.contains("\n\n"), "paragraph breaks");
    }

    #[test]
    fn rejects_bad_params() {
        let bad = |p: TaskParams| generate_tasks(&p, &estimate_tokens).unwrap_err().to_string();
        assert_eq!(bad(params(vec![], vec![100], vec![0.5], 1)), "no task kinds given");
        assert_eq!(bad(params(vec![TaskKind::Passkey], vec![1000], vec![1.5], 1)), "depth 1.5 is outside [0, 1]");
        assert!(bad(params(vec![TaskKind::Passkey], vec![1000], vec![0.5, 0.501], 1)).contains("same id"));
        let short = bad(params(vec![TaskKind::VariableTracking], vec![50], vec![0.5], 1));
        assert!(short.starts_with("length 50 is too short for a vartrack task"), "{short}");
        assert_eq!("multi-key".parse::<TaskKind>().unwrap(), TaskKind::MultiKey);
        assert_eq!(" VarTrack ".parse::<TaskKind>().unwrap(), TaskKind::VariableTracking);
        assert!("needles".parse::<TaskKind>().is_err());
    }

    #[test]
    fn ruler_families_plant_every_answer_and_carry_their_metric() {
        let kinds = vec![TaskKind::MultiValue, TaskKind::MultiQuery, TaskKind::CommonWords, TaskKind::Qa];
        let p = params(kinds, vec![1500], vec![0.5], 1);
        let items = generate_task_items(&p, &estimate_tokens).unwrap();
        let metrics: Vec<TaskMetric> = items.iter().map(|e| e.metric).collect();
        use TaskMetric::{ContainsAll, F1};
        assert_eq!(metrics, [ContainsAll, ContainsAll, ContainsAll, F1]);
        let counts: Vec<usize> = items.iter().map(|e| e.item.answers.as_ref().unwrap().len()).collect();
        assert_eq!(counts, [MULTI_VALUES, 2, CWE_COMMON, 1]);
        for e in &items {
            let hay = haystack(&e.item.prompt);
            for a in e.item.answers.as_ref().unwrap() {
                assert!(hay.contains(a.as_str()), "{}: {a} not planted", e.item.id);
            }
        }
        // Common words are named more often than any other word of the day.
        let cwe = &items[2].item;
        let named = |w: &str| cwe.prompt.matches(&format!("\"{w}\".")).count();
        for w in cwe.answers.as_ref().unwrap() {
            assert_eq!(named(w), CWE_REPEATS);
        }
        assert_eq!(cwe.prompt.matches("The word of the day was").count(), CWE_COMMON * CWE_REPEATS + CWE_RARE);
        // The metric survives the JSONL round trip.
        let text = generate_tasks_jsonl(&p, &estimate_tokens).unwrap();
        let back = crate::eval::formats::parse_eval_items(&text, crate::eval::formats::PromptFormat::Auto).unwrap();
        assert_eq!(back, items);
    }

    #[test]
    fn writes_jsonl_file() {
        let dir = std::env::temp_dir().join(format!("depthkv-tasks-{}", std::process::id()));
        let path = dir.join("tasks.jsonl");
        let _ = std::fs::remove_dir_all(&dir);
        let p = params(vec![TaskKind::Needle], vec![500], vec![0.5], 2);
        assert_eq!(write_tasks_jsonl(&p, &estimate_tokens, &path, false).unwrap(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, generate_tasks_jsonl(&p, &estimate_tokens).unwrap());
        assert!(write_tasks_jsonl(&p, &estimate_tokens, &path, false).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
