//! Shared by the integration tests: the real default model, installed on demand.
#![allow(dead_code)]

use depthkv::engine::device::DeviceChoice;
use depthkv::engine::source::ModelSource;
use depthkv::engine::{fetch, Engine, LoadOptions};
use std::path::PathBuf;

/// Installs the default model once per test process (tests run in parallel).
pub fn default_model_path() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        fetch::ensure_default_model(&mut |m| eprintln!("{m}")).expect("the default model could not be installed")
    })
    .clone()
}

/// The default model on the CPU, loaded once and shared by every test.
pub fn default_engine() -> &'static Engine {
    static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    ENGINE.get_or_init(owned_engine)
}

/// A fresh load, for tests that hand the engine to a worker thread.
pub fn owned_engine() -> Engine {
    Engine::load_source(
        ModelSource::Gguf(default_model_path()),
        &LoadOptions { device: DeviceChoice::Cpu, ..Default::default() },
    )
    .expect("load default model")
}
