//! Profile export/import for the TUI. File I/O lives here, called by the run
//! loop for `Effect::Export`/`Effect::Import`, never from `update`.

use std::path::{Path, PathBuf};

use crate::engine::ModelInfo;
use crate::profile::{self, ModelFingerprint, Profile, ProfileError};
use crate::prune::{self, StrategyKind};

use super::app::{App, ImportedProfile};

/// What the engine tells us about the model, as a profile fingerprint.
/// `ModelInfo` carries no weights hash or hub revision, so those stay empty:
/// imports check the model's shape, and only warn that weights were not compared.
pub fn fingerprint(model: &ModelInfo) -> ModelFingerprint {
    ModelFingerprint {
        architecture: model.architecture.clone(),
        n_layers: model.n_layers,
        n_kv_heads: model.n_kv_heads,
        head_dim: model.head_dim,
        weights_sha256: None,
        hub_id: None,
        revision: None,
        name: model.name.clone(),
    }
}

/// The profile the selected pane's split corresponds to.
pub fn current_profile(app: &App) -> Result<Profile, String> {
    let model = app.model.as_ref().ok_or("the model is still loading")?;
    let b = app.split();
    if !b.is_ready() {
        return Err("no budgets yet (waiting for the prompt prefill)".into());
    }
    if b.is_full() {
        return Err("the full pane keeps every token: select a pruned pane ([ ]) to export its split".into());
    }
    let fractions = prune::kept_fractions(&b.layers, b.prompt_len);
    // Shape names are strategy names; an edited split is a manual one.
    let strategy = if b.edited { StrategyKind::Manual } else { b.shape.name().parse().unwrap_or(StrategyKind::Manual) };
    let mut p = Profile::new(fingerprint(model), strategy, b.effective_fraction(), fractions);
    p.sensitivity = app.sensitivity.clone();
    let mut notes = format!("exported from the depthkv TUI ({}", b.label());
    if let Some(name) = &app.profile_name {
        notes.push_str(&format!(", from profile {name}"));
    }
    notes.push_str(&format!(
        "; {} layers locked; prompt of {} tokens)",
        b.locked.iter().filter(|l| **l).count(),
        b.prompt_len
    ));
    p.notes = Some(notes);
    Ok(p)
}

/// Writes the current split as a profile (refusing to overwrite); returns
/// the path written. A file name without extension gets `.json`; a folder is
/// refused (it used to become `FOLDER.json` beside it).
pub fn export(app: &App, path: &Path) -> Result<PathBuf, String> {
    let p = current_profile(app)?;
    let names_folder = path.as_os_str().to_string_lossy().ends_with(std::path::MAIN_SEPARATOR) || path.is_dir();
    if names_folder {
        return Err(format!(
            "{} is a folder; give a file name in it, e.g. {}",
            path.display(),
            path.join("profile.json").display()
        ));
    }
    let path = if path.extension().is_none() { path.with_extension("json") } else { path.to_path_buf() };
    match profile::save(&p, &path, false) {
        Ok(()) => Ok(path),
        Err(ProfileError::Exists { path }) => {
            Err(format!("{} already exists; choose another name (e) or delete it first", path.display()))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Reads a profile and checks it against the loaded model: shape mismatches
/// are errors, label differences become warnings.
pub fn import(path: &Path, model: Option<&ModelInfo>) -> Result<ImportedProfile, String> {
    let model = model.ok_or("wait for the model to load before importing a profile")?;
    let p = profile::load(path).map_err(|e| e.to_string())?;
    let fp = fingerprint(model);
    p.model.check_compatible(&fp).map_err(|m| format!("{}: {m}", path.display()))?;
    let warnings = p.model.soft_differences(&fp);
    // The name is shown in the header: a file name may hold control characters.
    let name = path.file_stem().map(|s| crate::userio::sanitize(&s.to_string_lossy()).into_owned());
    let name = name.unwrap_or_else(|| p.strategy.to_string());
    Ok(ImportedProfile {
        name,
        path: path.to_path_buf(),
        global_budget: p.global_budget,
        fractions: p.kept_fractions,
        sensitivity: p.sensitivity,
        warnings,
    })
}
