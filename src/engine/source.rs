//! Resolving `--model`: a folder, a .gguf file, a Hugging Face repo id, or
//! nothing (the default model, installed on demand).

use super::error::{EngineError, Result};
use super::fetch;
use std::path::{Path, PathBuf};

/// Where the weights are, once local.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    Gguf(PathBuf),
    /// A folder with config.json, tokenizer.json and safetensors.
    Safetensors(PathBuf),
}

impl ModelSource {
    pub fn path(&self) -> &Path {
        match self {
            ModelSource::Gguf(p) | ModelSource::Safetensors(p) => p,
        }
    }
}

/// How to reach the hub: where its cache is (HF_HOME) and whether to stay offline.
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub cache_dir: PathBuf,
    pub offline: bool,
}

impl HubSettings {
    /// Reads HF_HOME and HF_HUB_OFFLINE the way the Python hub client does.
    pub fn from_env() -> Self {
        let offline =
            std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"));
        Self { cache_dir: hf_hub::Cache::from_env().path().clone(), offline }
    }
}

/// A spec that is not a local path but looks like `owner/name` or `owner/name:file.gguf`.
fn parse_hub_id(spec: &str) -> Option<(String, Option<String>)> {
    let (repo, file) = match spec.split_once(':') {
        Some((r, f)) => (r, Some(f.to_string())),
        None => (spec, None),
    };
    let parts: Vec<&str> = repo.split('/').collect();
    let ok = parts.len() == 2 && parts.iter().all(|p| !p.is_empty() && !p.starts_with('.'));
    ok.then(|| (repo.to_string(), file))
}

/// Resolves a `--model` value. `None` installs (if needed) and returns the default model.
pub fn resolve(spec: Option<&str>, hub: &HubSettings, log: &mut dyn FnMut(&str)) -> Result<ModelSource> {
    let Some(spec) = spec else {
        let path = fetch::ensure_default_model(log)
            .map_err(|e| EngineError::Hub { repo: fetch::DEFAULT_MODEL_HUB_REPO.into(), reason: e.to_string() })?;
        return Ok(ModelSource::Gguf(path));
    };
    let path = Path::new(spec);
    if path.is_file() {
        return Ok(ModelSource::Gguf(path.to_path_buf()));
    }
    if path.is_dir() {
        return resolve_dir(path);
    }
    if path.exists() {
        return Err(EngineError::NotAModelFile(path.to_path_buf()));
    }
    match parse_hub_id(spec) {
        Some((repo, file)) if !spec.ends_with(".gguf") || file.is_some() => from_hub(&repo, file.as_deref(), hub, log),
        _ => Err(EngineError::ModelNotFound(path.to_path_buf())),
    }
}

fn resolve_dir(dir: &Path) -> Result<ModelSource> {
    if dir.join("config.json").exists() {
        return Ok(ModelSource::Safetensors(dir.to_path_buf()));
    }
    let ggufs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| EngineError::Io { path: dir.to_path_buf(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    match ggufs.as_slice() {
        [one] => Ok(ModelSource::Gguf(one.clone())),
        [] => Err(EngineError::ModelNotFound(dir.join("config.json or *.gguf"))),
        many => Err(EngineError::BadConfig(format!(
            "{} holds {} .gguf files; pass one of them with --model",
            dir.display(),
            many.len()
        ))),
    }
}

/// Files of a safetensors repo that the engine reads.
const HF_FILES: [&str; 2] = ["config.json", "tokenizer.json"];

fn from_hub(repo: &str, file: Option<&str>, hub: &HubSettings, log: &mut dyn FnMut(&str)) -> Result<ModelSource> {
    let err = |reason: String| EngineError::Hub { repo: repo.to_string(), reason };
    let cache = hub_cache(hub).model(repo.to_string());
    let get = |name: &str, log: &mut dyn FnMut(&str)| -> Result<PathBuf> {
        if let Some(p) = cache.get(name) {
            return Ok(p);
        }
        if hub.offline {
            return Err(err(format!(
                "{name} is not in the hub cache at {} and HF_HUB_OFFLINE is set",
                hub.cache_dir.display()
            )));
        }
        log(&format!("downloading {repo}/{name}"));
        let api = hf_hub::api::sync::ApiBuilder::new()
            .with_cache_dir(hub.cache_dir.clone())
            .with_progress(true)
            .build()
            .map_err(|e| err(e.to_string()))?;
        api.model(repo.to_string()).get(name).map_err(|e| err(format!("{name}: {e}")))
    };
    if let Some(file) = file {
        return Ok(ModelSource::Gguf(get(file, log)?));
    }
    let mut dir = None;
    for name in HF_FILES {
        dir = get(name, log)?.parent().map(Path::to_path_buf);
    }
    let dir = dir.ok_or_else(|| err("no snapshot folder".into()))?;
    if get("model.safetensors", log).is_err() {
        let index = get("model.safetensors.index.json", log)?;
        for shard in super::weights::safetensors_files(index.parent().unwrap_or(&dir))? {
            let name = shard.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            get(&name, log)?;
        }
    }
    Ok(ModelSource::Safetensors(dir))
}

fn hub_cache(hub: &HubSettings) -> hf_hub::Cache {
    hf_hub::Cache::new(hub.cache_dir.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_recognised() {
        assert_eq!(parse_hub_id("a/b"), Some(("a/b".into(), None)));
        assert_eq!(parse_hub_id("a/b:x.gguf"), Some(("a/b".into(), Some("x.gguf".into()))));
        assert_eq!(parse_hub_id("a/b/c"), None);
        assert_eq!(parse_hub_id("./b"), None);
        assert_eq!(parse_hub_id("plain"), None);
    }
}
