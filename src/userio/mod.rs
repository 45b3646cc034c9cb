//! Reading files a user names, and showing text a user wrote, safely.
//!
//! - [`read_bounded`]: every user file (profiles, prompt files, JSONL, keys.toml,
//!   themes, TUI imports) is read with a size limit, so `/dev/zero` or a huge
//!   file is refused instead of filling memory.
//! - [`sanitize`]: control characters in user text are made visible before it
//!   reaches the terminal, so a profile cannot clear the screen or retitle the
//!   window.
//!
//! Imports nothing from the rest of the crate: every floor may use it.

mod read;
mod sanitize;

pub use read::{
    read_bounded, BoundedReadError, MAX_CONFIG_BYTES, MAX_PROFILE_BYTES, MAX_PROMPT_BYTES, MAX_PROMPT_SET_BYTES,
};
pub use sanitize::{sanitize, sanitize_multiline};
