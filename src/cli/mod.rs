//! See lib.rs for the module map.
pub fn main() -> anyhow::Result<()> { Ok(()) }
