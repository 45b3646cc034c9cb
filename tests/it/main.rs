//! All integration tests in one binary: candle, tokenizers and ratatui are
//! linked once, and the default model is installed and loaded once per process.

mod alloc_meter;
mod common;

/// Counts heap use per thread so the fuzz tests can bound it; forwards to the system allocator.
#[global_allocator]
static ALLOCATOR: alloc_meter::Meter = alloc_meter::Meter;

mod beyond;
mod ceiling_props;
mod cli;
mod contract;
mod decode_evict;
mod detok;
mod engine_model;
mod eval_formats;
mod eval_parity;
mod families;
mod fetch_and_hub;
mod flash;
mod floors;
mod fuzz_inputs;
mod hostile;
mod model_metadata;
mod prune_props;
mod signals;
mod stock_parity;
mod tokenizer_gguf;
mod tokenizer_spm;
mod ui_layout;
mod ui_snapshots;
mod ui_update;
mod ui_views;
mod windowed;
mod worker_rerun;
