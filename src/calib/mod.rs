//! See lib.rs for the module map.

pub mod sensitivity;
pub mod stats;
