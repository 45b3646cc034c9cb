//! Profile export/import for the TUI (file I/O lives here, not in `update`).

use std::path::{Path, PathBuf};

use crate::engine::protocol::ModelInfo;

use super::app::{App, ImportedProfile};

/// Writes the current split as a profile; returns the path written.
pub fn export(_app: &App, path: &Path) -> Result<PathBuf, String> {
    Err(format!(
        "cannot write {}: profile support is not built into this version",
        path.display()
    ))
}

/// Reads a profile and checks it against the loaded model.
pub fn import(path: &Path, _model: Option<&ModelInfo>) -> Result<ImportedProfile, String> {
    Err(format!(
        "cannot read {}: profile support is not built into this version",
        path.display()
    ))
}
