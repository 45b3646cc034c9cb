//! Reading and writing profiles, the kvpress export, and the atomic file
//! writes they (and the plots in `eval`) rely on.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};
use thiserror::Error;

use super::format::{check_version, Profile, ValidationError};
use crate::userio::{read_bounded, BoundedReadError, MAX_PROFILE_BYTES};

/// Everything that can go wrong loading or saving a profile. Each variant
/// names the file involved.
#[derive(Debug, Error)]
pub enum ProfileError {
    #[error("profile not found: {}", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: invalid JSON at line {line}, column {column}: {message}", path.display())]
    Json { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{}: not a depthkv profile (no numeric \"format_version\" field)", path.display())]
    MissingVersion { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: ValidationError,
    },
    #[error("{} already exists; pass --overwrite to replace it", path.display())]
    Exists { path: PathBuf },
    #[error("{} is {what}; depthkv only replaces regular files, even with --overwrite", path.display())]
    NotRegular { path: PathBuf, what: &'static str },
    #[error(transparent)]
    Read(BoundedReadError),
}

impl ProfileError {
    fn io(path: &Path, source: io::Error) -> Self {
        ProfileError::Io { path: path.to_path_buf(), source }
    }

    fn json(path: &Path, e: &serde_json::Error) -> Self {
        // serde_json appends " at line L column C" to its Display; the
        // numbers live in their own fields here.
        let text = e.to_string();
        let message = match text.rfind(" at line ") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        ProfileError::Json { path: path.to_path_buf(), line: e.line(), column: e.column(), message }
    }
}

/// Read, parse and validate a profile.
///
/// The version is checked before the fields, so a profile from a newer
/// format reports "unsupported format_version" rather than whatever field
/// happens to differ.
pub fn load(path: impl AsRef<Path>) -> Result<Profile, ProfileError> {
    let path = path.as_ref();
    parse(&read_text(path)?, path)
}

/// A profile file's text, read with the size limit every profile has.
pub fn read_text(path: &Path) -> Result<String, ProfileError> {
    match read_bounded(path, MAX_PROFILE_BYTES) {
        Ok(t) => Ok(t),
        Err(e) if e.io_kind() == Some(io::ErrorKind::NotFound) => {
            Err(ProfileError::NotFound { path: path.to_path_buf() })
        }
        Err(e) => Err(ProfileError::Read(e)),
    }
}

/// Parse and validate profile text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Profile, ProfileError> {
    let raw: Value = serde_json::from_str(text).map_err(|e| ProfileError::json(path, &e))?;
    let version = raw
        .get("format_version")
        .and_then(Value::as_u64)
        .ok_or_else(|| ProfileError::MissingVersion { path: path.to_path_buf() })?;
    check_version(version).map_err(|source| ProfileError::Invalid { path: path.to_path_buf(), source })?;
    // Parse the text again (not the Value) so field errors keep line/column.
    let profile: Profile = serde_json::from_str(text).map_err(|e| ProfileError::json(path, &e))?;
    profile.validate().map_err(|source| ProfileError::Invalid { path: path.to_path_buf(), source })?;
    Ok(profile)
}

/// Validate and write a profile as pretty JSON, atomically. Parent
/// directories are created. Refuses to replace an existing file unless
/// `overwrite` is set.
pub fn save(profile: &Profile, path: impl AsRef<Path>, overwrite: bool) -> Result<(), ProfileError> {
    let path = path.as_ref();
    profile.validate().map_err(|source| ProfileError::Invalid { path: path.to_path_buf(), source })?;
    let mut text = serde_json::to_string_pretty(profile).expect("a profile always serializes");
    text.push('\n');
    write_atomic(path, text.as_bytes(), overwrite)
}

/// The profile as a kvpress `PerLayerCompressionPress` configuration:
/// `compression_ratios[i]` is the fraction of layer `i`'s cache removed,
/// `1 - kept_fractions[i]`, rounded to 9 decimals so that `1 - 0.7` is
/// written as `0.3`.
pub fn export_kvpress(profile: &Profile) -> Value {
    let ratios: Vec<f64> = profile.kept_fractions.iter().map(|&kept| ((1.0 - kept) * 1e9).round() / 1e9).collect();
    json!({
        "press": "PerLayerCompressionPress",
        "compression_ratios": ratios,
    })
}

/// Validate the profile, then write its kvpress export (see
/// [`export_kvpress`]) atomically.
pub fn save_kvpress(profile: &Profile, path: impl AsRef<Path>, overwrite: bool) -> Result<(), ProfileError> {
    let path = path.as_ref();
    profile.validate().map_err(|source| ProfileError::Invalid { path: path.to_path_buf(), source })?;
    let mut text = serde_json::to_string_pretty(&export_kvpress(profile)).expect("plain JSON serializes");
    text.push('\n');
    write_atomic(path, text.as_bytes(), overwrite)
}

/// Write `bytes` to `path` so that readers see either the old file or the
/// complete new one: the data goes to a temporary file in the same directory,
/// is flushed to disk, and is then moved into place. Parent directories are
/// created. With `overwrite == false` an existing file is never replaced,
/// even one that appears while we write.
pub fn write_atomic(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), ProfileError> {
    check_target(path, overwrite)?;
    let tmp = temp_sibling(path, "")?;
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(ProfileError::io(path, e));
    }
    commit_temp(&tmp, path, overwrite)
}

/// Whether `path` may be written: refuses an existing target without
/// `overwrite`, and anything that is not a regular file (a symlink, a device,
/// a FIFO, a folder) even with it, since write-by-rename would replace it.
/// Commands call this before loading a model, and the writers call it again.
pub fn check_target(path: &Path, overwrite: bool) -> Result<(), ProfileError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ProfileError::io(path, e)),
    };
    let kind = meta.file_type();
    let what = if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a folder"
    } else if !kind.is_file() {
        "a device, socket or pipe"
    } else if !overwrite {
        return Err(ProfileError::Exists { path: path.to_path_buf() });
    } else {
        return Ok(());
    };
    Err(ProfileError::NotRegular { path: path.to_path_buf(), what })
}

/// A fresh, unused path next to `path` for staging a write, ending in
/// `suffix` (some writers pick their format from the extension). Creates the
/// parent directory if needed, and removes staging files for the same target
/// left behind by processes that were killed mid-write.
pub fn temp_sibling(path: &Path, suffix: &str) -> Result<PathBuf, ProfileError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| ProfileError::io(&dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    super::stale::remove_stale_temps(&dir, &name);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(dir.join(format!(".{name}.tmp-{}-{n}{suffix}", std::process::id())))
}

/// Move a finished, fully written temporary file onto `path` (syncing it
/// first), then sync the directory. The temporary file is removed on error.
pub fn commit_temp(tmp: &Path, path: &Path, overwrite: bool) -> Result<(), ProfileError> {
    if let Err(e) = check_target(path, overwrite) {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    let result = (|| {
        File::open(tmp)?.sync_all()?;
        if overwrite {
            fs::rename(tmp, path)
        } else {
            // A hard link fails if the destination exists, which closes the
            // gap between our existence check and the move. Filesystems
            // without hard links fall back to check-then-rename.
            match fs::hard_link(tmp, path) {
                Ok(()) => fs::remove_file(tmp),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
                Err(_) => {
                    if path.exists() {
                        Err(io::Error::from(io::ErrorKind::AlreadyExists))
                    } else {
                        fs::rename(tmp, path)
                    }
                }
            }
        }
    })();
    match result {
        Ok(()) => {
            sync_parent(path);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_file(tmp);
            if e.kind() == io::ErrorKind::AlreadyExists {
                Err(ProfileError::Exists { path: path.to_path_buf() })
            } else {
                Err(ProfileError::io(path, e))
            }
        }
    }
}

/// Make the rename itself durable where the platform allows it.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::fingerprint::ModelFingerprint;
    use crate::profile::format::LayerSensitivity;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let p = std::env::temp_dir().join(format!(
                "depthkv-io-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn leftovers(&self) -> Vec<String> {
            fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tmp-"))
                .collect()
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn sample() -> Profile {
        let model = ModelFingerprint {
            architecture: "qwen2".into(),
            n_layers: 3,
            n_kv_heads: 2,
            head_dim: 64,
            weights_sha256: Some("0f".repeat(32)),
            hub_id: Some("Qwen/Qwen2.5-0.5B-Instruct".into()),
            revision: Some("main".into()),
            name: "Qwen2.5 0.5B".into(),
        };
        let mut p = Profile::new(model, crate::prune::StrategyKind::DepthKv, 0.5, vec![0.7, 0.5, 0.3]);
        p.sensitivity = Some(vec![
            LayerSensitivity { mean: 0.9, ci_low: 0.8, ci_high: 1.0 },
            LayerSensitivity { mean: 0.5, ci_low: 0.4, ci_high: 0.6 },
            LayerSensitivity { mean: 0.1, ci_low: 0.05, ci_high: 0.15 },
        ]);
        p
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = TempDir::new("rt");
        let path = dir.0.join("nested/deeper/p.json");
        let p = sample();
        save(&p, &path, false).unwrap();
        assert_eq!(load(&path).unwrap(), p);
        assert!(dir.leftovers().is_empty());
        assert!(fs::read_to_string(&path).unwrap().ends_with("}\n"));
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = TempDir::new("ow");
        let path = dir.0.join("p.json");
        fs::write(&path, "keep me").unwrap();
        let err = save(&sample(), &path, false).unwrap_err();
        assert!(matches!(err, ProfileError::Exists { .. }));
        assert!(err.to_string().contains("pass --overwrite"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "keep me");

        save(&sample(), &path, true).unwrap();
        assert_eq!(load(&path).unwrap(), sample());
        assert!(dir.leftovers().is_empty());
    }

    #[test]
    fn commit_without_overwrite_loses_race_cleanly() {
        // The destination appears after the early check but before commit.
        let dir = TempDir::new("race");
        let path = dir.0.join("x.txt");
        let tmp = temp_sibling(&path, "").unwrap();
        fs::write(&tmp, "new").unwrap();
        fs::write(&path, "old").unwrap();
        let err = commit_temp(&tmp, &path, false).unwrap_err();
        assert!(matches!(err, ProfileError::Exists { .. }));
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert!(dir.leftovers().is_empty());
    }

    #[test]
    fn invalid_profile_is_not_written() {
        let dir = TempDir::new("inv");
        let path = dir.0.join("p.json");
        let mut p = sample();
        p.kept_fractions[1] = 1.5;
        let err = save(&p, &path, false).unwrap_err();
        assert_eq!(err.to_string(), format!("{}: kept_fractions[1] = 1.5 is outside (0, 1]", path.display()));
        assert!(!path.exists());
        assert!(dir.leftovers().is_empty());
    }

    #[test]
    fn missing_file_error() {
        let err = load("/definitely/not/here.json").unwrap_err();
        assert!(matches!(err, ProfileError::NotFound { .. }));
        assert_eq!(err.to_string(), "profile not found: /definitely/not/here.json");
    }

    #[test]
    fn json_syntax_error_has_line_and_column() {
        let text = "{\n  \"format_version\": 1,\n  \"strategy\": oops\n}";
        let err = parse(text, Path::new("p.json")).unwrap_err();
        match &err {
            ProfileError::Json { line, column, .. } => {
                assert_eq!(*line, 3);
                assert_eq!(*column, 15);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().starts_with("p.json: invalid JSON at line 3, column 15: expected value"));
    }

    #[test]
    fn wrong_version_reported_before_field_errors() {
        let err = parse(r#"{"format_version": 7, "something": "else"}"#, Path::new("p.json")).unwrap_err();
        assert_eq!(err.to_string(), "p.json: unsupported profile format_version 7 (this build reads 1)");
        let err = parse(r#"{"strategy": "x"}"#, Path::new("p.json")).unwrap_err();
        assert!(matches!(err, ProfileError::MissingVersion { .. }));
        let err = parse("[1, 2]", Path::new("p.json")).unwrap_err();
        assert!(matches!(err, ProfileError::MissingVersion { .. }));
    }

    #[test]
    fn missing_field_reports_position() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v.as_object_mut().unwrap().remove("strategy");
        let text = serde_json::to_string_pretty(&v).unwrap();
        let err = parse(&text, Path::new("p.json")).unwrap_err();
        match err {
            ProfileError::Json { message, .. } => {
                assert_eq!(message, "missing field `strategy`")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v.as_object_mut().unwrap().insert("future_field".into(), json!({"a": 1}));
        let p = parse(&v.to_string(), Path::new("p.json")).unwrap();
        assert_eq!(p, sample());
    }

    #[test]
    fn kvpress_export_shape_and_values() {
        let v = export_kvpress(&sample());
        assert_eq!(v, json!({"press": "PerLayerCompressionPress", "compression_ratios": [0.3, 0.5, 0.7]}));
        let dir = TempDir::new("kv");
        let path = dir.0.join("press.json");
        save_kvpress(&sample(), &path, false).unwrap();
        let back: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, v);
        assert!(matches!(save_kvpress(&sample(), &path, false), Err(ProfileError::Exists { .. })));
    }

    /// The fenced ```json blocks of the format document, in order.
    fn doc_json_blocks() -> Vec<Value> {
        let doc = include_str!("../../docs/profile-format.md");
        doc.split("```json\n")
            .skip(1)
            .map(|rest| serde_json::from_str(&rest[..rest.find("```").unwrap()]).unwrap())
            .collect()
    }

    #[test]
    fn documented_example_is_valid_and_export_matches() {
        let blocks = doc_json_blocks();
        assert_eq!(blocks.len(), 2);
        let profile = parse(&blocks[0].to_string(), Path::new("doc")).unwrap();
        assert_eq!(profile.model.n_layers, 4);
        assert!((profile.mean_kept_fraction() - profile.global_budget).abs() < 1e-12);
        assert!(profile.calibration.is_some() && profile.sensitivity.is_some());
        assert_eq!(export_kvpress(&profile), blocks[1]);
        // Every documented field name round-trips: nothing is dropped.
        assert_eq!(serde_json::to_value(&profile).unwrap(), blocks[0]);
    }

    #[test]
    fn temp_sibling_is_in_same_dir_and_unique() {
        let dir = TempDir::new("sib");
        let target = dir.0.join("sub/plot.png");
        let a = temp_sibling(&target, ".png").unwrap();
        let b = temp_sibling(&target, ".png").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(dir.0.join("sub").as_path()));
        assert!(a.to_string_lossy().ends_with(".png"));
        assert!(dir.0.join("sub").is_dir());
    }
}
