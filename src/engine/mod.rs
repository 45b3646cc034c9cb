//! The headless engine: model loading, our own forward pass, the KV cache.
//! Nothing here knows about the UI; front ends talk to it directly or
//! through the engine thread (`worker`) with the plain messages of `protocol`.
pub mod cache;
pub mod chat;
pub mod config;
pub mod core;
pub mod device;
pub mod error;
pub mod evict;
pub mod family;
pub mod fetch;
pub mod gguf_header;
pub mod gguf_tokenizer;
pub mod model;
pub mod parity;
pub mod protocol;
pub mod rope;
pub mod sampler;
pub mod source;
pub mod tokenizer;
pub mod weights;
pub mod worker;

pub use self::core::{Decoder, Engine, LoadOptions, PrefillOptions, Prefilled};
