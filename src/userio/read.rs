//! Size-limited reads of user files.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Largest profile accepted (a 1000-layer profile is about 200 KiB).
pub const MAX_PROFILE_BYTES: u64 = 16 << 20;
/// Largest prompt file (`--prompt-file`): far beyond any model context.
pub const MAX_PROMPT_BYTES: u64 = 64 << 20;
/// Largest prompt set (JSONL).
pub const MAX_PROMPT_SET_BYTES: u64 = 256 << 20;
/// Largest keys.toml or theme file.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why a user file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BoundedReadError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is a folder, not a file", path.display())]
    Folder { path: PathBuf },
    #[error("{} is larger than the {} MiB this file may have", path.display(), limit >> 20)]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{} is not UTF-8 text (invalid byte at offset {offset})", path.display())]
    NotText { path: PathBuf, offset: usize },
}

impl BoundedReadError {
    /// The underlying I/O error kind, if this is an I/O error.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            BoundedReadError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// Reads a UTF-8 text file of at most `max_bytes` bytes. Never reads more than
/// `max_bytes + 1` bytes, so endless sources (`/dev/zero`, a pipe that never
/// ends) are refused after that much, not read until memory runs out.
pub fn read_bounded(path: &Path, max_bytes: u64) -> Result<String, BoundedReadError> {
    let io_err = |source| BoundedReadError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(BoundedReadError::Folder { path: path.to_path_buf() });
    }
    // Regular files announce their size: refuse before reading anything.
    if meta.is_file() && meta.len() > max_bytes {
        return Err(BoundedReadError::TooLarge { path: path.to_path_buf(), limit: max_bytes });
    }
    let hint = if meta.is_file() { meta.len() as usize } else { 0 };
    let mut bytes = Vec::with_capacity(hint);
    file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(io_err)?;
    if bytes.len() as u64 > max_bytes {
        return Err(BoundedReadError::TooLarge { path: path.to_path_buf(), limit: max_bytes });
    }
    String::from_utf8(bytes)
        .map_err(|e| BoundedReadError::NotText { path: path.to_path_buf(), offset: e.utf8_error().valid_up_to() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, bytes: &[u8]) -> PathBuf {
        let p = std::env::temp_dir().join(format!("depthkv-read-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn reads_small_text() {
        let p = temp("ok", "héllo\n".as_bytes());
        assert_eq!(read_bounded(&p, 100).unwrap(), "héllo\n");
        assert_eq!(read_bounded(&p, 7).unwrap(), "héllo\n");
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn refuses_files_over_the_limit() {
        let p = temp("big", &[b'a'; 10]);
        let e = read_bounded(&p, 9).unwrap_err();
        assert!(matches!(e, BoundedReadError::TooLarge { limit: 9, .. }), "{e}");
        std::fs::remove_file(p).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn endless_device_is_cut_at_the_limit() {
        let e = read_bounded(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(matches!(e, BoundedReadError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("/dev/zero is larger than the 1 MiB"), "{e}");
    }

    #[test]
    fn folders_and_binary_are_named() {
        let dir = std::env::temp_dir();
        assert!(matches!(read_bounded(&dir, 100), Err(BoundedReadError::Folder { .. })));
        let p = temp("bin", &[b'o', b'k', 0xff, 0xfe]);
        let e = read_bounded(&p, 100).unwrap_err();
        assert!(e.to_string().contains("not UTF-8 text (invalid byte at offset 2)"), "{e}");
        std::fs::remove_file(p).unwrap();
        let e = read_bounded(Path::new("/definitely/not/here"), 100).unwrap_err();
        assert_eq!(e.io_kind(), Some(io::ErrorKind::NotFound));
    }
}
