//! The fingerprint of a loaded model, for stamping and checking profiles.

use super::{hash_files, ModelFingerprint};
use crate::engine::source::ModelSource;
use crate::engine::Engine;

/// Identity of the engine's model; the weights are hashed (sha256 over the
/// weight files) so a profile can tell two quantizations apart.
pub fn fingerprint(engine: &Engine) -> std::io::Result<ModelFingerprint> {
    let c = engine.config();
    let files = match &engine.source {
        ModelSource::Gguf(p) => vec![p.clone()],
        ModelSource::Safetensors(dir) => {
            crate::engine::weights::safetensors_files(dir).map_err(std::io::Error::other)?
        }
    };
    Ok(ModelFingerprint {
        architecture: c.arch.name().to_string(),
        n_layers: c.n_layers,
        n_kv_heads: c.n_kv_heads,
        head_dim: c.head_dim,
        weights_sha256: Some(hash_files(&files)?),
        hub_id: None,
        revision: None,
        name: engine.info.name.clone(),
    })
}
