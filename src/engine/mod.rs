//! The headless engine: model loading, our own forward pass, the KV cache.
pub mod protocol;
pub mod fetch;
pub mod gguf_tokenizer;
pub mod chat;
