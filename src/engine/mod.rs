//! The headless engine: model loading, our own forward pass, the KV cache.
//! The bottom floor: it imports nothing of prune, session, profile, eval or
//! the front ends. Sessions drive it; front ends talk to a session.
pub mod cache;
pub mod chat;
pub mod config;
pub mod core;
pub mod detok;
pub mod device;
pub mod error;
pub mod evict;
pub mod family;
pub mod fetch;
pub mod flash;
pub mod fused;
pub mod gguf_header;
pub mod gguf_spm;
pub mod gguf_tokenizer;
pub mod kernels;
pub mod kvcodec;
pub mod model;
pub mod params;
pub mod parity;
pub mod q4cpu;
pub mod qkv_rope;
pub mod rope;
pub mod sampler;
pub mod source;
pub mod tokenizer;
pub mod weights;

pub use self::core::{Decoder, Engine, LoadOptions, PrefillOptions, Prefilled};
pub use self::detok::Detokenizer;
pub use self::kvcodec::KvPrecision;
pub use self::params::{GenParams, ModelInfo};
