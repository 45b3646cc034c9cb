//! Errors for budget allocation, rebalancing and name parsing.
//!
//! Every variant carries the offending values so the TUI and CLI can show the
//! message as-is without re-deriving context.

use thiserror::Error;

/// Everything that can go wrong while splitting or editing a KV budget.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PruneError {
    /// `min > max` makes every allocation impossible; almost always a caller bug.
    #[error("invalid layer limits: min {min} is greater than max {max}")]
    InvalidLimits { min: usize, max: usize },

    /// The requested total cannot be met while keeping every layer within its limits.
    #[error(
        "total of {total} slots is infeasible for {n_layers} layers with per-layer limits \
         [{min}, {max}]: it must lie in {lo}..={hi} (clamp it with feasible_total first)"
    )]
    InfeasibleTotal { total: usize, n_layers: usize, min: usize, max: usize, lo: usize, hi: usize },

    /// A per-layer vector does not have one entry per layer.
    #[error("{what} has {got} entries but there are {expected} layers")]
    LengthMismatch { what: &'static str, expected: usize, got: usize },

    /// NaN or infinity where a real number is needed.
    #[error("{what}[{index}] is not a finite number ({value})")]
    NonFinite { what: &'static str, index: usize, value: f64 },

    /// A value that must be non-negative (e.g. a manual kept fraction) is negative.
    #[error("{what}[{index}] is negative ({value}); it must be >= 0")]
    Negative { what: &'static str, index: usize, value: f64 },

    /// A per-prompt strategy was asked for without the prompt's statistics.
    #[error("the adaptive split is computed from a prefilled prompt's attention; no prompt was given")]
    NeedsPrompt,

    /// The budget is smaller than what sinks and window always keep
    /// (`local_layers` sliding-window layers keep their window without sinks).
    #[error(
        "budget {budget} is below what sinks {sinks} + window {window} always keep on a {prompt_len}-token \
         prompt{}; the valid range there is [{smallest:.4}, 1] (or lower sinks/window)",
        match local_layers { 0 => String::new(), n => format!(" ({n} sliding-window layers keep the window alone)") }
    )]
    BudgetBelowFloor { budget: f64, sinks: usize, window: usize, prompt_len: usize, local_layers: usize, smallest: f64 },

    /// Sinks and window cover the whole prompt: any budget below 1 would keep everything.
    #[error(
        "sinks {sinks} + window {window} cover the whole {prompt_len}-token prompt, so budget {budget} would \
         keep all of it; lower sinks/window"
    )]
    FloorCoversPrompt { budget: f64, sinks: usize, window: usize, prompt_len: usize },

    #[error("mix must be in [0, 1] (weight of the uniform split blended in), got {0}")]
    InvalidMix(f64),

    #[error("floor must be in [0, 1) (minimum kept fraction of the prompt per layer), got {0}")]
    InvalidFloor(f64),

    #[error("softmax temperature must be finite and > 0, got {0}")]
    InvalidTemperature(f64),

    #[error("pyramid beta must be finite and >= 1 (1 = uniform, larger = steeper), got {0}")]
    InvalidBeta(f64),

    #[error("layer {layer} is out of range (there are {n_layers} layers)")]
    LayerOutOfRange { layer: usize, n_layers: usize },

    #[error("layer {layer} is locked; unlock it before changing its budget")]
    LayerLocked { layer: usize },

    /// Rebalancing starts from a budget that already violates the limits.
    #[error("layer {layer} has budget {value}, outside the limits [{min}, {max}]")]
    BudgetOutOfLimits { layer: usize, value: usize, min: usize, max: usize },

    #[error("unknown strategy '{name}'; valid names: {valid}")]
    UnknownStrategy { name: String, valid: String },

    #[error("unknown scorer '{name}'; valid names: {valid}")]
    UnknownScorer { name: String, valid: String },
}
