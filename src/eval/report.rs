//! Evaluation results: one row per (method, budget), plus paired
//! comparisons between methods, in a fixed JSON shape:
//!
//! ```json
//! {"results": [{"method": "depthkv", "budget": 0.5, "kl_to_full": 0.01,
//!               "top1_agreement": 0.97, "nll_reference": 2.3, "accuracy": null,
//!               "task_score": null, "kv_bytes": 1048576, "n_prompts": 40}],
//!  "comparisons": [{"a": "depthkv", "b": "uniform", "budget": 0.5,
//!                   "metric": "kl_to_full", "mean_diff": -0.004, "p_value": 0.002}]}
//! ```
//!
//! Optional numbers are always present, as `null` when not measured.
//! `per_prompt` (each prompt's runs, see `record`) and `sensitivities` are
//! added when present.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::record::{PromptRecord, SensitivityRecord};
use crate::profile::io::{write_atomic, ProfileError};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub results: Vec<MethodResult>,
    pub comparisons: Vec<Comparison>,
    /// Every prompt's results, for pairing with other runs and tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_prompt: Vec<PromptRecord>,
    /// Sensitivities measured for this run's allocations (paper preset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitivities: Vec<SensitivityRecord>,
    /// Prompts that failed during the run and were left out of every row
    /// (present in the JSON only when some failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_prompts: Vec<PromptFailure>,
}

/// A prompt the evaluation could not measure, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptFailure {
    pub id: String,
    pub error: String,
}

/// Quality and cost of one method at one budget, averaged over prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodResult {
    pub method: String,
    /// Fraction of the KV cache kept overall.
    pub budget: f64,
    /// Mean KL divergence of the next-token distribution from the unpruned model.
    pub kl_to_full: f64,
    /// Fraction of positions where the top-1 token matches the unpruned model.
    pub top1_agreement: f64,
    /// Mean per-token NLL of the reference continuations; null without references.
    pub nll_reference: Option<f64>,
    /// Fraction of prompts answered correctly; null when no prompt has answers.
    pub accuracy: Option<f64>,
    /// Mean of each prompt's task metric (containment, token F1 or ROUGE-L);
    /// null when no prompt has answers.
    #[serde(default)]
    pub task_score: Option<f64>,
    /// KV cache bytes actually held.
    pub kv_bytes: u64,
    pub n_prompts: usize,
}

/// A paired test between methods `a` and `b` at one budget on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub budget: f64,
    /// Name of the compared field, e.g. `kl_to_full`.
    pub metric: String,
    /// Mean over prompts of (a - b).
    pub mean_diff: f64,
    pub p_value: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: not an eval report: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Read(crate::userio::BoundedReadError),
    #[error(transparent)]
    Write(#[from] ProfileError),
}

impl EvalReport {
    /// Method names in order of first appearance.
    pub fn methods(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.results {
            if !out.contains(&r.method.as_str()) {
                out.push(&r.method);
            }
        }
        out
    }

    /// One `(method, [(budget, value)])` series per method, for plotting;
    /// rows where `value` gives `None` are left out.
    pub fn series(&self, value: impl Fn(&MethodResult) -> Option<f64>) -> Vec<(String, Vec<(f64, f64)>)> {
        self.methods()
            .into_iter()
            .map(|m| {
                let points = self
                    .results
                    .iter()
                    .filter(|r| r.method == m)
                    .filter_map(|r| value(r).map(|v| (r.budget, v)))
                    .collect();
                (m.to_string(), points)
            })
            .collect()
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("reports always serialize");
        s.push('\n');
        s
    }

    /// Write as pretty JSON, atomically.
    pub fn save(&self, path: &Path, overwrite: bool) -> Result<(), ReportError> {
        write_atomic(path, self.to_json().as_bytes(), overwrite)?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<EvalReport, ReportError> {
        let text = crate::userio::read_bounded(path, crate::userio::MAX_PROMPT_SET_BYTES).map_err(ReportError::Read)?;
        serde_json::from_str(&text).map_err(|source| ReportError::Json { path: path.to_path_buf(), source })
    }
}

/// The report as GitHub-flavoured Markdown: a results table (rows ordered by
/// budget, largest first, methods in report order within a budget) and, when
/// there are comparisons, a second table of them.
pub fn markdown_table(report: &EvalReport) -> String {
    let mut rows: Vec<&MethodResult> = report.results.iter().collect();
    rows.sort_by(|x, y| y.budget.total_cmp(&x.budget));

    let mut out = String::new();
    out.push_str(
        "| Method | Budget | KL to full | Top-1 agreement | NLL (reference) | Accuracy | Task score | KV cache | Prompts |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            escape(&r.method),
            fmt_trimmed(r.budget),
            fmt_metric(r.kl_to_full),
            fmt_percent(r.top1_agreement),
            r.nll_reference.map_or_else(na, |v| fmt_fixed(v, 3)),
            r.accuracy.map_or_else(na, fmt_percent),
            r.task_score.map_or_else(na, |v| fmt_fixed(v, 3)),
            fmt_bytes(r.kv_bytes),
            r.n_prompts
        ));
    }
    if !report.failed_prompts.is_empty() {
        out.push_str(&format!("\n{} prompt(s) failed and are left out:\n", report.failed_prompts.len()));
        for f in &report.failed_prompts {
            out.push_str(&format!("- {}: {}\n", crate::userio::sanitize(&f.id), crate::userio::sanitize(&f.error)));
        }
    }
    if !report.comparisons.is_empty() {
        out.push('\n');
        out.push_str("| A | B | Budget | Metric | Mean diff (A - B) | p-value |\n");
        out.push_str("|---|---|---:|---|---:|---:|\n");
        for c in &report.comparisons {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                escape(&c.a),
                escape(&c.b),
                fmt_trimmed(c.budget),
                escape(&c.metric),
                fmt_signed(c.mean_diff),
                fmt_p(c.p_value)
            ));
        }
    }
    out
}

fn na() -> String {
    "n/a".to_string()
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Up to four decimals, trailing zeros removed: 0.5, 0.125, 1.
fn fmt_trimmed(v: f64) -> String {
    if !v.is_finite() {
        return na();
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

fn fmt_fixed(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        na()
    }
}

/// Four decimals, or scientific notation for small non-zero values.
fn fmt_metric(v: f64) -> String {
    if !v.is_finite() {
        na()
    } else if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.2e}")
    } else {
        format!("{v:.4}")
    }
}

fn fmt_signed(v: f64) -> String {
    let s = fmt_metric(v);
    if v.is_finite() && v >= 0.0 {
        format!("+{s}")
    } else {
        s
    }
}

fn fmt_percent(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}%", v * 100.0)
    } else {
        na()
    }
}

fn fmt_p(p: f64) -> String {
    if !p.is_finite() {
        na()
    } else if p < 1e-3 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(method: &str, budget: f64, kl: f64, acc: Option<f64>) -> MethodResult {
        MethodResult {
            method: method.into(),
            budget,
            kl_to_full: kl,
            top1_agreement: 0.9731,
            nll_reference: Some(2.34567),
            accuracy: acc,
            task_score: acc.map(|a| a / 2.0),
            kv_bytes: 3 * 1024 * 1024 / 2,
            n_prompts: 40,
        }
    }

    fn sample() -> EvalReport {
        EvalReport {
            results: vec![
                row("uniform", 0.25, 0.1234567, None),
                row("depthkv", 0.25, 0.00005, Some(0.875)),
                row("uniform", 0.5, 0.02, None),
            ],
            comparisons: vec![Comparison {
                a: "depthkv".into(),
                b: "uniform".into(),
                budget: 0.25,
                metric: "kl_to_full".into(),
                mean_diff: -0.1234,
                p_value: 0.000999,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn json_shape_is_exact() {
        let v =
            serde_json::to_value(EvalReport { results: vec![row("m", 0.5, 0.1, None)], ..Default::default() }).unwrap();
        assert_eq!(
            v,
            json!({
                "results": [{
                    "method": "m", "budget": 0.5, "kl_to_full": 0.1,
                    "top1_agreement": 0.9731, "nll_reference": 2.34567,
                    "accuracy": null, "task_score": null, "kv_bytes": 1572864, "n_prompts": 40
                }],
                "comparisons": []
            })
        );
    }

    #[test]
    fn json_round_trip_and_file_io() {
        let r = sample();
        let back: EvalReport = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(back, r);

        let dir = std::env::temp_dir().join(format!("depthkv-report-{}", std::process::id()));
        let path = dir.join("r.json");
        let _ = std::fs::remove_dir_all(&dir);
        r.save(&path, false).unwrap();
        assert_eq!(EvalReport::load(&path).unwrap(), r);
        assert!(matches!(r.save(&path, false), Err(ReportError::Write(ProfileError::Exists { .. }))));
        std::fs::write(&path, "{\"results\": 3}").unwrap();
        assert!(matches!(EvalReport::load(&path), Err(ReportError::Json { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn markdown_tables() {
        let md = markdown_table(&sample());
        let expected = "\
| Method | Budget | KL to full | Top-1 agreement | NLL (reference) | Accuracy | Task score | KV cache | Prompts |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
| uniform | 0.5 | 0.0200 | 97.3% | 2.346 | n/a | n/a | 1.5 MiB | 40 |
| uniform | 0.25 | 0.1235 | 97.3% | 2.346 | n/a | n/a | 1.5 MiB | 40 |
| depthkv | 0.25 | 5.00e-5 | 97.3% | 2.346 | 87.5% | 0.438 | 1.5 MiB | 40 |

| A | B | Budget | Metric | Mean diff (A - B) | p-value |
|---|---|---:|---|---:|---:|
| depthkv | uniform | 0.25 | kl_to_full | -0.1234 | 1.0e-3 |
";
        assert_eq!(md, expected);
    }

    #[test]
    fn markdown_without_comparisons_and_odd_values() {
        let mut r = row("a|b", 1.0, f64::NAN, Some(1.0));
        r.nll_reference = None;
        r.kv_bytes = 512;
        let md = markdown_table(&EvalReport { results: vec![r], ..Default::default() });
        assert_eq!(md.lines().count(), 3);
        assert_eq!(md.lines().nth(2).unwrap(), "| a\\|b | 1 | n/a | 97.3% | n/a | 100.0% | 0.500 | 512 B | 40 |");
    }

    #[test]
    fn number_formats() {
        assert_eq!(fmt_trimmed(0.125), "0.125");
        assert_eq!(fmt_trimmed(0.1), "0.1");
        assert_eq!(fmt_trimmed(0.0), "0");
        assert_eq!(fmt_bytes(1024), "1.0 KiB");
        assert_eq!(fmt_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(fmt_signed(0.5), "+0.5000");
        assert_eq!(fmt_p(0.05), "0.0500");
    }

    #[test]
    fn series_group_by_method_in_order() {
        let s = sample().series(|r| Some(r.kl_to_full));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, "uniform");
        assert_eq!(s[0].1, vec![(0.25, 0.1234567), (0.5, 0.02)]);
        assert_eq!(s[1].0, "depthkv");
        let acc = sample().series(|r| r.accuracy);
        assert!(acc[0].1.is_empty());
        assert_eq!(acc[1].1, vec![(0.25, 0.875)]);
    }
}
