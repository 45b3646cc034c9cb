//! One output pane: a variant (its own allocation, token scorer, head split,
//! decode-phase eviction and KV precision) under a stable id, and what its
//! latest run streamed.
//!
//! A full pane is optional: the session scores every variant against the
//! full cache whether or not a pane shows it, and when no pane is full the UI
//! asks for a hidden full decode ([`REFERENCE_VARIANT`]) so first divergences
//! still have something to diverge from. The session decodes that reference
//! anyway, so it costs nothing.

use crate::engine::KvPrecision;
use crate::prune::{HeadSplit, Scorer};
use crate::session::protocol::{Allocation, DecodeOccupancy, Occupancy, Variant, VariantId, VariantMetrics};

use super::budget::{Budgets, Shape};

/// A pane's quality figures, as the session reports them.
pub type PaneMetrics = VariantMetrics;

/// Fewest and most panes side by side.
pub const MIN_PANES: usize = 2;
pub const MAX_PANES: usize = 6;

/// Id of the hidden full-cache variant sent when no pane is full.
pub const REFERENCE_VARIANT: VariantId = VariantId::MAX;

#[derive(Debug, Clone, PartialEq)]
pub struct PaneState {
    /// The variant id its runs go under, stable for the pane's life.
    pub id: VariantId,
    /// Theme colour slot (0..MAX_PANES), kept for the pane's life.
    pub colour: usize,
    /// The allocation: the bars show and edit it while the pane is selected.
    pub split: Budgets,
    pub scorer: Scorer,
    /// Keep every layer within its budget while decoding, too.
    pub decode_evict: bool,
    /// How the kept tokens are stored (native, int8, int4).
    pub precision: KvPrecision,
    /// How each layer's budget is shared among its KV heads.
    pub heads: HeadSplit,

    /// `(token_id, text)` in generation order.
    pub tokens: Vec<(u32, String)>,
    pub metrics: Option<PaneMetrics>,
    pub occupancy: Option<Occupancy>,
    /// `share[layer][pos]`: fraction of KV heads keeping `pos` (from `occupancy`).
    pub share: Vec<Vec<f32>>,
    /// The occupancy is from an earlier run than the one streaming.
    pub occupancy_stale: bool,
    /// The cache while decoding, as reported every few tokens (cleared when
    /// the run's `occupancy` arrives).
    pub decode: Vec<DecodeOccupancy>,
    /// Prompt KV slots the pane holds in the current run.
    pub slots: usize,
}

impl PaneState {
    pub fn new(id: VariantId, colour: usize, split: Budgets, scorer: Scorer) -> Self {
        PaneState {
            id,
            colour,
            split,
            scorer,
            decode_evict: false,
            precision: KvPrecision::Native,
            heads: HeadSplit::Even,
            tokens: Vec::new(),
            metrics: None,
            occupancy: None,
            share: Vec::new(),
            occupancy_stale: false,
            decode: Vec::new(),
            slots: 0,
        }
    }

    pub fn is_full(&self) -> bool {
        self.split.is_full()
    }

    /// What the session decodes for this pane.
    pub fn variant(&self) -> Variant {
        if self.is_full() {
            return Variant::full(self.id);
        }
        Variant {
            id: self.id,
            allocation: Allocation::Layers(self.split.layers.clone()),
            scorer: self.scorer,
            decode_evict: self.decode_evict,
            precision: self.precision,
            heads: self.heads,
        }
    }

    /// Title forms, longest first: "depthkv · snapkv + evict · ada", "depthkv·h2o".
    /// The full cache needs no scorer.
    pub fn names(&self) -> [String; 2] {
        let kind = self.split.kind_name();
        if self.is_full() {
            return [kind.clone(), kind];
        }
        let evict = if self.decode_evict { " + evict" } else { "" };
        let short_evict = if self.decode_evict { "+ev" } else { "" };
        let (bits, short_bits) = match self.precision {
            KvPrecision::Native => (String::new(), String::new()),
            p => (format!(" · {p}"), format!("·{p}")),
        };
        let heads = match self.heads {
            HeadSplit::Even => "",
            HeadSplit::Ada { .. } => " · ada",
        };
        let short_heads = if heads.is_empty() { "" } else { "·ada" };
        [
            format!("{kind} · {}{evict}{bits}{heads}", self.scorer),
            format!("{kind}·{}{short_evict}{short_bits}{short_heads}", self.scorer),
        ]
    }

    /// Starts a new run: output cleared, the old occupancy kept (stale) so
    /// the heatmap does not flash empty.
    pub fn reset_run(&mut self) {
        self.tokens.clear();
        self.metrics = None;
        self.occupancy_stale = self.occupancy.is_some();
        self.slots = self.split.slots();
    }

    /// Forgets everything streamed (a new prompt).
    pub fn clear_output(&mut self) {
        self.tokens.clear();
        self.metrics = None;
        self.occupancy = None;
        self.share.clear();
        self.decode.clear();
        self.occupancy_stale = false;
        self.slots = 0;
    }

    /// Puts a streamed token at its index (replays may resend one).
    pub fn push_token(tokens: &mut Vec<(u32, String)>, index: usize, token: (u32, String)) {
        if index < tokens.len() {
            tokens[index] = token;
        } else {
            tokens.push(token);
        }
    }
}

/// The lowest colour slot no pane uses.
pub fn free_colour(panes: &[PaneState]) -> usize {
    (0..MAX_PANES).find(|c| panes.iter().all(|p| p.colour != *c)).unwrap_or(panes.len() % MAX_PANES)
}

/// A new pane's split: the shape at the global budget of `like`, sized
/// for the same model and prompt when those are known.
pub fn split_like(like: &Budgets, shape: Shape) -> Result<Budgets, crate::prune::PruneError> {
    let mut b = Budgets::new(like.global, shape);
    if like.n_layers > 0 && like.prompt_len > 0 {
        b.configure(like.n_layers, like.prompt_len, &like.floors, &like.ceilings)?;
    }
    Ok(b)
}
