//! Application state, the actions that change it and the one `update`
//! function. `update` never does I/O: what must happen outside (commands to
//! the engine, profile files) comes back as `Effect`s for the run loop.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use crate::session::protocol::{
    Command, Event, GenParams, Job, LayerSensitivity, ModelInfo, Occupancy, PromptSnapshot, RunId, Variant, VariantId,
    VariantMetrics,
};

/// A pane's quality figures, as the session reports them.
pub type PaneMetrics = VariantMetrics;

/// Which of the three side-by-side decodes a pane shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    Full,
    Uniform,
    Custom,
}

impl Pane {
    pub const ALL: [Pane; 3] = [Pane::Full, Pane::Uniform, Pane::Custom];

    pub fn index(self) -> usize {
        match self {
            Pane::Full => 0,
            Pane::Uniform => 1,
            Pane::Custom => 2,
        }
    }

    /// The variant id this pane's decode runs under.
    pub fn variant(self) -> VariantId {
        self.index() as VariantId
    }

    pub fn from_variant(id: VariantId) -> Option<Pane> {
        Pane::ALL.into_iter().find(|p| p.variant() == id)
    }
}

use super::budget::{Budgets, Shape};
use super::editor::{EditOutcome, LineEditor};
use super::keys::{KeyAction, Keymap};
use super::layout::{self, ScreenLayout};
use super::run::TuiOptions;
use super::theme::Theme;
use super::widgets::{bars, heatmap, panes, tokens};
use crate::prune::{DepthRule, StrategyKind, PYRAMID_BETA};

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

/// What the heatmap colours: which positions a pane keeps, or raw attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeatMode {
    KeepCustom,
    KeepUniform,
    Attention,
}

impl HeatMode {
    pub fn next(self) -> HeatMode {
        match self {
            HeatMode::KeepCustom => HeatMode::KeepUniform,
            HeatMode::KeepUniform => HeatMode::Attention,
            HeatMode::Attention => HeatMode::KeepCustom,
        }
    }
    /// The pane whose occupancy the heatmap and the token view show.
    pub fn pane(self) -> Pane {
        match self {
            HeatMode::KeepUniform => Pane::Uniform,
            _ => Pane::Custom,
        }
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
    Editor { kind: EditorKind, editor: LineEditor },
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

/// One output pane.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaneState {
    /// `(token_id, text)` in generation order.
    pub tokens: Vec<(u32, String)>,
    pub metrics: Option<PaneMetrics>,
    pub occupancy: Option<Occupancy>,
    /// `share[layer][pos]`: fraction of KV heads keeping `pos` (from `occupancy`).
    pub share: Vec<Vec<f32>>,
    /// The occupancy is from an earlier run than the one streaming.
    pub occupancy_stale: bool,
}

impl PaneState {
    fn reset_run(&mut self) {
        self.tokens.clear();
        self.metrics = None;
        self.occupancy_stale = self.occupancy.is_some();
    }
    fn clear(&mut self) {
        *self = PaneState::default();
    }
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
    /// Token scorer of the pruned panes.
    pub scorer: crate::prune::Scorer,

    pub budgets: Budgets,
    pub sensitivity: Option<Vec<LayerSensitivity>>,
    pub profile_name: Option<String>,
    pub profiles_dir: PathBuf,
    /// Fraction the ablated layer keeps during calibration (`c`).
    pub ablation_keep: f64,

    next_id: RunId,
    /// Newest decode run requested; events of any other run are dropped.
    pub run_id: Option<RunId>,
    pub run_started: Option<Instant>,
    /// Prompt KV slots each pane of the current run holds (Full, Uniform, Custom).
    pub run_slots: [usize; 3],
    pub run_stopped: bool,
    pub calib_id: Option<RunId>,
    pub panes: [PaneState; 3],
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
            scorer: opts.select.scorer,
            budgets: Budgets::new(opts.initial_budget, shape),
            sensitivity,
            profile_name: opts.profile_name.clone(),
            profiles_dir,
            ablation_keep: crate::session::calibrate::CalibConfig::default().ablation_keep,
            next_id: 1,
            run_id: None,
            run_started: None,
            run_slots: [0; 3],
            run_stopped: false,
            calib_id: None,
            panes: Default::default(),
            rerun_at: None,
            focus: Focus::Budgets,
            heat_mode: HeatMode::KeepCustom,
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

    fn message(&mut self, level: Level, text: impl Into<String>) {
        self.messages.push(Message { level, text: text.into(), at: self.clock });
        if self.messages.len() > MAX_MESSAGES {
            self.messages.remove(0);
        }
    }

    fn schedule_rerun(&mut self) {
        if self.budgets.is_ready() {
            self.rerun_at = Some(self.clock + DEBOUNCE);
        }
    }

    fn send_prompt(&mut self, fx: &mut Vec<Effect>) {
        self.awaiting_prefill = true;
        self.run_id = None;
        self.rerun_at = None;
        for p in &mut self.panes {
            p.clear();
        }
        fx.push(Effect::Send(Command::SetPrompt { text: self.prompt_text.clone(), chat: self.chat }));
    }

    /// Requests a decode with the current budgets (superseding any run).
    fn start_run(&mut self, fx: &mut Vec<Effect>) {
        self.rerun_at = None;
        if !self.budgets.is_ready() || self.awaiting_prefill || self.prompt.is_none() {
            return;
        }
        let id = self.fresh_id();
        self.run_id = Some(id);
        self.run_started = Some(self.clock);
        self.run_stopped = false;
        self.run_slots = [
            self.budgets.prompt_len * self.budgets.n_layers,
            self.budgets.uniform.iter().sum(),
            self.budgets.custom.iter().sum(),
        ];
        for p in &mut self.panes {
            p.reset_run();
        }
        self.pane_scroll = 0;
        let scorer = self.scorer;
        let variants = vec![
            Variant::full(Pane::Full.variant()),
            Variant::layers(Pane::Uniform.variant(), self.budgets.uniform.clone(), scorer),
            Variant::layers(Pane::Custom.variant(), self.budgets.custom.clone(), scorer),
        ];
        fx.push(Effect::Send(Command::Run { run_id: id, variants, params: self.params.clone() }));
    }

    /// Sizes the budgets once both the model and the prompt are known, then runs.
    fn try_configure(&mut self, fx: &mut Vec<Effect>) {
        let (Some(model), Some(prompt)) = (&self.model, &self.prompt) else {
            return;
        };
        let (n, len, min) = (model.n_layers, prompt.pieces.len(), prompt.min_layer_tokens);
        if n == 0 || len == 0 {
            self.message(Level::Warn, "empty prompt: nothing to prune (press o to edit it)");
            return;
        }
        match self.budgets.configure(n, len, min) {
            Ok(()) => {
                self.selected = self.selected.min(n - 1);
                self.cursor = self.cursor.min(len - 1);
                self.start_run(fx);
            }
            Err(e) => self.message(Level::Error, format!("could not split the budget: {e}")),
        }
    }

    fn sensitivity_means(&self) -> Option<Vec<f64>> {
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
                for p in &mut self.panes {
                    p.clear();
                }
                self.follow_cursor = true;
                self.try_configure(fx);
            }
            Event::Occupancy { run_id, variant, occupancy } => {
                let Some(pane) = Pane::from_variant(variant) else { return };
                if Some(run_id) == self.run_id {
                    let p = &mut self.panes[pane.index()];
                    p.share = keep_share(&occupancy);
                    p.occupancy = Some(occupancy);
                    p.occupancy_stale = false;
                }
            }
            Event::Token { run_id, variant, index, token_id, text } => {
                let Some(pane) = Pane::from_variant(variant) else { return };
                if Some(run_id) == self.run_id && !self.run_stopped {
                    let toks = &mut self.panes[pane.index()].tokens;
                    if index < toks.len() {
                        toks[index] = (token_id, text);
                    } else {
                        toks.push((token_id, text));
                    }
                }
            }
            Event::RunDone { .. } => {}
            Event::VariantDone { run_id, variant, metrics } => {
                let Some(pane) = Pane::from_variant(variant) else { return };
                if Some(run_id) == self.run_id {
                    self.panes[pane.index()].metrics = Some(metrics);
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
                let means = sensitivity.iter().map(|s| s.mean).collect();
                self.sensitivity = Some(sensitivity);
                match self.budgets.set_shape(Shape::DepthKv { sensitivity: means, rule: DepthRule::Proportional }) {
                    Ok(()) => {
                        self.profile_name = None;
                        self.message(
                            Level::Info,
                            format!(
                                "calibrated in {seconds:.1} s: DepthKV split applied (u/p reset to uniform/pyramid)"
                            ),
                        );
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

    fn open_editor(&mut self, kind: EditorKind, text: &str) {
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
        match self.budgets.set_layer(layer, target) {
            Ok(true) => {
                self.profile_name = None;
                self.schedule_rerun();
            }
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
        let col = (g.col_of(self.cursor, len) as isize + cols).clamp(0, g.cols as isize - 1);
        self.move_cursor(g.bin(col as usize, len).start as isize);
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
                        if self.budgets.is_ready() {
                            let step = self.budgets.step(coarse) as isize;
                            let now = self.budgets.custom[self.selected] as isize;
                            let target = (now + dir * step).max(0) as usize;
                            self.adjust_layer(self.selected, target);
                        }
                    }
                    Focus::Heatmap => self.heat_step(dir * if coarse { 10 } else { 1 }),
                    Focus::Tokens => self.move_cursor(cur + dir * if coarse { 10 } else { 1 }),
                    Focus::Outputs => {}
                }
            }
            K::Lock => {
                if self.budgets.is_ready() {
                    let now = self.budgets.toggle_lock(self.selected);
                    let n = self.budgets.locked.iter().filter(|l| **l).count();
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
                let g = self.budgets.global / GLOBAL_STEP;
                let next = if action == K::BudgetUp {
                    ((g + 1e-6).floor() + 1.0) * GLOBAL_STEP
                } else {
                    ((g - 1e-6).ceil() - 1.0) * GLOBAL_STEP
                };
                let before = self.budgets.custom.clone();
                let before_g = self.budgets.global;
                match self.budgets.set_global(next) {
                    Ok(()) => {
                        if self.budgets.custom != before || self.budgets.global != before_g {
                            self.schedule_rerun();
                        }
                    }
                    Err(e) => self.message(Level::Warn, e.to_string()),
                }
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
        match self.budgets.set_shape(shape) {
            Ok(()) => {
                self.profile_name = None;
                self.schedule_rerun();
                let locked = self.budgets.locked.iter().filter(|l| **l).count();
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
        let pct = (self.budgets.global * 100.0).round() as u32;
        let raw = format!("{model}-{}-{pct}", self.budgets.shape.name());
        let slug: String = raw
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c.to_ascii_lowercase() } else { '-' })
            .collect();
        format!("{slug}.json")
    }

    fn on_mouse(&mut self, m: MouseEvent) {
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
                        if m.column + 1 >= g.bar_x && self.budgets.is_ready() {
                            self.drag = Some(layer);
                            let t = g.target_at(m.column, self.budgets.prompt_len);
                            self.adjust_layer(layer, t);
                        }
                    }
                } else if inside(l.heatmap) {
                    self.focus = Focus::Heatmap;
                    let g = heatmap::geometry(l.heatmap.unwrap_or_default(), self);
                    if let Some((layer, pos)) = g.cell_at(m.column, m.row, self.n_layers(), self.prompt_len()) {
                        self.selected = layer;
                        self.move_cursor(pos as isize);
                    }
                } else if inside(l.tokens) {
                    self.focus = Focus::Tokens;
                    if let Some(pos) = tokens::position_at(l.tokens.unwrap_or_default(), self, m.column, m.row) {
                        self.cursor = pos;
                    }
                } else if inside(l.panes) {
                    self.focus = Focus::Outputs;
                }
            }
            MouseEventKind::Drag(MouseButton::Left) => {
                if let (Some(layer), Some(r)) = (self.drag, l.bars) {
                    let g = bars::geometry(r, self);
                    let t = g.target_at(m.column, self.budgets.prompt_len);
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

    fn on_profile_imported(&mut self, r: Result<ImportedProfile, String>) {
        let p = match r {
            Ok(p) => p,
            Err(e) => return self.message(Level::Error, format!("import failed: {e}")),
        };
        if self.budgets.n_layers > 0 && p.fractions.len() != self.budgets.n_layers {
            return self.message(
                Level::Error,
                format!("profile has {} layers, model has {}", p.fractions.len(), self.budgets.n_layers),
            );
        }
        let old = self.budgets.clone();
        self.budgets.global = p.global_budget.clamp(0.0, 1.0);
        if let Err(e) = self.budgets.set_shape(Shape::Fractions(p.fractions.clone())) {
            self.budgets = old;
            return self.message(Level::Error, format!("profile could not be applied: {e}"));
        }
        if self.budgets.is_ready() {
            // Clamp the global budget to what this prompt allows.
            let _ = self.budgets.set_global(self.budgets.global);
        }
        if p.sensitivity.is_some() {
            self.sensitivity = p.sensitivity;
        }
        self.profile_name = Some(p.name.clone());
        for w in &p.warnings {
            self.message(Level::Warn, w.clone());
        }
        self.message(Level::Info, format!("imported profile {} from {}", p.name, p.path.display()));
        self.schedule_rerun();
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
