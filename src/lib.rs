//! depthkv: a workbench for layer-dependent KV-cache pruning.
//!
//! The crate is built in floors; a module imports only from floors below it
//! (tests/it/floors.rs fails on an upward import):
//!
//! ```text
//!  6  cli                      the command line (its `tui` command opens the workbench)
//!  5  ui                       the terminal workbench
//!  4  eval  bench              prompt sets, tasks, reports, plots; benchmarks
//!  3  session                  engine thread, protocol of variants, budgets applied
//!                              to a cached prefill, scoring, calibration
//!  2  profile                  versioned JSON profiles (import/export)
//!  1  prune                    which tokens a layer keeps; one budget split across layers
//!  0  engine   stats  userio   forward pass, KV cache, tokenizer; statistics;
//!                              size-limited reads of user files, terminal-safe user text
//! ```
//!
//! `ui` and `cli` talk to the engine only through a session: the TUI over the
//! engine thread's channels, the CLI through the same scoring and
//! calibration functions.

pub mod bench;
pub mod cli;
pub mod engine;
pub mod eval;
pub mod profile;
pub mod prune;
pub mod session;
pub mod stats;
pub mod ui;
pub mod userio;
