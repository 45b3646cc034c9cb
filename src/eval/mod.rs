//! Evaluation inputs and outputs, independent of the engine:
//!
//! - `prompts`: JSONL prompt sets and their content hash.
//! - `report`: the eval result format and its Markdown rendering.

pub mod prompts;
pub mod report;

pub use self::prompts::{
    load_prompts, parse_prompts, prompt_set_sha256, to_jsonl, PromptItem, PromptsError,
};
pub use self::report::{markdown_table, Comparison, EvalReport, MethodResult, ReportError};
