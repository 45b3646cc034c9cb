//! Errors the engine reports; each message says what to do next.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model file not found: {0}")]
    ModelNotFound(PathBuf),
    #[error("{0} is not a model file (a device, pipe or socket); give a .gguf file or a model folder")]
    NotAModelFile(PathBuf),
    #[error("could not read GGUF file {path}: {reason} (is it truncated or not a GGUF file?)")]
    BadGguf { path: PathBuf, reason: String },
    #[error("unsupported architecture `{0}`: depthkv runs {supported}", supported = super::family::SUPPORTED)]
    UnknownArchitecture(String),
    #[error("model metadata is missing `{0}`")]
    MissingMetadata(String),
    #[error("bad model config: {0}")]
    BadConfig(String),
    #[error("no tokenizer found: {0}")]
    MissingTokenizer(String),
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("the prompt has {tokens} tokens but the model's context is {context}")]
    PromptTooLong { tokens: usize, context: usize },
    #[error(
        "CUDA was requested but this build has no CUDA support; rebuild with `--features cuda` or use --device cpu"
    )]
    CudaNotBuilt,
    #[error("CUDA device could not be opened: {0}")]
    CudaUnavailable(String),
    #[error("unknown device `{0}`: use auto, cpu or cuda")]
    UnknownDevice(String),
    #[error("bad cache selection: {0}")]
    BadSelection(String),
    #[error("hub download failed for {repo}: {reason}")]
    Hub { repo: String, reason: String },
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("io error at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

pub type Result<T> = std::result::Result<T, EngineError>;
