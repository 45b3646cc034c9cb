//! Application state, the actions that change it and the one `update`
//! function. `update` never does I/O: what must happen outside (commands to
//! the engine, profile files) comes back as `Effect`s for the run loop.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use crate::session::protocol::{
    Command, Event, GenParams, Job, LayerSensitivity, ModelInfo, Occupancy, PromptSnapshot, RunId, Variant, VariantId,
};

use super::budget::{Budgets, Shape};
use super::editor::{EditOutcome, LineEditor};
use super::keys::{KeyAction, Keymap};
use super::layout::{self, ScreenLayout};
use super::pane::REFERENCE_VARIANT;
pub use super::pane::{PaneMetrics, PaneState};
use super::run::TuiOptions;
use super::theme::Theme;
use super::widgets::{bars, heatmap, panes, tokens};
use crate::prune::{DepthRule, HeadSplit, StrategyKind, ADA_SAFEGUARD, PYRAMID_BETA};

/// Budget edits are sent to the engine this long after the last change.
pub const DEBOUNCE: Duration = Duration::from_millis(150);
/// `+`/`-` step of the global budget (kept fraction).
pub const GLOBAL_STEP: f64 = 0.05;
/// Messages older than this leave the status line (errors stay twice as long).
pub const MESSAGE_TTL: Duration = Duration::from_secs(12);
const MAX_MESSAGES: usize = 100;

/// The panels; in the compact layout each one is a tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Focus {
    Budgets,
    Heatmap,
    Tokens,
    Outputs,
}

impl Focus {
    pub const ALL: [Focus; 4] = [Focus::Budgets, Focus::Heatmap, Focus::Tokens, Focus::Outputs];
    pub fn index(self) -> usize {
        Focus::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }
    pub fn next(self) -> Focus {
        Focus::ALL[(self.index() + 1) % 4]
    }
    pub fn prev(self) -> Focus {
        Focus::ALL[(self.index() + 3) % 4]
    }
    pub fn title(self) -> &'static str {
        match self {
            Focus::Budgets => "Budgets",
            Focus::Heatmap => "Heatmap",
            Focus::Tokens => "Tokens",
            Focus::Outputs => "Outputs",
        }
    }
}

/// What the heatmap colours: which positions each layer of the selected
/// pane keeps, the raw attention of the prefill, which positions each KV
/// head of the selected layer keeps, or what that layer holds as decoding
/// proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeatMode {
    Keep,
    Attention,
    Heads,
    Decode,
}

impl HeatMode {
    pub fn next(self) -> HeatMode {
        match self {
            HeatMode::Keep => HeatMode::Attention,
            HeatMode::Attention => HeatMode::Heads,
            HeatMode::Heads => HeatMode::Decode,
            HeatMode::Decode => HeatMode::Keep,
        }
    }

    /// Rows are layers (else KV heads or decode steps of the selected layer).
    pub fn rows_are_layers(self) -> bool {
        matches!(self, HeatMode::Keep | HeatMode::Attention)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditorKind {
    Prompt,
    Export,
    Import,
}

impl EditorKind {
    pub fn title(self) -> &'static str {
        match self {
            EditorKind::Prompt => "Edit prompt",
            EditorKind::Export => "Export profile to",
            EditorKind::Import => "Import profile from",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    None,
    Help,
    Editor {
        kind: EditorKind,
        editor: LineEditor,
    },
    /// The variants menu; `cursor` indexes `menu::items`.
    Menu {
        cursor: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub level: Level,
    pub text: String,
    pub at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub job: Job,
    pub done: usize,
    pub total: usize,
}

/// A profile read from disk, reduced to what the UI applies.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedProfile {
    pub name: String,
    pub path: PathBuf,
    pub global_budget: f64,
    pub fractions: Vec<f64>,
    pub sensitivity: Option<Vec<LayerSensitivity>>,
    pub warnings: Vec<String>,
}

/// Everything that changes the state.
#[derive(Debug, Clone)]
pub enum Action {
    /// First action: sends the initial prompt.
    Start,
    /// Advances the clock; fires a pending debounced re-run.
    Tick(Instant),
    Resize(u16, u16),
    Key(KeyEvent),
    Paste(String),
    Mouse(MouseEvent),
    Engine(Event),
    /// A bound action, as if its key had been pressed.
    Do(KeyAction),
    ProfileExported(Result<PathBuf, String>),
    ProfileImported(Result<ImportedProfile, String>),
}

/// Work for the run loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send(Command),
    Export { path: PathBuf },
    Import { path: PathBuf },
}

pub struct App {
    pub theme: Theme,
    pub keymap: Keymap,
    pub size: (u16, u16),
    pub clock: Instant,
    pub quit: bool,

    pub model: Option<ModelInfo>,
    pub prompt_text: String,
    pub chat: bool,
    pub prompt: Option<PromptSnapshot>,
    /// `attention[layer][pos]`, head-summed, per-layer normalised to [0, 1].
    pub attention: Vec<Vec<f32>>,
    pub awaiting_prefill: bool,
    pub params: GenParams,

    /// The panes side by side (MIN_PANES..=MAX_PANES), each with its variant.
    pub panes: Vec<PaneState>,
    /// Index of the selected pane: the bars, heatmap and token view show it.
    pub pane: usize,
    pub(super) next_variant: VariantId,
    /// The full continuation of the current run when no pane is full.
    pub reference: Vec<(u32, String)>,
    pub sensitivity: Option<Vec<LayerSensitivity>>,
    /// The profile loaded last (at start or with `i`).
    pub profile_name: Option<String>,
    /// The next imported profile goes into a new pane (menu) rather than the
    /// selected one.
    pub(super) import_into_new: bool,
    pub profiles_dir: PathBuf,
    /// Fraction the ablated layer keeps during calibration (`c`).
    pub ablation_keep: f64,
    /// The safeguard a pane's `ada` head split gets from the menu.
    pub ada_safeguard: f64,

    next_id: RunId,
    /// Newest decode run requested; events of any other run are dropped.
    pub run_id: Option<RunId>,
    pub run_started: Option<Instant>,
    pub run_stopped: bool,
    pub calib_id: Option<RunId>,
    /// Deadline of the debounced re-run.
    pub rerun_at: Option<Instant>,

    pub focus: Focus,
    pub heat_mode: HeatMode,
    pub selected: usize,
    pub bars_scroll: usize,
    /// Selected prompt position (heatmap column / token view cursor).
    pub cursor: usize,
    pub token_scroll: usize,
    follow_cursor: bool,
    /// Output panes: lines scrolled back from the bottom (0 follows the stream).
    pub pane_scroll: usize,
    /// Layer being resized with the mouse.
    pub drag: Option<usize>,
    pub overlay: Overlay,
    pub progress: Vec<Progress>,
    pub messages: Vec<Message>,
}

fn shape_from_options(opts: &TuiOptions) -> Result<Shape, String> {
    let sens = || {
        opts.initial_sensitivity.clone().ok_or_else(|| {
            "strategy depthkv needs a sensitivity vector (calibrate with c, or pass a profile)".to_string()
        })
    };
    Ok(match opts.initial_strategy {
        StrategyKind::Uniform => Shape::Uniform,
        StrategyKind::Pyramid => Shape::Pyramid { beta: PYRAMID_BETA },
        StrategyKind::DepthKv => Shape::DepthKv { sensitivity: sens()?, rule: DepthRule::Proportional },
        StrategyKind::DepthKvSoftmax => {
            Shape::DepthKv { sensitivity: sens()?, rule: DepthRule::Softmax { temperature: 1.0 } }
        }
        StrategyKind::DepthKvRank => Shape::DepthKv { sensitivity: sens()?, rule: DepthRule::Rank },
        StrategyKind::Manual => Shape::Fractions(
            opts.initial_fractions.clone().ok_or_else(|| "strategy manual needs per-layer fractions".to_string())?,
        ),
        StrategyKind::Adaptive | StrategyKind::AdaptiveDepthKv => {
            return Err("the adaptive split is computed per prompt by the session; add it as a variant".into())
        }
    })
}

impl App {
    pub fn new(opts: &TuiOptions, theme: Theme, keymap: Keymap, profiles_dir: PathBuf, now: Instant) -> App {
        let mut messages = Vec::new();
        let shape = match shape_from_options(opts) {
            Ok(s) => s,
            Err(e) => {
                messages.push(Message { level: Level::Warn, text: format!("{e}; starting uniform"), at: now });
                Shape::Uniform
            }
        };
        let sensitivity = opts
            .initial_sensitivity
            .as_ref()
            .map(|v| v.iter().map(|&m| LayerSensitivity { mean: m, ci_low: m, ci_high: m }).collect());
        // Defaults: the full cache, uniform, and the starting strategy (DepthKV
        // from the shipped profile when run from the CLI).
        let scorer = opts.select.scorer;
        let panes: Vec<PaneState> = [Shape::Full, Shape::Uniform, shape]
            .into_iter()
            .enumerate()
            .map(|(i, s)| PaneState {
                heads: opts.select.heads,
                ..PaneState::new(i as VariantId, i, Budgets::new(opts.initial_budget, s), scorer)
            })
            .collect();
        let ada_safeguard = match opts.select.heads {
            HeadSplit::Ada { safeguard } => safeguard,
            HeadSplit::Even => ADA_SAFEGUARD,
        };
        App {
            theme,
            keymap,
            size: (80, 24),
            clock: now,
            quit: false,
            model: None,
            prompt_text: opts.prompt.clone(),
            chat: opts.chat,
            prompt: None,
            attention: Vec::new(),
            awaiting_prefill: false,
            params: opts.params.clone(),
            pane: panes.len() - 1,
            next_variant: panes.len() as VariantId,
            panes,
            reference: Vec::new(),
            sensitivity,
            profile_name: opts.profile_name.clone(),
            import_into_new: false,
            profiles_dir,
            ablation_keep: crate::session::calibrate::CalibConfig::default().ablation_keep,
            ada_safeguard,
            next_id: 1,
            run_id: None,
            run_started: None,
            run_stopped: false,
            calib_id: None,
            rerun_at: None,
            focus: Focus::Budgets,
            heat_mode: HeatMode::Keep,
            selected: 0,
            bars_scroll: 0,
            cursor: 0,
            token_scroll: 0,
            follow_cursor: true,
            pane_scroll: 0,
            drag: None,
            overlay: Overlay::None,
            progress: Vec::new(),
            messages,
        }
    }

    pub fn n_layers(&self) -> usize {
        self.model.as_ref().map_or(0, |m| m.n_layers)
    }

    pub fn prompt_len(&self) -> usize {
        self.prompt.as_ref().map_or(0, |p| p.pieces.len())
    }

    pub fn layout(&self) -> ScreenLayout {
        layout::compute(Rect::new(0, 0, self.size.0, self.size.1), self)
    }

    /// The selected pane.
    pub fn selected_pane(&self) -> &PaneState {
        &self.panes[self.pane]
    }

    /// The selected pane's split: what the bars show and edit.
    pub fn split(&self) -> &Budgets {
        &self.panes[self.pane].split
    }

    pub(super) fn split_mut(&mut self) -> &mut Budgets {
        &mut self.panes[self.pane].split
    }

    /// The pane a variant id belongs to.
    pub fn pane_of(&self, variant: VariantId) -> Option<usize> {
        self.panes.iter().position(|p| p.id == variant)
    }

    /// The full continuation pruned panes are compared with: a full pane's
    /// tokens, else the hidden reference decode's.
    pub fn full_tokens(&self) -> &[(u32, String)] {
        self.panes.iter().find(|p| p.is_full()).map_or(&self.reference, |p| &p.tokens)
    }

    /// Budgets are sized for the current model and prompt (every pane's are
    /// sized together).
    pub fn ready(&self) -> bool {
        self.split().is_ready()
    }

    /// A decode run is streaming (requested and not every pane done).
    pub fn streaming(&self) -> bool {
        self.run_id.is_some() && !self.run_stopped && self.panes.iter().any(|p| p.metrics.is_none())
    }

    /// The message to show now, if any is recent enough.
    pub fn current_message(&self) -> Option<&Message> {
        let m = self.messages.last()?;
        let ttl = if m.level == Level::Error { MESSAGE_TTL * 2 } else { MESSAGE_TTL };
        (self.clock.saturating_duration_since(m.at) < ttl).then_some(m)
    }

    fn fresh_id(&mut self) -> RunId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(super) fn message(&mut self, level: Level, text: impl Into<String>) {
        self.messages.push(Message { level, text: text.into(), at: self.clock });
        if self.messages.len() > MAX_MESSAGES {
            self.messages.remove(0);
        }
    }

    pub(super) fn schedule_rerun(&mut self) {
        if self.ready() {
            self.rerun_at = Some(self.clock + DEBOUNCE);
        }
    }

    fn send_prompt(&mut self, fx: &mut Vec<Effect>) {
        self.awaiting_prefill = true;
        self.run_id = None;
        self.rerun_at = None;
        self.clear_outputs();
        fx.push(Effect::Send(Command::SetPrompt { text: self.prompt_text.clone(), chat: self.chat }));
    }

    fn clear_outputs(&mut self) {
        for p in &mut self.panes {
            p.clear_output();
        }
        self.reference.clear();
    }

    /// The variants of a run: every pane's, plus the hidden full decode when
    /// no pane is full (see `pane::REFERENCE_VARIANT`).
    pub fn run_variants(&self) -> Vec<Variant> {
        let mut out: Vec<Variant> = self.panes.iter().map(PaneState::variant).collect();
        if !self.panes.iter().any(PaneState::is_full) {
            out.push(Variant::full(REFERENCE_VARIANT));
        }
        out
    }

    /// Requests a decode of every pane (superseding any run); the session
    /// replays the variants it has decoded before.
    fn start_run(&mut self, fx: &mut Vec<Effect>) {
        self.rerun_at = None;
        if !self.ready() || self.awaiting_prefill || self.prompt.is_none() {
            return;
        }
        let id = self.fresh_id();
        self.run_id = Some(id);
        self.run_started = Some(self.clock);
        self.run_stopped = false;
        for p in &mut self.panes {
            p.reset_run();
        }
        self.reference.clear();
        self.pane_scroll = 0;
        let variants = self.run_variants();
        fx.push(Effect::Send(Command::Run { run_id: id, variants, params: self.params.clone() }));
    }

    /// Sizes every pane's budgets once both the model and the prompt are
    /// known, then runs.
    fn try_configure(&mut self, fx: &mut Vec<Effect>) {
        let (Some(model), Some(prompt)) = (&self.model, &self.prompt) else {
            return;
        };
        let (n, len) = (model.n_layers, prompt.pieces.len());
        if n == 0 || len == 0 {
            self.message(Level::Warn, "empty prompt: nothing to prune (press o to edit it)");
            return;
        }
        let mut failed = None;
        for p in &mut self.panes {
            if let Err(e) = p.split.configure(n, len, &prompt.layer_floors, &prompt.kv_ceilings) {
                failed = Some(e);
            }
        }
        match failed {
            None => {
                self.selected = self.selected.min(n - 1);
                self.cursor = self.cursor.min(len - 1);
                self.start_run(fx);
            }
            Some(e) => self.message(Level::Error, format!("could not split the budget: {e}")),
        }
    }

    pub(super) fn sensitivity_means(&self) -> Option<Vec<f64>> {
        self.sensitivity.as_ref().map(|s| s.iter().map(|x| x.mean).collect())
    }

    fn on_engine(&mut self, ev: Event, fx: &mut Vec<Effect>) {
        match ev {
            Event::Loaded(info) => {
                self.progress.retain(|p| p.job != Job::LoadModel);
                let name = info.name.clone();
                self.model = Some(info);
                self.message(Level::Info, format!("loaded {name}"));
                self.try_configure(fx);
            }
            Event::Progress { job, done, total } => {
                self.progress.retain(|p| p.job != job);
                if total == 0 || done < total {
                    self.progress.push(Progress { job, done, total });
                }
            }
            Event::Prefilled(snap) => {
                self.progress.retain(|p| p.job != Job::Prefill);
                self.awaiting_prefill = false;
                self.attention = attention_map(&snap);
                self.prompt = Some(snap);
                self.clear_outputs();
                self.follow_cursor = true;
                self.try_configure(fx);
            }
            Event::Occupancy { run_id, variant, occupancy } => {
                if Some(run_id) != self.run_id {
                    return;
                }
                if let Some(i) = self.pane_of(variant) {
                    let p = &mut self.panes[i];
                    p.share = keep_share(&occupancy);
                    p.occupancy = Some(occupancy);
                    p.occupancy_stale = false;
                    p.decode.clear();
                }
            }
            Event::DecodeOccupancy { run_id, variant, occupancy } => {
                if Some(run_id) != self.run_id {
                    return;
                }
                if let Some(i) = self.pane_of(variant) {
                    self.panes[i].decode.push(occupancy);
                }
            }
            Event::Token { run_id, variant, index, token_id, text } => {
                if Some(run_id) != self.run_id || self.run_stopped {
                    return;
                }
                if let Some(i) = self.pane_of(variant) {
                    PaneState::push_token(&mut self.panes[i].tokens, index, (token_id, text));
                } else if variant == REFERENCE_VARIANT {
                    PaneState::push_token(&mut self.reference, index, (token_id, text));
                }
            }
            Event::RunDone { .. } => {}
            Event::VariantDone { run_id, variant, metrics } => {
                if Some(run_id) != self.run_id {
                    return;
                }
                if let Some(i) = self.pane_of(variant) {
                    self.panes[i].metrics = Some(metrics);
                }
            }
            Event::Calibrated { run_id, sensitivity, seconds } => {
                if Some(run_id) != self.calib_id {
                    return;
                }
                self.calib_id = None;
                self.progress.retain(|p| p.job != Job::Calibrate);
                if sensitivity.len() != self.n_layers() {
                    self.message(
                        Level::Error,
                        format!("calibration returned {} layers, model has {}", sensitivity.len(), self.n_layers()),
                    );
                    return;
                }
                self.sensitivity = Some(sensitivity);
                self.profile_name = None;
                match self.apply_calibration() {
                    Ok(what) => {
                        self.message(Level::Info, format!("calibrated in {seconds:.1} s: {what}"));
                        self.start_run(fx);
                    }
                    Err(e) => self.message(Level::Error, format!("calibrated, but the DepthKV split failed: {e}")),
                }
            }
            Event::Error { run_id, message } => match run_id {
                None => self.message(Level::Error, message),
                Some(id) if Some(id) == self.calib_id => {
                    self.calib_id = None;
                    self.progress.retain(|p| p.job != Job::Calibrate);
                    self.message(Level::Error, format!("calibration failed: {message}"));
                }
                Some(id) if Some(id) == self.run_id => {
                    self.run_stopped = true;
                    self.message(Level::Error, message);
                }
                Some(_) => {}
            },
        }
    }

    fn on_key(&mut self, key: KeyEvent, fx: &mut Vec<Effect>) {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.on_action(KeyAction::Quit, fx);
            return;
        }
        match &mut self.overlay {
            Overlay::Help => {
                self.overlay = Overlay::None;
            }
            Overlay::Editor { kind, editor } => {
                let kind = *kind;
                match editor.handle_key(&key) {
                    EditOutcome::Editing => {}
                    EditOutcome::Cancel => self.overlay = Overlay::None,
                    EditOutcome::Submit => {
                        let text = editor.text();
                        self.overlay = Overlay::None;
                        self.submit_editor(kind, text, fx);
                    }
                }
            }
            Overlay::Menu { cursor } => {
                let cursor = *cursor;
                self.on_menu_key(cursor, &key);
            }
            Overlay::None => {
                if let Some(a) = self.keymap.action_for(&key) {
                    self.on_action(a, fx);
                }
            }
        }
    }

    fn submit_editor(&mut self, kind: EditorKind, text: String, fx: &mut Vec<Effect>) {
        match kind {
            EditorKind::Prompt => {
                if text.trim().is_empty() {
                    self.message(Level::Warn, "prompt unchanged: it cannot be empty");
                    return;
                }
                self.prompt_text = text;
                self.send_prompt(fx);
            }
            EditorKind::Export | EditorKind::Import => {
                let text = text.trim();
                if text.is_empty() {
                    let what = if kind == EditorKind::Export { "exported" } else { "imported" };
                    self.message(Level::Warn, format!("no file name given: nothing {what}"));
                    return;
                }
                let path = expand_home(text);
                fx.push(if kind == EditorKind::Export { Effect::Export { path } } else { Effect::Import { path } });
            }
        }
    }

    pub(super) fn open_editor(&mut self, kind: EditorKind, text: &str) {
        let editor = if kind == EditorKind::Prompt { LineEditor::multiline(text) } else { LineEditor::new(text) };
        self.overlay = Overlay::Editor { kind, editor };
    }

    fn select_layer(&mut self, layer: isize) {
        let n = self.n_layers();
        if n > 0 {
            self.selected = layer.clamp(0, n as isize - 1) as usize;
        }
    }

    fn move_cursor(&mut self, to: isize) {
        let len = self.prompt_len();
        if len > 0 {
            self.cursor = to.clamp(0, len as isize - 1) as usize;
            self.follow_cursor = true;
        }
    }

    fn adjust_layer(&mut self, layer: usize, target: usize) {
        if self.selected_pane().is_full() {
            return self.message(
                Level::Warn,
                "the full pane keeps every token: select a pruned pane ([ ]) or give this one a split (u/p/d)",
            );
        }
        match self.split_mut().set_layer(layer, target) {
            Ok(true) => self.schedule_rerun(),
            Ok(false) => {}
            Err(e) => self.message(Level::Warn, e.to_string()),
        }
    }

    fn page_rows(&self) -> usize {
        let l = self.layout();
        let rows = match self.focus {
            Focus::Budgets => l.bars.map(|r| r.height),
            Focus::Heatmap => l.heatmap.map(|r| r.height),
            Focus::Tokens => l.tokens.map(|r| r.height),
            Focus::Outputs => l.panes.map(|r| r.height),
        };
        (rows.unwrap_or(10).saturating_sub(3) as usize).max(1)
    }

    /// Moves the cursor by whole heatmap columns.
    fn heat_step(&mut self, cols: isize) {
        let len = self.prompt_len();
        let Some(r) = self.layout().heatmap else {
            return;
        };
        let g = heatmap::geometry(r, self);
        if len == 0 || g.cols == 0 {
            return;
        }
        let col = (g.col_of(self.cursor, g.len) as isize + cols).clamp(0, g.cols as isize - 1);
        self.move_cursor(g.bin(col as usize, g.len).start as isize);
    }

    fn on_action(&mut self, action: KeyAction, fx: &mut Vec<Effect>) {
        use KeyAction as K;
        let sel = self.selected as isize;
        let cur = self.cursor as isize;
        match action {
            K::Quit => {
                self.quit = true;
                fx.push(Effect::Send(Command::Shutdown));
            }
            K::Help => self.overlay = Overlay::Help,
            K::FocusNext => self.focus = self.focus.next(),
            K::FocusPrev => self.focus = self.focus.prev(),
            K::FocusBudgets => self.focus = Focus::Budgets,
            K::FocusHeatmap => self.focus = Focus::Heatmap,
            K::FocusTokens => self.focus = Focus::Tokens,
            K::FocusOutputs => self.focus = Focus::Outputs,
            K::Up | K::Down | K::PageUp | K::PageDown | K::First | K::Last => {
                let page = self.page_rows() as isize;
                let delta: isize = match action {
                    K::Up => -1,
                    K::Down => 1,
                    K::PageUp => -page,
                    K::PageDown => page,
                    K::First => isize::MIN / 2,
                    _ => isize::MAX / 2,
                };
                match self.focus {
                    Focus::Budgets | Focus::Heatmap => self.select_layer(sel.saturating_add(delta)),
                    Focus::Tokens => {
                        self.token_scroll = (self.token_scroll as isize).saturating_add(delta).max(0) as usize;
                        self.follow_cursor = false;
                    }
                    // Scrolling back in the panes: "up" is away from the bottom.
                    Focus::Outputs => {
                        self.pane_scroll = (self.pane_scroll as isize).saturating_sub(delta).max(0) as usize;
                    }
                }
            }
            K::Left | K::Right | K::LeftCoarse | K::RightCoarse => {
                let dir: isize = if matches!(action, K::Left | K::LeftCoarse) { -1 } else { 1 };
                let coarse = matches!(action, K::LeftCoarse | K::RightCoarse);
                match self.focus {
                    Focus::Budgets => {
                        if self.ready() {
                            let step = self.split().step(coarse) as isize;
                            let now = self.split().layers[self.selected] as isize;
                            let target = (now + dir * step).max(0) as usize;
                            self.adjust_layer(self.selected, target);
                        }
                    }
                    Focus::Heatmap => self.heat_step(dir * if coarse { 10 } else { 1 }),
                    Focus::Tokens => self.move_cursor(cur + dir * if coarse { 10 } else { 1 }),
                    Focus::Outputs => self.select_pane(self.pane as isize + dir),
                }
            }
            K::Lock => {
                if self.ready() && !self.selected_pane().is_full() {
                    let layer = self.selected;
                    let now = self.split_mut().toggle_lock(layer);
                    let n = self.split().locked.iter().filter(|l| **l).count();
                    if now && n == self.n_layers() {
                        self.message(Level::Warn, "every layer is locked: nothing can be rebalanced");
                    }
                }
            }
            K::ResetUniform => self.reset(Shape::Uniform),
            K::ResetPyramid => self.reset(Shape::Pyramid { beta: PYRAMID_BETA }),
            K::ResetDepthKv => match self.sensitivity_means() {
                Some(s) => self.reset(Shape::DepthKv { sensitivity: s, rule: DepthRule::Proportional }),
                None => self.message(Level::Warn, "no sensitivity yet: press c to calibrate (or import a profile)"),
            },
            K::BudgetUp | K::BudgetDown => {
                // Step on the 5% grid from wherever the budget is now.
                let g = self.split().global / GLOBAL_STEP;
                let next = if action == K::BudgetUp {
                    ((g + 1e-6).floor() + 1.0) * GLOBAL_STEP
                } else {
                    ((g - 1e-6).ceil() - 1.0) * GLOBAL_STEP
                };
                self.set_global(next);
            }
            K::HeatmapMode => self.heat_mode = self.heat_mode.next(),
            K::Calibrate => {
                if self.calib_id.is_some() {
                    self.message(Level::Warn, "calibration is already running");
                } else if self.model.is_none() {
                    self.message(Level::Warn, "the model is still loading");
                } else {
                    let id = self.fresh_id();
                    self.calib_id = Some(id);
                    let keep = self.ablation_keep;
                    self.progress.retain(|p| p.job != Job::Calibrate);
                    self.progress.push(Progress { job: Job::Calibrate, done: 0, total: 0 });
                    fx.push(Effect::Send(Command::Calibrate {
                        run_id: id,
                        prompts: vec![self.prompt_text.clone()],
                        ablation_keep: keep,
                    }));
                    self.message(
                        Level::Info,
                        format!("calibrating: each layer alone pruned to keep {:.0}%…", keep * 100.0),
                    );
                }
            }
            K::Export => {
                let path = self.profiles_dir.join(self.default_profile_file());
                self.open_editor(EditorKind::Export, &path.display().to_string());
            }
            K::Import => {
                let dir = format!("{}{}", self.profiles_dir.display(), std::path::MAIN_SEPARATOR);
                self.open_editor(EditorKind::Import, &dir);
            }
            K::EditPrompt => {
                let text = self.prompt_text.clone();
                self.open_editor(EditorKind::Prompt, &text);
            }
            K::Rerun => self.start_run(fx),
            K::VariantMenu => self.overlay = Overlay::Menu { cursor: 0 },
            K::RemovePane => self.remove_pane(),
            K::PrevPane => self.select_pane(self.pane as isize - 1),
            K::NextPane => self.select_pane(self.pane as isize + 1),
            K::CycleScorer => self.cycle_scorer(),
            K::ToggleDecodeEvict => self.toggle_decode_evict(),
            K::Cancel => {
                if self.drag.take().is_none() && self.streaming() {
                    self.run_stopped = true;
                    fx.push(Effect::Send(Command::Cancel));
                    self.message(Level::Info, "generation stopped (r re-runs)");
                }
            }
        }
    }

    fn reset(&mut self, shape: Shape) {
        let name = shape.name();
        match self.split_mut().set_shape(shape) {
            Ok(()) => {
                self.schedule_rerun();
                let locked = self.split().locked.iter().filter(|l| **l).count();
                if locked > 0 {
                    self.message(Level::Info, format!("split reset to {name} ({locked} locked layers kept)"));
                }
            }
            Err(e) => self.message(Level::Warn, format!("could not reset to {name}: {e}")),
        }
    }

    /// e.g. "qwen2.5-0.5b-instruct-depthkv-25.json"
    pub fn default_profile_file(&self) -> String {
        let model = self.model.as_ref().map_or("model", |m| m.name.as_str());
        let model = model.rsplit('/').next().unwrap_or(model);
        let pct = (self.split().global * 100.0).round() as u32;
        let raw = format!("{model}-{}-{pct}", self.split().shape.name());
        let slug: String = raw
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c.to_ascii_lowercase() } else { '-' })
            .collect();
        format!("{slug}.json")
    }

    fn on_mouse(&mut self, m: MouseEvent) {
        if let Overlay::Menu { .. } = self.overlay {
            if m.kind == MouseEventKind::Down(MouseButton::Left) {
                self.on_menu_click(m.column, m.row);
            }
            return;
        }
        if self.overlay != Overlay::None {
            return;
        }
        let l = self.layout();
        let at = Position::new(m.column, m.row);
        let inside = |r: Option<Rect>| r.is_some_and(|r| r.contains(at));
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if let Some(tabs) = l.tabs.filter(|r| r.contains(at)) {
                    if let Some(f) = layout::tab_at(tabs, m.column) {
                        self.focus = f;
                    }
                } else if inside(l.bars) {
                    self.focus = Focus::Budgets;
                    let g = bars::geometry(l.bars.unwrap_or_default(), self);
                    if let Some(layer) = g.layer_at(m.row, self.bars_scroll, self.n_layers()) {
                        self.selected = layer;
                        if m.column + 1 >= g.bar_x && self.ready() {
                            // A full pane's bars do not move: one message, no drag.
                            self.drag = (!self.selected_pane().is_full()).then_some(layer);
                            let t = g.target_at(m.column, self.split().prompt_len);
                            self.adjust_layer(layer, t);
                        }
                    }
                } else if inside(l.heatmap) {
                    self.focus = Focus::Heatmap;
                    let g = heatmap::geometry(l.heatmap.unwrap_or_default(), self);
                    if let Some((item, pos)) = g.cell_at(m.column, m.row) {
                        if self.heat_mode.rows_are_layers() {
                            self.selected = item;
                        }
                        // Generated positions (decode view) have no prompt token.
                        if pos < self.prompt_len() {
                            self.move_cursor(pos as isize);
                        }
                    }
                } else if inside(l.tokens) {
                    self.focus = Focus::Tokens;
                    if let Some(pos) = tokens::position_at(l.tokens.unwrap_or_default(), self, m.column, m.row) {
                        self.cursor = pos;
                    }
                } else if let Some(area) = l.panes.filter(|r| r.contains(at)) {
                    self.focus = Focus::Outputs;
                    let hit = layout::pane_grid(area, self).into_iter().find(|(_, r)| r.contains(at));
                    if let Some((i, _)) = hit {
                        self.pane = i;
                    }
                }
            }
            MouseEventKind::Drag(MouseButton::Left) => {
                if let (Some(layer), Some(r)) = (self.drag, l.bars) {
                    let g = bars::geometry(r, self);
                    let t = g.target_at(m.column, self.split().prompt_len);
                    self.adjust_layer(layer, t);
                }
            }
            MouseEventKind::Up(_) => self.drag = None,
            MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
                let d: isize = if m.kind == MouseEventKind::ScrollUp { -1 } else { 1 };
                if inside(l.bars) || inside(l.heatmap) {
                    self.select_layer(self.selected as isize + d);
                } else if inside(l.tokens) {
                    self.token_scroll = (self.token_scroll as isize + d).max(0) as usize;
                    self.follow_cursor = false;
                } else if inside(l.panes) {
                    self.pane_scroll = (self.pane_scroll as isize - d).max(0) as usize;
                }
            }
            _ => {}
        }
    }

    /// Keeps the selected layer and the token cursor on screen.
    fn keep_visible(&mut self) {
        let l = self.layout();
        let n = self.n_layers();
        if let Some(r) = l.bars {
            let rows = bars::geometry(r, self).rows.max(1);
            if self.selected < self.bars_scroll {
                self.bars_scroll = self.selected;
            } else if self.selected >= self.bars_scroll + rows {
                self.bars_scroll = self.selected + 1 - rows;
            }
            self.bars_scroll = self.bars_scroll.min(n.saturating_sub(rows));
        }
        // Wrapping is linear in the text: only when something can change.
        if let Some(r) = l.tokens.filter(|_| self.follow_cursor || self.token_scroll > 0) {
            let wrapped = tokens::wrap(r, self);
            let rows = tokens::text_rows(r);
            if self.follow_cursor {
                if let Some(&line) = wrapped.line_of_item.get(self.cursor) {
                    if line < self.token_scroll {
                        self.token_scroll = line;
                    } else if line >= self.token_scroll + rows {
                        self.token_scroll = line + 1 - rows;
                    }
                }
                self.follow_cursor = false;
            }
            self.token_scroll = self.token_scroll.min(wrapped.lines.len().saturating_sub(rows));
        }
        if let Some(r) = l.panes.filter(|_| self.pane_scroll > 0) {
            let max = panes::max_scroll(r, self);
            self.pane_scroll = self.pane_scroll.min(max);
        }
    }
}

/// `~/x` → `$HOME/x`.
fn expand_home(text: &str) -> PathBuf {
    if let Some(rest) = text.strip_prefix("~/") {
        if let Some(home) = directories::BaseDirs::new() {
            return home.home_dir().join(rest);
        }
    }
    PathBuf::from(text)
}

/// Per layer: attention summed over KV heads, scaled so the layer's maximum is
/// 1, with a square root so mid-range positions stay visible.
pub fn attention_map(snap: &PromptSnapshot) -> Vec<Vec<f32>> {
    let len = snap.pieces.len();
    snap.window_attention
        .iter()
        .map(|heads| {
            let mut row = vec![0f32; len];
            for h in heads {
                for (r, v) in row.iter_mut().zip(h) {
                    *r += v.max(0.0);
                }
            }
            let max = row.iter().cloned().fold(0f32, f32::max);
            if max > 0.0 {
                row.iter_mut().for_each(|v| *v = (*v / max).sqrt());
            }
            row
        })
        .collect()
}

/// `share[layer][pos]` = fraction of KV heads that keep `pos`.
pub fn keep_share(occ: &Occupancy) -> Vec<Vec<f32>> {
    occ.kept
        .iter()
        .map(|heads| {
            let mut row = vec![0f32; occ.prompt_len];
            let w = 1.0 / heads.len().max(1) as f32;
            for h in heads {
                for &p in h {
                    if let Some(r) = row.get_mut(p as usize) {
                        *r += w;
                    }
                }
            }
            row
        })
        .collect()
}

/// The state machine. Returns the work the run loop must do.
pub fn update(app: &mut App, action: Action) -> Vec<Effect> {
    let mut fx = Vec::new();
    // Streaming events and ticks cannot move the selection or the prompt.
    let layout_may_change = !matches!(
        action,
        Action::Tick(_)
            | Action::Engine(
                Event::Token { .. }
                    | Event::Occupancy { .. }
                    | Event::DecodeOccupancy { .. }
                    | Event::VariantDone { .. }
                    | Event::RunDone { .. }
                    | Event::Progress { .. }
            )
    );
    match action {
        Action::Start => app.send_prompt(&mut fx),
        Action::Tick(now) => {
            app.clock = now;
            if app.rerun_at.is_some_and(|t| now >= t) {
                app.start_run(&mut fx);
            }
        }
        Action::Resize(w, h) => app.size = (w, h),
        Action::Key(k) => app.on_key(k, &mut fx),
        Action::Paste(s) => {
            if let Overlay::Editor { editor, .. } = &mut app.overlay {
                editor.insert_str(&s);
            }
        }
        Action::Mouse(m) => app.on_mouse(m),
        Action::Engine(ev) => app.on_engine(ev, &mut fx),
        Action::Do(a) => app.on_action(a, &mut fx),
        Action::ProfileExported(Ok(path)) => app.message(Level::Info, format!("profile saved to {}", path.display())),
        Action::ProfileExported(Err(e)) => app.message(Level::Error, format!("export failed: {e}")),
        Action::ProfileImported(r) => app.on_profile_imported(r),
    }
    if layout_may_change || !fx.is_empty() {
        app.keep_visible();
    }
    fx
}
