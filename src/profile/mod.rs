//! Versioned JSON profiles: one per-layer KV budget for one model, with the
//! calibration that produced it. See `docs/profile-format.md`.
//!
//! - `format`: the document types and their validation.
//! - `fingerprint`: model identity and the compatibility check.
//! - `io`: load/save (atomic), the kvpress export.

pub mod fingerprint;
pub mod format;
pub mod io;
pub mod model;
mod stale;

use std::ffi::OsStr;
use std::path::PathBuf;

pub use self::fingerprint::{hash_files, sha256_hex, Mismatch, ModelFingerprint};
pub use self::format::{
    format_rfc3339_utc, now_rfc3339, CalibrationMeta, LayerSensitivity, Profile, ValidationError, FORMAT_VERSION,
    SUPPORTED_VERSIONS,
};
pub use self::io::{check_target, export_kvpress, load, save, save_kvpress, ProfileError};

/// Environment variable that, when set and non-empty, replaces the platform
/// data directory.
pub const HOME_ENV: &str = "DEPTHKV_HOME";

/// Where named profiles live: `$DEPTHKV_HOME/profiles` when that variable is
/// set, otherwise `<platform data dir>/profiles` (for example
/// `~/.local/share/depthkv/profiles` on Linux). The directory may not exist
/// yet; `save` creates it.
pub fn profiles_dir() -> PathBuf {
    profiles_dir_from(std::env::var_os(HOME_ENV).as_deref())
}

/// [`profiles_dir`] with the environment value passed in, for testing.
fn profiles_dir_from(home: Option<&OsStr>) -> PathBuf {
    data_dir_from(home).join("profiles")
}

fn data_dir_from(home: Option<&OsStr>) -> PathBuf {
    match home {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => directories::ProjectDirs::from("org", "depthkv", "depthkv")
            .map(|d| d.data_dir().to_path_buf())
            // No home directory at all (some containers): stay local.
            .unwrap_or_else(|| PathBuf::from(".depthkv")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depthkv_home_overrides_data_dir() {
        assert_eq!(profiles_dir_from(Some(OsStr::new("/srv/dkv"))), PathBuf::from("/srv/dkv/profiles"));
    }

    #[test]
    fn empty_or_unset_home_uses_platform_dir() {
        let a = profiles_dir_from(None);
        let b = profiles_dir_from(Some(OsStr::new("")));
        assert_eq!(a, b);
        assert!(a.ends_with("profiles"));
        if let Some(d) = directories::ProjectDirs::from("org", "depthkv", "depthkv") {
            assert_eq!(a, d.data_dir().join("profiles"));
            assert!(a.to_string_lossy().contains("depthkv"));
        }
    }
}
