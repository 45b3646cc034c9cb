//! See lib.rs for the module map.

pub mod stats;
pub mod sensitivity;
