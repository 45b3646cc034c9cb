//! All integration tests in one binary: candle, tokenizers and ratatui are
//! linked once, and the default model is installed and loaded once per process.

mod common;

mod cli;
mod decode_evict;
mod engine_model;
mod eval_formats;
mod eval_parity;
mod fetch_and_hub;
mod prune_props;
mod stock_parity;
mod tokenizer_gguf;
mod ui_snapshots;
mod ui_update;
mod worker_rerun;
