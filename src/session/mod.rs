//! The session floor: everything that runs a prompt through the engine under
//! several allocations and compares them.
//!
//! - [`protocol`]: the messages of the engine thread (variants, runs, events).
//! - [`worker`]: the engine thread itself, with its store of finished variants.
//! - [`scoring`]: teacher-forced quality of a pruned cache against the full one.
//! - [`calibrate`]: per-layer sensitivity by one-layer ablation.
//! - [`contract`]: the behaviour every implementation of the protocol owes its
//!   clients, as checks the real session and the UI's fake engine both pass.

pub mod calibrate;
pub mod contract;
pub mod protocol;
pub mod scoring;
pub mod worker;
