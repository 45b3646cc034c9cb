//! On-disk configuration types (what users write), kept apart from the runtime
//! types they are turned into (`keys::Keymap`, `theme::Theme`).
//!
//! Files live in `ProjectDirs::from("org", "depthkv", "depthkv").config_dir()`:
//! - `keys.toml`: `[bindings]` table, `action = "key"` or `action = ["key", ...]`;
//! - `themes/NAME.toml`: a theme, optionally `extends = "dark"` and partial.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::userio::{read_bounded, MAX_CONFIG_BYTES};

/// The config directory, if the platform has one.
pub fn config_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "depthkv", "depthkv").map(|d| d.config_dir().to_path_buf())
}

/// Default folder for exported profiles: `crate::profile::profiles_dir()`
/// (`$DEPTHKV_HOME/profiles` or `<data dir>/profiles`).
pub fn default_profiles_dir() -> PathBuf {
    crate::profile::profiles_dir()
}

/// One key or a list of keys.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum KeyList {
    One(String),
    Many(Vec<String>),
}

impl KeyList {
    pub fn as_slice(&self) -> &[String] {
        match self {
            KeyList::One(k) => std::slice::from_ref(k),
            KeyList::Many(v) => v,
        }
    }
}

/// `keys.toml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    #[serde(default)]
    pub bindings: BTreeMap<String, KeyList>,
}

impl KeysFile {
    /// Reads `<dir>/keys.toml`; a missing file is the empty override set.
    pub fn load_from_dir(dir: Option<&Path>) -> anyhow::Result<KeysFile> {
        let Some(dir) = dir else {
            return Ok(KeysFile::default());
        };
        let path = dir.join("keys.toml");
        match read_bounded(&path, MAX_CONFIG_BYTES) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("could not parse key bindings in {}", path.display()))
            }
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => Ok(KeysFile::default()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Interface colours of a theme file; every entry optional so user themes can
/// override a few colours of the theme they extend. Colours are names
/// ("dark-gray"), "#rrggbb", an ANSI index ("236") or "reset".
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UiColorsFile {
    pub bg: Option<String>,
    pub fg: Option<String>,
    pub dim: Option<String>,
    pub accent: Option<String>,
    pub title: Option<String>,
    pub border: Option<String>,
    pub border_focus: Option<String>,
    pub selection_bg: Option<String>,
    pub selection_fg: Option<String>,
    pub bar_fill: Option<String>,
    pub bar_empty: Option<String>,
    pub uniform_marker: Option<String>,
    pub locked: Option<String>,
    pub sensitivity: Option<String>,
    pub ok: Option<String>,
    pub warn: Option<String>,
    pub error: Option<String>,
    pub diverge_fg: Option<String>,
    pub diverge_bg: Option<String>,
    pub evicted: Option<String>,
    pub partial: Option<String>,
    pub cursor_fg: Option<String>,
    pub cursor_bg: Option<String>,
    pub gauge: Option<String>,
    /// Colours of the panes by slot; the first three also go by their
    /// names from when there were three fixed panes.
    #[serde(alias = "pane_full")]
    pub pane_1: Option<String>,
    #[serde(alias = "pane_uniform")]
    pub pane_2: Option<String>,
    #[serde(alias = "pane_custom")]
    pub pane_3: Option<String>,
    pub pane_4: Option<String>,
    pub pane_5: Option<String>,
    pub pane_6: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeatmapColorsFile {
    /// Colour of positions no KV head keeps.
    pub evicted: Option<String>,
    /// Colour stops from low to high, evenly spaced, interpolated in RGB.
    pub ramp: Option<Vec<String>>,
}

/// `themes/NAME.toml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThemeFile {
    pub name: Option<String>,
    /// Built-in or user theme this one starts from (default: none for
    /// built-ins, "dark" for user themes).
    pub extends: Option<String>,
    #[serde(default)]
    pub ui: UiColorsFile,
    #[serde(default)]
    pub heatmap: HeatmapColorsFile,
}
