//! The terminal workbench.
//!
//! Architecture (Elm-like): [`app::App`] holds all state; [`app::update`] is
//! the one function that changes it, turning [`app::Action`]s (keys, mouse,
//! ticks, engine events) into [`app::Effect`]s (engine commands, profile
//! files); [`render::render`] draws the state and never mutates it.
//! [`run::run_tui`] wires a terminal, the key/mouse stream and the engine's
//! event channel together. [`fake`] drives the same code from scripts in tests.

pub mod app;
pub mod budget;
pub mod config;
pub mod editor;
pub mod fake;
pub mod fake_cache;
pub mod heat;
pub mod keys;
pub mod layout;
pub mod menu;
pub mod pane;
pub mod profile_io;
pub mod render;
pub mod run;
mod signals;
pub mod text;
pub mod theme;
pub mod widgets;
mod workbench;

pub use app::{update, Action, App, Effect};
pub use render::render;
pub use run::{run_tui, TuiOptions};
