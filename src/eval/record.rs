//! Per-prompt results of an evaluation, so runs of different tools can be
//! paired prompt by prompt (KL, top-1, the generated answer and its task
//! scores, and optionally the kept positions per layer and KV head).

use serde::{Deserialize, Serialize};

use super::metrics::{TaskMetric, TaskScores};

/// One prompt: what was scored and every method's result on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptRecord {
    pub id: String,
    pub prompt_tokens: usize,
    /// The prompt's token ids (chat template applied), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<u32>>,
    /// The full cache's greedy continuation that KL and top-1 are measured on.
    pub continuation: Vec<u32>,
    pub task_metric: TaskMetric,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<Vec<String>>,
    /// `full` first, then each method at each budget.
    pub runs: Vec<RunRecord>,
}

/// One method at one budget on one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub method: String,
    pub budget: f64,
    pub kl_to_full: f64,
    pub top1_agreement: f64,
    pub nll_reference: Option<f64>,
    /// Greedy output, when the prompt has answers.
    pub answer: Option<String>,
    pub scores: Option<TaskScores>,
    /// The prompt's task metric on `answer`.
    pub task_score: Option<f64>,
    pub kv_bytes: u64,
    /// Kept prompt positions `[layer][kv_head]`, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<Vec<Vec<Vec<u32>>>>,
}

/// A per-layer sensitivity vector that drove an allocation in this report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensitivityRecord {
    /// The method it drove, e.g. `depthkv-kl`.
    pub method: String,
    /// What was measured per ablated layer, e.g. `kl_to_full`.
    pub measure: String,
    pub ablation_keep: f64,
    pub prompts: Vec<String>,
    pub per_layer: Vec<f64>,
}
