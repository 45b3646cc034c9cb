//! Plain messages between the engine thread and its clients (TUI, CLI, tests).
//! No tensors cross this boundary: everything here is host data.

use serde::{Deserialize, Serialize};

/// Every run the engine starts carries the id the client gave it; clients drop
/// events whose id is not the newest they asked for.
pub type RunId = u64;

/// Which of the three side-by-side decodes an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Pane {
    Full,
    Uniform,
    Custom,
}

impl Pane {
    pub const ALL: [Pane; 3] = [Pane::Full, Pane::Uniform, Pane::Custom];
    pub fn index(self) -> usize {
        match self {
            Pane::Full => 0,
            Pane::Uniform => 1,
            Pane::Custom => 2,
        }
    }
}

/// What the client needs to know about the loaded model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub architecture: String,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub max_context: usize,
    pub device: String,
    pub dtype: String,
    /// Bytes one cached token costs in one layer (K and V, all KV heads).
    pub kv_bytes_per_token_layer: usize,
}

/// Sampling settings for a run. `temperature <= 0` means greedy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenParams {
    pub max_new_tokens: usize,
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub seed: u64,
}

impl Default for GenParams {
    fn default() -> Self {
        Self { max_new_tokens: 64, temperature: 0.0, top_p: None, seed: 299792458 }
    }
}

/// The prompt as the engine tokenized it, with the attention statistics
/// recorded during prefill (host copies, one row per layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptSnapshot {
    /// Decoded text of each prompt token, in order.
    pub pieces: Vec<String>,
    /// `window_attention[layer][kv_head][pos]`: attention the observation window
    /// paid to `pos`, summed over window queries and the head's query group.
    pub window_attention: Vec<Vec<Vec<f32>>>,
    pub prefill_seconds: f64,
}

/// Which prompt positions each (layer, kv head) keeps after pruning.
/// `kept[layer][kv_head]` is sorted and unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occupancy {
    pub prompt_len: usize,
    pub kept: Vec<Vec<Vec<u32>>>,
}

/// Teacher-forced quality of a pane against the full-cache continuation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PaneMetrics {
    pub kl_to_full: f64,
    pub top1_agreement: f64,
    pub tokens_per_second: f64,
    pub kv_bytes: usize,
}

/// Long-running jobs that report progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Job {
    LoadModel,
    Prefill,
    Calibrate,
}

/// Per-layer sensitivity with a bootstrap interval (the profile format's type).
pub use crate::profile::LayerSensitivity;

/// Requests a client sends to the engine thread.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Tokenize and prefill a new prompt (chat template applied when `chat`).
    SetPrompt {
        text: String,
        chat: bool,
    },
    /// Decode the three panes from the cached prefill with these per-layer
    /// token budgets. Supersedes any run in flight.
    Run {
        run_id: RunId,
        uniform: Vec<usize>,
        custom: Vec<usize>,
        params: GenParams,
    },
    /// Measure per-layer sensitivity on these prompts.
    Calibrate {
        run_id: RunId,
        prompts: Vec<String>,
        ablation_keep: f64,
    },
    /// Stop the run in flight, if any.
    Cancel,
    Shutdown,
}

/// What the engine reports back. Run-scoped events carry the run id.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Loaded(ModelInfo),
    Progress { job: Job, done: usize, total: usize },
    Prefilled(PromptSnapshot),
    Occupancy { run_id: RunId, pane: Pane, occupancy: Occupancy },
    Token { run_id: RunId, pane: Pane, index: usize, token_id: u32, text: String },
    PaneDone { run_id: RunId, pane: Pane, metrics: PaneMetrics },
    Calibrated { run_id: RunId, sensitivity: Vec<LayerSensitivity>, seconds: f64 },
    Error { run_id: Option<RunId>, message: String },
}

/// The client's end of the engine thread: send commands, receive events.
/// The real engine (`engine::worker::spawn`) and test fakes both hand one out.
pub struct EngineHandle {
    pub commands: std::sync::mpsc::Sender<Command>,
    pub events: tokio::sync::mpsc::UnboundedReceiver<Event>,
}
