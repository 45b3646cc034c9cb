//! Evaluation inputs and outputs, independent of the engine:
//!
//! - `prompts`: JSONL prompt sets and their content hash.
//! - `formats`: LongBench, RULER and kvpress layouts as eval items.
//! - `methods`: the compared methods (global strategies, kvpress-exact ones).
//! - `metrics`: ROUGE, token F1, exact match and containment.
//! - `record`: per-prompt results of a run.
//! - `paper`: the DepthKV paper's protocol (H2O, one-layer ablation at keep 0.4).
//! - `tasks`: seeded long-context retrieval tasks (passkey, needle,
//!   multi-key, variable tracking) written as prompt JSONL.
//! - `report`: the eval result format and its Markdown rendering.
//! - `plot`: PNG/SVG line charts (quality vs budget, and general lines).

pub mod formats;
pub mod methods;
pub mod metrics;
pub mod paper;
pub mod plot;
pub mod precheck;
pub mod prompts;
pub mod record;
pub mod report;
pub mod runner;
pub mod tasks;

pub use self::plot::{plot_lines, plot_panels, plot_quality_vs_budget, LegendCorner, Panel, PlotError};
pub use self::prompts::{load_prompts, parse_prompts, prompt_set_sha256, to_jsonl, PromptItem, PromptsError};
pub use self::report::{markdown_table, Comparison, EvalReport, MethodResult, PromptFailure, ReportError};
pub use self::tasks::{
    estimate_tokens, generate_tasks, generate_tasks_jsonl, write_tasks_jsonl, TaskError, TaskKind, TaskParams,
};
