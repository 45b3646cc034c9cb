//! `depthkv fetch-model`: install the default model, idempotently.

use crate::engine::fetch;

pub fn run() -> anyhow::Result<()> {
    let path = fetch::ensure_default_model(&mut |m| eprintln!("{m}"))?;
    println!("{}", path.display());
    Ok(())
}
