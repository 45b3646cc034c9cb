//! depthkv: a workbench for layer-dependent KV-cache pruning.
//!
//! - `engine`: our own forward pass over a KV cache we can read and prune (no UI types).
//! - `prune`: which tokens a layer keeps, and how one global budget is split across layers.
//! - `calib`: per-layer sensitivity measurement and its statistics.
//! - `profile`: versioned JSON profiles (import/export).
//! - `eval`: prompt sets, generated long-context tasks, the evaluation harness and plots.
//! - `ui`: the terminal workbench.
//! - `cli`: the command-line front end.

pub mod bench;
pub mod calib;
pub mod cli;
pub mod engine;
pub mod eval;
pub mod profile;
pub mod prune;
pub mod ui;
