//! What changes the set of panes and their variants: selecting, adding and
//! removing panes, the variants menu, the pane's scorer, head split, KV
//! precision and decode-phase eviction, the global budget (shared by every pruned pane), calibration
//! and imported profiles. Part of `update` (no I/O).

use crate::engine::KvPrecision;
use crossterm::event::{KeyCode, KeyEvent};

use super::app::{App, EditorKind, ImportedProfile, Level, Overlay};
use super::budget::Shape;
use super::layout;
use super::menu::{self, AddKind, MenuItem};
use super::pane::{free_colour, split_like, PaneState, MAX_PANES, MIN_PANES};
use crate::prune::{DepthRule, HeadSplit, Scorer, PYRAMID_BETA};

impl App {
    /// Selects pane `i` (clamped); the bars, heatmap and tokens follow it.
    pub(super) fn select_pane(&mut self, i: isize) {
        self.pane = i.clamp(0, self.panes.len() as isize - 1) as usize;
        self.drag = None;
    }

    /// Adds a pane with this split (the selected pane's scorer) and selects it.
    fn add_pane(&mut self, shape: Shape) -> bool {
        if self.panes.len() >= MAX_PANES {
            self.message(Level::Warn, format!("{MAX_PANES} panes at most: remove one first (x)"));
            return false;
        }
        let name = shape.name();
        let split = match split_like(self.split(), shape) {
            Ok(s) => s,
            Err(e) => {
                self.message(Level::Warn, format!("could not add a {name} pane: {e}"));
                return false;
            }
        };
        let from = self.selected_pane();
        let from = if from.is_full() { self.panes.iter().find(|p| !p.is_full()).unwrap_or(from) } else { from };
        let (scorer, heads) = (from.scorer, from.heads);
        let pane = PaneState { heads, ..PaneState::new(self.next_variant, free_colour(&self.panes), split, scorer) };
        self.next_variant += 1;
        self.panes.push(pane);
        self.pane = self.panes.len() - 1;
        self.schedule_rerun();
        true
    }

    /// Removes the selected pane (never below `MIN_PANES`). Removing the
    /// last full pane keeps its tokens as the hidden reference, so first
    /// divergences stay until the next run brings the reference itself.
    pub(super) fn remove_pane(&mut self) {
        if self.panes.len() <= MIN_PANES {
            return self.message(Level::Warn, format!("{MIN_PANES} panes at least"));
        }
        let gone = self.panes.remove(self.pane);
        if gone.is_full() && !self.panes.iter().any(PaneState::is_full) {
            self.reference = gone.tokens;
        }
        self.pane = self.pane.min(self.panes.len() - 1);
        self.drag = None;
    }

    /// Changes the selected pane unless it is the full one (which `why`
    /// explains), then re-runs.
    fn edit_pruned_pane(&mut self, why: &str, edit: impl FnOnce(&mut PaneState)) {
        if self.selected_pane().is_full() {
            return self.message(Level::Warn, format!("the full pane keeps every token: {why}"));
        }
        edit(&mut self.panes[self.pane]);
        self.schedule_rerun();
    }

    pub(super) fn cycle_scorer(&mut self) {
        self.edit_pruned_pane("its scorer does not matter", |p| {
            let at = Scorer::ALL.iter().position(|s| *s == p.scorer).unwrap_or(0);
            p.scorer = Scorer::ALL[(at + 1) % Scorer::ALL.len()];
        });
    }

    pub(super) fn toggle_decode_evict(&mut self) {
        self.edit_pruned_pane("nothing to evict", |p| p.decode_evict = !p.decode_evict);
    }

    /// Native → int8 → int4 storage of the selected pane's kept tokens.
    pub(super) fn cycle_precision(&mut self) {
        self.edit_pruned_pane("it is the unpruned reference, at native precision", |p| {
            let at = KvPrecision::ALL.iter().position(|x| *x == p.precision).unwrap_or(0);
            p.precision = KvPrecision::ALL[(at + 1) % KvPrecision::ALL.len()];
        });
    }

    /// Even ↔ ada (AdaKV) sharing of each layer's budget among its KV heads.
    pub(super) fn cycle_heads(&mut self) {
        let ada = HeadSplit::Ada { safeguard: self.ada_safeguard };
        self.edit_pruned_pane("every head keeps every token", |p| {
            p.heads = if p.heads == HeadSplit::Even { ada } else { HeadSplit::Even };
        });
    }

    /// The global budget of every pane; a change re-runs.
    pub(super) fn set_global(&mut self, fraction: f64) {
        let before: Vec<(Vec<usize>, f64)> =
            self.panes.iter().map(|p| (p.split.layers.clone(), p.split.global)).collect();
        let mut failed = None;
        for p in &mut self.panes {
            if let Err(e) = p.split.set_global(fraction) {
                failed = Some(e);
            }
        }
        if let Some(e) = failed {
            self.message(Level::Warn, e.to_string());
        }
        let after: Vec<(Vec<usize>, f64)> =
            self.panes.iter().map(|p| (p.split.layers.clone(), p.split.global)).collect();
        if after != before {
            self.schedule_rerun();
        }
    }

    /// New sensitivity: every DepthKV pane takes it; without one, a DepthKV
    /// pane is added (or, at six panes, the selected pruned pane becomes
    /// one). Returns what happened, for the status line.
    pub(super) fn apply_calibration(&mut self) -> Result<String, crate::prune::PruneError> {
        let Some(means) = self.sensitivity_means() else {
            return Ok("no sensitivity".into());
        };
        let shape = || Shape::DepthKv { sensitivity: means.clone(), rule: DepthRule::Proportional };
        let mut updated = 0;
        for p in &mut self.panes {
            if let Shape::DepthKv { rule, .. } = &p.split.shape {
                let rule = rule.clone();
                p.split.set_shape(Shape::DepthKv { sensitivity: means.clone(), rule })?;
                updated += 1;
            }
        }
        if updated > 0 {
            return Ok(format!("DepthKV split updated in {updated} pane(s)"));
        }
        if self.panes.len() < MAX_PANES && self.add_pane(shape()) {
            return Ok("DepthKV pane added".into());
        }
        if self.selected_pane().is_full() {
            return Ok("add a DepthKV pane (a d) to use it".into());
        }
        self.split_mut().set_shape(shape())?;
        Ok(format!("pane #{} switched to DepthKV", self.pane + 1))
    }

    /// A profile read from disk: its split goes into the selected pane (a
    /// new pane when asked from the menu or when the full pane is selected),
    /// its global budget to every pane, its sensitivity to the DepthKV panes.
    pub(super) fn on_profile_imported(&mut self, r: Result<ImportedProfile, String>) {
        let into_new = std::mem::take(&mut self.import_into_new) || self.selected_pane().is_full();
        let p = match r {
            Ok(p) => p,
            Err(e) => return self.message(Level::Error, format!("import failed: {e}")),
        };
        let n = self.split().n_layers;
        if n > 0 && p.fractions.len() != n {
            return self.message(Level::Error, format!("profile has {} layers, model has {n}", p.fractions.len()));
        }
        let shape = Shape::Profile { name: p.name.clone(), fractions: p.fractions.clone() };
        if into_new {
            if !self.add_pane(shape) {
                return;
            }
        } else {
            let old = self.split().clone();
            if let Err(e) = self.split_mut().set_shape(shape) {
                *self.split_mut() = old;
                return self.message(Level::Error, format!("profile could not be applied: {e}"));
            }
        }
        // Clamped to what this prompt allows.
        self.set_global(p.global_budget.clamp(0.0, 1.0));
        if p.sensitivity.is_some() {
            self.sensitivity = p.sensitivity;
        }
        self.profile_name = Some(p.name.clone());
        for w in &p.warnings {
            self.message(Level::Warn, w.clone());
        }
        self.message(
            Level::Info,
            format!("imported profile {} from {} into pane #{}", p.name, p.path.display(), self.pane + 1),
        );
        self.schedule_rerun();
    }

    /// Carries out a menu entry (disabled ones explain themselves).
    fn activate(&mut self, entry: &menu::Entry) {
        if let Some(why) = entry.disabled {
            return self.message(Level::Warn, why);
        }
        if !entry.item.keeps_menu_open() {
            self.overlay = Overlay::None;
        }
        match entry.item {
            MenuItem::Add(kind) => {
                let shape = match kind {
                    AddKind::Full => Shape::Full,
                    AddKind::Uniform => Shape::Uniform,
                    AddKind::Pyramid => Shape::Pyramid { beta: PYRAMID_BETA },
                    AddKind::DepthKv => match self.sensitivity_means() {
                        Some(s) => Shape::DepthKv { sensitivity: s, rule: DepthRule::Proportional },
                        None => return,
                    },
                    AddKind::Manual => {
                        let b = self.split();
                        Shape::Fractions(crate::prune::kept_fractions(&b.layers, b.prompt_len.max(1)))
                    }
                    AddKind::Profile => {
                        self.import_into_new = true;
                        let dir = format!("{}{}", self.profiles_dir.display(), std::path::MAIN_SEPARATOR);
                        return self.open_editor(EditorKind::Import, &dir);
                    }
                };
                self.add_pane(shape);
            }
            MenuItem::Scorer => self.cycle_scorer(),
            MenuItem::DecodeEvict => self.toggle_decode_evict(),
            MenuItem::Precision => self.cycle_precision(),
            MenuItem::Heads => self.cycle_heads(),
            MenuItem::Remove => self.remove_pane(),
        }
    }

    /// Keys in the menu: ↑/↓ and Enter, or an entry's letter; Esc closes.
    pub(super) fn on_menu_key(&mut self, cursor: usize, key: &KeyEvent) {
        let entries = menu::entries(self);
        let last = entries.len().saturating_sub(1);
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('a') => self.overlay = Overlay::None,
            KeyCode::Up => self.overlay = Overlay::Menu { cursor: cursor.saturating_sub(1) },
            KeyCode::Down | KeyCode::Tab => self.overlay = Overlay::Menu { cursor: (cursor + 1).min(last) },
            KeyCode::Enter => {
                if let Some(e) = entries.get(cursor) {
                    self.activate(e);
                }
            }
            KeyCode::Char(c) => {
                if let Some(k) = entries.iter().position(|e| e.key == c.to_ascii_lowercase()) {
                    if let Overlay::Menu { cursor } = &mut self.overlay {
                        *cursor = k;
                    }
                    self.activate(&entries[k]);
                }
            }
            _ => {}
        }
    }

    /// A click in the menu activates the entry under it; outside, closes it.
    pub(super) fn on_menu_click(&mut self, x: u16, y: u16) {
        let area = ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1);
        let g = super::widgets::menu::geometry(self, area);
        if !g.frame.contains(ratatui::layout::Position::new(x, y)) {
            self.overlay = Overlay::None;
            return;
        }
        if let Some(k) = g.entry_at(y) {
            let entries = menu::entries(self);
            self.overlay = Overlay::Menu { cursor: k };
            if let Some(e) = entries.get(k) {
                self.activate(e);
            }
        }
    }

    /// The pane grid cell under a point, if any (for tests and hit-testing).
    pub fn pane_at(&self, x: u16, y: u16) -> Option<usize> {
        let area = self.layout().panes?;
        let at = ratatui::layout::Position::new(x, y);
        layout::pane_grid(area, self).into_iter().find(|(_, r)| r.contains(at)).map(|(i, _)| i)
    }
}
