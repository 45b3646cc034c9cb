//! Plain messages between the engine thread and its clients (TUI, CLI, tests).
//! No tensors cross this boundary: everything here is host data.
//!
//! A run decodes any number of *variants* from one cached prefill. A variant
//! is an allocation (how many tokens each layer keeps) plus a token scorer;
//! every event of a run names its run id and variant id, so a client can show
//! as many side-by-side panes as it likes and drop stragglers of older runs.

use crate::engine::KvPrecision;
use crate::prune::{HeadSplit, Scorer, Strategy};

pub use crate::engine::{GenParams, ModelInfo};
pub use crate::profile::LayerSensitivity;
pub use crate::prune::apply::Occupancy;

/// Every run the engine starts carries the id the client gave it; clients drop
/// events whose id is not the newest they asked for.
pub type RunId = u64;

/// A client's name for one variant (one pane), stable across runs.
pub type VariantId = u32;

/// How many tokens each layer keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Allocation {
    /// No pruning: the reference every other variant is scored against.
    Full,
    /// Exactly these counts, one per layer (e.g. the TUI's bars).
    Layers(Vec<usize>),
    /// A strategy at a global budget fraction, resolved against the prompt.
    Strategy { strategy: Strategy, budget: f64 },
}

/// One decode of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub id: VariantId,
    pub allocation: Allocation,
    pub scorer: Scorer,
    /// Keep every layer within its budget while decoding, too.
    pub decode_evict: bool,
    /// How the kept tokens are stored (int8/int4 quantized or native).
    pub precision: KvPrecision,
    /// How each layer's budget is shared among its KV heads.
    pub heads: HeadSplit,
}

impl Variant {
    pub fn full(id: VariantId) -> Self {
        Self {
            id,
            allocation: Allocation::Full,
            scorer: Scorer::SnapKv,
            decode_evict: false,
            precision: KvPrecision::Native,
            heads: HeadSplit::Even,
        }
    }

    pub fn layers(id: VariantId, budgets: Vec<usize>, scorer: Scorer) -> Self {
        Self {
            id,
            allocation: Allocation::Layers(budgets),
            scorer,
            decode_evict: false,
            precision: KvPrecision::Native,
            heads: HeadSplit::Even,
        }
    }
}

/// A layer under decode-phase eviction may run this many slots past its
/// budget between two evictions: eviction runs in batches, so the host reads
/// attention scores rarely.
pub const EVICT_SLACK: usize = 16;

/// A variant's cache is reported every this many generated tokens (and after
/// the last one).
pub const DECODE_OCCUPANCY_EVERY: usize = 4;

/// Positions one KV head holds: sorted, disjoint, non-empty half-open ranges
/// `start..end`. Sinks, the recent window and generated tokens are runs, so
/// this stays short where a position list would not.
pub type Ranges = Vec<(u32, u32)>;

/// What a variant's cache holds after `step` generated tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOccupancy {
    /// Tokens generated so far.
    pub step: usize,
    /// Positions the cache has seen: the prompt plus the generated tokens fed back.
    pub positions: usize,
    /// `held[layer][kv_head]`: positions held (prompt and generated).
    pub held: Vec<Vec<Ranges>>,
}

/// Sorted unique positions as ranges (padding and other out-of-order
/// entries are the caller's to drop first).
pub fn to_ranges(sorted: impl IntoIterator<Item = u32>) -> Ranges {
    let mut out: Ranges = Vec::new();
    for p in sorted {
        match out.last_mut() {
            Some((_, end)) if *end == p => *end = p + 1,
            _ => out.push((p, p + 1)),
        }
    }
    out
}

/// Positions in `ranges` that fall in `lo..hi`.
pub fn held_in(ranges: &[(u32, u32)], lo: u32, hi: u32) -> usize {
    ranges.iter().map(|&(s, e)| e.min(hi).saturating_sub(s.max(lo)) as usize).sum()
}

/// The prompt as the engine tokenized it, with the attention statistics
/// recorded during prefill (host copies, one row per layer).
#[derive(Debug, Clone, PartialEq)]
pub struct PromptSnapshot {
    /// Decoded text of each prompt token, in order.
    pub pieces: Vec<String>,
    /// `window_attention[layer][kv_head][pos]`: attention the observation window
    /// paid to `pos`, summed over window queries and the head's query group.
    pub window_attention: Vec<Vec<Vec<f32>>>,
    pub prefill_seconds: f64,
    /// Fewest tokens each layer can keep: attention sinks + observation window
    /// (at most the prompt), a sliding-window layer its window. The session's
    /// limits (`apply::floors`), so clients mirror nothing.
    pub layer_floors: Vec<usize>,
    /// Most tokens each layer can keep: the prompt, or a sliding-window
    /// layer's window. The unpruned total is their sum.
    pub kv_ceilings: Vec<usize>,
}

/// Teacher-forced quality of a variant against the full-cache continuation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VariantMetrics {
    pub kl_to_full: f64,
    pub top1_agreement: f64,
    pub tokens_per_second: f64,
    pub kv_bytes: usize,
    /// Served from the session's store of finished variants (not re-decoded).
    pub cached: bool,
}

/// Long-running jobs that report progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    LoadModel,
    Prefill,
    Calibrate,
}

/// Requests a client sends to the engine thread.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Tokenize and prefill a new prompt (chat template applied when `chat`).
    SetPrompt {
        text: String,
        chat: bool,
    },
    /// Decode these variants from the cached prefill. Supersedes any run in
    /// flight; variants already decoded with the same allocation, scorer and
    /// sampling on this prompt are replayed, not decoded again.
    Run {
        run_id: RunId,
        variants: Vec<Variant>,
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
    Progress {
        job: Job,
        done: usize,
        total: usize,
    },
    Prefilled(PromptSnapshot),
    Occupancy {
        run_id: RunId,
        variant: VariantId,
        occupancy: Occupancy,
    },
    /// The cache of a decoding variant, every [`DECODE_OCCUPANCY_EVERY`]
    /// tokens and after its last token (after that token's `Token`).
    DecodeOccupancy {
        run_id: RunId,
        variant: VariantId,
        occupancy: DecodeOccupancy,
    },
    Token {
        run_id: RunId,
        variant: VariantId,
        index: usize,
        token_id: u32,
        text: String,
    },
    VariantDone {
        run_id: RunId,
        variant: VariantId,
        metrics: VariantMetrics,
    },
    /// Every variant of the run is done (not sent for a superseded run).
    RunDone {
        run_id: RunId,
    },
    Calibrated {
        run_id: RunId,
        sensitivity: Vec<LayerSensitivity>,
        seconds: f64,
    },
    Error {
        run_id: Option<RunId>,
        message: String,
    },
}

/// The client's end of the engine thread: send commands, receive events.
/// The real session (`session::worker::spawn`) and test fakes both hand one out.
pub struct EngineHandle {
    pub commands: std::sync::mpsc::Sender<Command>,
    pub events: tokio::sync::mpsc::UnboundedReceiver<Event>,
}
