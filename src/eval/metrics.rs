//! Task metrics on generated text, each against the best of several accepted
//! answers: ROUGE-1 and ROUGE-L F-measures (summaries), SQuAD-style token F1
//! and exact match (QA), and containment (retrieval accuracy).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which metric is a prompt's task metric (the one paired tests use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TaskMetric {
    /// 1 when the output contains an answer (case-insensitive), else 0.
    #[default]
    Contains,
    /// Share of the answers the output contains (RULER's multi-value score).
    ContainsAll,
    /// Token F1 after SQuAD normalisation.
    F1,
    /// ROUGE-L F-measure.
    RougeL,
}

impl TaskMetric {
    pub const ALL: [TaskMetric; 4] =
        [TaskMetric::Contains, TaskMetric::ContainsAll, TaskMetric::F1, TaskMetric::RougeL];

    pub fn name(self) -> &'static str {
        match self {
            TaskMetric::Contains => "contains",
            TaskMetric::ContainsAll => "containsall",
            TaskMetric::F1 => "f1",
            TaskMetric::RougeL => "rougel",
        }
    }

    /// This metric's value in a set of scores.
    pub fn pick(self, s: &TaskScores) -> f64 {
        match self {
            TaskMetric::Contains => s.contains,
            TaskMetric::ContainsAll => s.contains_all,
            TaskMetric::F1 => s.f1,
            TaskMetric::RougeL => s.rouge_l,
        }
    }
}

impl fmt::Display for TaskMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TaskMetric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        match t.as_str() {
            "contains" | "accuracy" | "acc" => Ok(TaskMetric::Contains),
            "containsall" | "all" => Ok(TaskMetric::ContainsAll),
            "f1" | "qa" => Ok(TaskMetric::F1),
            "rougel" | "rouge" | "summary" => Ok(TaskMetric::RougeL),
            _ => Err(format!("unknown task metric `{s}`: use contains, containsall, f1 or rougel")),
        }
    }
}

/// Every task metric of one output, each the best over the accepted answers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TaskScores {
    pub contains: f64,
    pub contains_all: f64,
    pub exact_match: f64,
    pub f1: f64,
    pub rouge_1: f64,
    pub rouge_l: f64,
}

/// Scores `output` against `answers` (none: all zero).
pub fn score_answers(output: &str, answers: &[String]) -> TaskScores {
    let best = |f: &dyn Fn(&str) -> f64| answers.iter().map(|a| f(a)).fold(0.0, f64::max);
    let lower = output.to_lowercase();
    let has = |a: &str| !a.is_empty() && lower.contains(&a.to_lowercase());
    let found = answers.iter().filter(|a| has(a)).count();
    TaskScores {
        contains: f64::from(u8::from(found > 0)),
        contains_all: if answers.is_empty() { 0.0 } else { found as f64 / answers.len() as f64 },
        exact_match: best(&|a| f64::from(u8::from(squad_normalize(output) == squad_normalize(a)))),
        f1: best(&|a| token_f1(output, a)),
        rouge_1: best(&|a| rouge_1(output, a)),
        rouge_l: best(&|a| rouge_l(output, a)),
    }
}

/// SQuAD's answer normalisation: lower case, punctuation and the articles
/// a/an/the removed, whitespace collapsed.
pub fn squad_normalize(s: &str) -> String {
    let no_punct: String = s.to_lowercase().chars().filter(|c| !c.is_ascii_punctuation()).collect();
    no_punct.split_whitespace().filter(|w| !matches!(*w, "a" | "an" | "the")).collect::<Vec<_>>().join(" ")
}

/// Token-level F1 of normalised prediction and reference (SQuAD).
pub fn token_f1(prediction: &str, reference: &str) -> f64 {
    let p = squad_normalize(prediction);
    let r = squad_normalize(reference);
    let p: Vec<&str> = p.split_whitespace().collect();
    let r: Vec<&str> = r.split_whitespace().collect();
    overlap_f1(&p, &r)
}

/// ROUGE tokens: lower-cased runs of letters and digits.
fn rouge_tokens(s: &str) -> Vec<String> {
    s.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

/// ROUGE-1 F-measure (unigram overlap, counts clipped).
pub fn rouge_1(prediction: &str, reference: &str) -> f64 {
    let p = rouge_tokens(prediction);
    let r = rouge_tokens(reference);
    let p: Vec<&str> = p.iter().map(String::as_str).collect();
    let r: Vec<&str> = r.iter().map(String::as_str).collect();
    overlap_f1(&p, &r)
}

/// ROUGE-L F-measure (longest common subsequence, beta = 1).
pub fn rouge_l(prediction: &str, reference: &str) -> f64 {
    let p = rouge_tokens(prediction);
    let r = rouge_tokens(reference);
    if p.is_empty() || r.is_empty() {
        return 0.0;
    }
    let lcs = lcs_len(&p, &r) as f64;
    f_measure(lcs / p.len() as f64, lcs / r.len() as f64)
}

fn overlap_f1(p: &[&str], r: &[&str]) -> f64 {
    if p.is_empty() || r.is_empty() {
        return 0.0;
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in r {
        *counts.entry(w).or_default() += 1;
    }
    let mut common = 0usize;
    for w in p {
        if let Some(c) = counts.get_mut(w).filter(|c| **c > 0) {
            *c -= 1;
            common += 1;
        }
    }
    f_measure(common as f64 / p.len() as f64, common as f64 / r.len() as f64)
}

fn f_measure(precision: f64, recall: f64) -> f64 {
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

/// Length of the longest common subsequence, in O(|b|) memory.
fn lcs_len(a: &[String], b: &[String]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diag = 0;
        for (j, y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if x == y { diag + 1 } else { up.max(row[j]) };
            diag = up;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn squad_f1_and_exact_match() {
        assert_eq!(squad_normalize("The  Cat, sat!"), "cat sat");
        assert!(close(token_f1("the cat sat", "a cat sat down"), 2.0 * 1.0 * (2.0 / 3.0) / (1.0 + 2.0 / 3.0)));
        assert_eq!(token_f1("", "x"), 0.0);
        let s = score_answers("The Eiffel Tower.", &["eiffel tower".into(), "paris".into()]);
        assert_eq!(s.exact_match, 1.0);
        assert_eq!(s.f1, 1.0);
        assert_eq!(s.contains, 1.0);
        assert_eq!(score_answers("Tower Eiffel", &["eiffel tower".into()]).contains, 0.0);
    }

    #[test]
    fn rouge_matches_hand_computed_values() {
        // pred: "police killed the gunman", ref: "the gunman was shot by police"
        // unigram overlap 3 (police, the, gunman): P 3/4, R 3/6 -> F 0.6
        assert!(close(rouge_1("police killed the gunman", "the gunman was shot by police"), 0.6));
        // LCS "the gunman" = 2: P 2/4, R 2/6 -> F 0.4
        assert!(close(rouge_l("police killed the gunman", "the gunman was shot by police"), 0.4));
        assert_eq!(rouge_l("", "x"), 0.0);
        assert!(close(rouge_l("a b c", "a b c"), 1.0));
    }

    #[test]
    fn containment_and_metric_names() {
        let s = score_answers("The code is 4821, as stated.", &["4821".into()]);
        assert_eq!(s.contains, 1.0);
        assert_eq!(TaskMetric::Contains.pick(&s), 1.0);
        let two = score_answers("values: 17 and 99", &["17".into(), "42".into()]);
        assert_eq!((two.contains, two.contains_all), (1.0, 0.5));
        assert_eq!(score_answers("anything", &[]).contains, 0.0);
        for m in TaskMetric::ALL {
            assert_eq!(m.name().parse::<TaskMetric>().unwrap(), m);
        }
        assert!("bleu".parse::<TaskMetric>().is_err());
    }
}
