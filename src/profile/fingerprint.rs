//! Which model a profile belongs to, and whether another model is close
//! enough to use it.
//!
//! The shape fields (architecture, layer count, KV heads, head size) decide
//! whether a profile can be applied at all; the weights hash, when both sides
//! know it, decides whether the measurement still describes these weights.
//! Hub id, revision and name are labels for people and never block a load.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::format::{is_sha256_hex, ValidationError};

/// Identity of the model a profile was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFingerprint {
    /// Architecture family as the engine names it (`llama`, `qwen2`, ...).
    pub architecture: String,
    pub n_layers: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Lowercase hex SHA-256 over the weight files (see [`hash_files`]).
    #[serde(default)]
    pub weights_sha256: Option<String>,
    /// Hugging Face repository id, when the model came from the hub.
    #[serde(default)]
    pub hub_id: Option<String>,
    /// Hub revision (branch, tag or commit) the weights were taken from.
    #[serde(default)]
    pub revision: Option<String>,
    /// Display name.
    pub name: String,
}

/// The first field in which a profile's model and the loaded model disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub field: &'static str,
    /// The value recorded in the profile.
    pub profile: String,
    /// The value of the model at hand.
    pub model: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "profile was made for {}={}, this model has {}", self.field, self.profile, self.model)
    }
}

impl std::error::Error for Mismatch {}

impl ModelFingerprint {
    /// `self` is the fingerprint stored in the profile, `other` the model the
    /// profile is about to be applied to. Returns the first hard difference:
    /// architecture, n_layers, n_kv_heads, head_dim, then weights_sha256
    /// (only when both sides have one; compared case-insensitively).
    pub fn check_compatible(&self, other: &ModelFingerprint) -> Result<(), Mismatch> {
        fn differ(field: &'static str, a: impl ToString, b: impl ToString) -> Mismatch {
            Mismatch { field, profile: a.to_string(), model: b.to_string() }
        }
        if self.architecture != other.architecture {
            return Err(differ("architecture", &self.architecture, &other.architecture));
        }
        if self.n_layers != other.n_layers {
            return Err(differ("n_layers", self.n_layers, other.n_layers));
        }
        if self.n_kv_heads != other.n_kv_heads {
            return Err(differ("n_kv_heads", self.n_kv_heads, other.n_kv_heads));
        }
        if self.head_dim != other.head_dim {
            return Err(differ("head_dim", self.head_dim, other.head_dim));
        }
        if let (Some(a), Some(b)) = (&self.weights_sha256, &other.weights_sha256) {
            if !a.eq_ignore_ascii_case(b) {
                return Err(differ("weights_sha256", a, b));
            }
        }
        Ok(())
    }

    /// Label differences that do not block a load but are worth a warning:
    /// hub_id and revision when both sides record them, and a weights hash
    /// known on only one side (so the weights could not be compared).
    pub fn soft_differences(&self, other: &ModelFingerprint) -> Vec<String> {
        let mut out = Vec::new();
        for (field, a, b) in [("hub_id", &self.hub_id, &other.hub_id), ("revision", &self.revision, &other.revision)] {
            if let (Some(a), Some(b)) = (a, b) {
                if a != b {
                    out.push(format!("profile was made for {field}={a}, this model has {b}"));
                }
            }
        }
        match (&self.weights_sha256, &other.weights_sha256) {
            (Some(_), None) => {
                out.push("the profile records a weights hash but this model has none; weights not compared".into())
            }
            (None, Some(_)) => out.push("the profile records no weights hash; weights not compared".into()),
            _ => {}
        }
        out
    }

    pub(crate) fn validate(&self) -> Result<(), ValidationError> {
        if self.n_layers == 0 {
            return Err(ValidationError::NoLayers);
        }
        if self.architecture.trim().is_empty() {
            return Err(ValidationError::BadField { field: "model.architecture", reason: "must not be empty".into() });
        }
        for (field, v) in [("model.n_kv_heads", self.n_kv_heads), ("model.head_dim", self.head_dim)] {
            if v == 0 {
                return Err(ValidationError::BadField { field, reason: "must be at least 1".into() });
            }
        }
        if let Some(sha) = &self.weights_sha256 {
            if !is_sha256_hex(sha) {
                return Err(ValidationError::BadField {
                    field: "model.weights_sha256",
                    reason: format!("{sha:?} is not 64 hexadecimal characters"),
                });
            }
        }
        Ok(())
    }
}

/// Lowercase hex SHA-256 of a byte string.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 over several files read in the given order, as one stream. This is
/// how `weights_sha256` is computed for sharded weights (pass the shards
/// sorted by name so the order is stable).
pub fn hash_files<P: AsRef<Path>>(paths: &[P]) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for path in paths {
        let mut file = File::open(path.as_ref())?;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> ModelFingerprint {
        ModelFingerprint {
            architecture: "llama".into(),
            n_layers: 30,
            n_kv_heads: 4,
            head_dim: 128,
            weights_sha256: Some("AB".repeat(32)),
            hub_id: Some("org/a".into()),
            revision: Some("main".into()),
            name: "A".into(),
        }
    }

    #[test]
    fn identical_and_label_only_differences_are_compatible() {
        let a = fp();
        assert_eq!(a.check_compatible(&a), Ok(()));
        let mut b = fp();
        b.name = "renamed".into();
        b.hub_id = Some("mirror/a".into());
        b.revision = None;
        b.weights_sha256 = Some("ab".repeat(32)); // same hash, other case
        assert_eq!(a.check_compatible(&b), Ok(()));
        assert_eq!(
            a.soft_differences(&b),
            vec!["profile was made for hub_id=org/a, this model has mirror/a".to_string()]
        );
    }

    #[test]
    fn names_first_differing_field_with_both_values() {
        let a = fp();
        let mut b = fp();
        b.n_layers = 24;
        b.head_dim = 64;
        let m = a.check_compatible(&b).unwrap_err();
        assert_eq!(m.field, "n_layers");
        assert_eq!(m.to_string(), "profile was made for n_layers=30, this model has 24");

        let mut b = fp();
        b.architecture = "qwen2".into();
        b.n_layers = 1;
        assert_eq!(
            a.check_compatible(&b).unwrap_err().to_string(),
            "profile was made for architecture=llama, this model has qwen2"
        );

        let mut b = fp();
        b.n_kv_heads = 8;
        assert_eq!(a.check_compatible(&b).unwrap_err().field, "n_kv_heads");
        let mut b = fp();
        b.head_dim = 64;
        assert_eq!(
            a.check_compatible(&b).unwrap_err().to_string(),
            "profile was made for head_dim=128, this model has 64"
        );
    }

    #[test]
    fn weights_hash_compared_only_when_both_present() {
        let a = fp();
        let mut b = fp();
        b.weights_sha256 = Some("cd".repeat(32));
        let m = a.check_compatible(&b).unwrap_err();
        assert_eq!(m.field, "weights_sha256");
        assert_eq!(m.profile, "AB".repeat(32));
        assert_eq!(m.model, "cd".repeat(32));

        b.weights_sha256 = None;
        assert_eq!(a.check_compatible(&b), Ok(()));
        assert_eq!(a.soft_differences(&b).len(), 1);
        assert!(a.soft_differences(&b)[0].contains("weights not compared"));
    }

    #[test]
    fn sha256_of_known_inputs() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn hash_files_streams_concatenation() {
        let dir = std::env::temp_dir().join(format!("depthkv-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.bin");
        let b = dir.join("b.bin");
        std::fs::write(&a, b"ab").unwrap();
        std::fs::write(&b, b"c").unwrap();
        assert_eq!(hash_files(&[&a, &b]).unwrap(), sha256_hex(b"abc"));
        assert_ne!(hash_files(&[&b, &a]).unwrap(), sha256_hex(b"abc"));
        assert!(hash_files(&[dir.join("missing")]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn model_validation() {
        let mut a = fp();
        a.validate().unwrap();
        a.weights_sha256 = Some("not-a-hash".into());
        assert!(a.validate().unwrap_err().to_string().starts_with("model.weights_sha256:"));
        let mut a = fp();
        a.head_dim = 0;
        assert_eq!(a.validate().unwrap_err().to_string(), "model.head_dim: must be at least 1");
    }
}
