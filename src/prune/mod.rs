//! Which tokens each layer keeps, and how one global KV budget is split across layers.
//!
//! Pure Rust over host data (plain `Vec<f32>` / `usize`): the engine extracts
//! scores from its tensors and hands them in, so this module stays testable
//! without a model.
//!
//! - [`allocate`]: split `total_slots(budget, L, N)` across layers by strategy
//!   (uniform, PyramidKV, DepthKV sensitivity, manual).
//! - [`rebalance`]: hand-edit one layer while the total stays fixed.
//! - [`select_layer`]: pick the kept positions inside one layer.

pub mod adaptive;
mod allocate;
pub mod apply;
mod bounds;
mod error;
pub mod heads;
mod rebalance;
mod select;

pub use allocate::{
    allocate, allocate_within, budgets_from_fractions, budgets_from_fractions_within, feasible_total, kept_fractions,
    parse_strategy_name, total_slots, DepthRule, LayerLimits, Strategy, StrategyKind, PYRAMID_BETA,
};
pub use bounds::LayerBounds;
pub use error::PruneError;
pub use heads::{select_layer_split, HeadSplit, ADA_SAFEGUARD};
pub use rebalance::{rebalance, rebalance_within};
pub use select::{
    kvpress_n_kept, kvpress_pyramid_n_kept, pool_1d, select_layer, LayerStats, Pooling, Scorer, SelectConfig,
    DEFAULT_KERNEL, DEFAULT_SINKS, DEFAULT_WINDOW, KVPRESS_STREAMING_SINKS,
};

/// Default DepthKV blend: share of the uniform split mixed into the
/// sensitivity split. Pure proportional allocation starves the layers that
/// measured ~0 sensitivity, which hurts plain continuations (see docs/results.md).
pub const DEPTHKV_MIX: f64 = 0.2;
/// Default DepthKV per-layer floor (kept fraction of the prompt).
pub const DEPTHKV_FLOOR: f64 = 0.0;
