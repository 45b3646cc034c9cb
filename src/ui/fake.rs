//! A fake engine for tests and demos: scripted events go into an
//! `EngineHandle`'s channel, commands the UI sends are recorded. Also
//! deterministic synthetic data (model, prompt attention, occupancy, outputs)
//! and a [`Harness`] that drives `App` exactly like the run loop does, minus
//! the terminal.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use std::collections::HashMap;

use crate::prune::{self, SelectConfig};
use crate::session::protocol::{
    Allocation, Command, EngineHandle, Event, GenParams, Job, LayerSensitivity, ModelInfo, Occupancy, PromptSnapshot,
    RunId, Variant, VariantId,
};

use super::app::{Action, App, PaneMetrics};
use super::keys::Keymap;
use super::run::{dispatch, TuiOptions};
use super::theme::Theme;

/// The engine end of a fake `EngineHandle`.
pub struct FakeEngine {
    events: UnboundedSender<Event>,
    commands: Receiver<Command>,
    recorded: Vec<Command>,
}

impl FakeEngine {
    /// A fake engine and the handle to give the UI.
    pub fn new() -> (FakeEngine, EngineHandle) {
        let (etx, erx) = unbounded_channel();
        let (ctx, crx) = mpsc::channel();
        (FakeEngine { events: etx, commands: crx, recorded: Vec::new() }, EngineHandle { commands: ctx, events: erx })
    }

    /// Queues one event for the UI (ignored once the UI is gone).
    pub fn emit(&self, ev: Event) {
        let _ = self.events.send(ev);
    }

    pub fn script(&self, events: impl IntoIterator<Item = Event>) {
        for ev in events {
            self.emit(ev);
        }
    }

    /// Every command received so far, oldest first.
    pub fn commands(&mut self) -> &[Command] {
        while let Ok(c) = self.commands.try_recv() {
            self.recorded.push(c);
        }
        &self.recorded
    }

    /// Every `Command::Run` so far.
    pub fn runs(&mut self) -> Vec<SentRun> {
        self.commands()
            .iter()
            .filter_map(|c| match c {
                Command::Run { run_id, variants, .. } => Some(SentRun { run_id: *run_id, variants: variants.clone() }),
                _ => None,
            })
            .collect()
    }

    pub fn last_run(&mut self) -> Option<SentRun> {
        self.runs().pop()
    }
}

/// A `Command::Run` as the fake engine received it.
#[derive(Debug, Clone, PartialEq)]
pub struct SentRun {
    pub run_id: RunId,
    pub variants: Vec<Variant>,
}

impl SentRun {
    pub fn variant(&self, id: VariantId) -> Option<&Variant> {
        self.variants.iter().find(|v| v.id == id)
    }

    /// The layer budgets variant `id` was sent with (`None`: absent or full).
    pub fn layers(&self, id: VariantId) -> Option<Vec<usize>> {
        match &self.variant(id)?.allocation {
            Allocation::Layers(b) => Some(b.clone()),
            _ => None,
        }
    }
}

/// Small deterministic PRNG (splitmix64) so synthetic data is reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

pub fn model_info(n_layers: usize) -> ModelInfo {
    ModelInfo {
        name: "Qwen/Qwen2.5-0.5B-Instruct".into(),
        architecture: "qwen2".into(),
        n_layers,
        n_heads: 14,
        n_kv_heads: 2,
        head_dim: 64,
        max_context: 32768,
        device: "cuda:0".into(),
        dtype: "bf16".into(),
        // K and V, 2 KV heads × 64 dims × 2 bytes.
        kv_bytes_per_token_layer: 2 * 2 * 64 * 2,
    }
}

/// Word-ish pieces with leading spaces, like a BPE tokenizer's output.
pub fn split_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        let boundary = c.is_whitespace() || c.is_ascii_punctuation();
        if boundary && !cur.is_empty() && !cur.chars().all(char::is_whitespace) {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
        if c == '\n' || (c.is_ascii_punctuation() && c != '\'') {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Token id of a piece (stable hash), so equal text means equal id.
pub fn token_id(text: &str) -> u32 {
    text.bytes().fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619)) % 151_000
}

/// Synthetic window attention: strong sinks and recent window, a few salient
/// positions per layer, more diffuse in lower layers.
pub fn snapshot(pieces: Vec<String>, n_layers: usize, n_kv_heads: usize) -> PromptSnapshot {
    let len = pieces.len();
    let mut rng = Rng::new(0xD3E7_4C0D);
    let mut salient = vec![0f32; len];
    for (p, s) in salient.iter_mut().enumerate() {
        let piece = pieces[p].trim();
        if piece.chars().next().is_some_and(char::is_uppercase) || piece.chars().any(|c| c.is_ascii_digit()) {
            *s = 0.6;
        }
    }
    let window_attention = (0..n_layers)
        .map(|l| {
            let depth = l as f32 / n_layers.max(1) as f32;
            (0..n_kv_heads)
                .map(|h| {
                    (0..len)
                        .map(|p| {
                            let noise = rng.f32();
                            let mut v = 0.03 + 0.08 * (1.0 - depth) * noise;
                            if p < 4 {
                                v += 1.5 - 0.3 * p as f32;
                            }
                            if p + 32 >= len {
                                v += 0.35 + 0.3 * (p + 32 - len) as f32 / 32.0;
                            }
                            v += salient[p] * (0.3 + depth) * if (p + h + l) % 3 == 0 { 1.4 } else { 0.6 };
                            if (p * 7 + l * 13 + h * 5) % 29 == 0 {
                                v += 0.5 * depth;
                            }
                            v
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let sel = SelectConfig::default();
    let kv_ceilings = vec![len; n_layers];
    PromptSnapshot {
        pieces,
        window_attention,
        prefill_seconds: 0.042,
        layer_floors: prune::apply::floors(&sel, len, &kv_ceilings),
        kv_ceilings,
    }
}

/// What the engine's selector would keep: sinks and the recent window
/// always, then the highest-attention positions, per KV head.
pub fn occupancy(snap: &PromptSnapshot, budgets: &[usize]) -> Occupancy {
    let len = snap.pieces.len();
    let kept = snap
        .window_attention
        .iter()
        .zip(budgets)
        .map(|(heads, &b)| {
            heads
                .iter()
                .map(|att| {
                    let b = b.min(len);
                    let sel = SelectConfig::default();
                    let mut forced: Vec<usize> =
                        (0..sel.sinks.min(len)).chain(len.saturating_sub(sel.window)..len).collect();
                    forced.dedup();
                    let mut rest: Vec<usize> = (0..len).filter(|p| !forced.contains(p)).collect();
                    rest.sort_by(|&a, &c| att[c].total_cmp(&att[a]).then(a.cmp(&c)));
                    let mut keep: Vec<u32> = forced.into_iter().chain(rest).take(b).map(|p| p as u32).collect();
                    keep.sort_unstable();
                    keep
                })
                .collect()
        })
        .collect();
    Occupancy { prompt_len: len, kept }
}

pub const DEMO_PROMPT: &str = "You are reading a travel log. Answer the question at the end using only the log.\n\
Day 1: we landed in Lisbon at 7:40 after a night flight and took tram 28 up the hill to Alfama. The streets were \
narrow and steep, and the tram squeezed past laundry lines and tiny cafes. We had custard tarts at a bakery near \
the cathedral and watched the river from the Santa Luzia viewpoint until the light went orange.\n\
Day 2: a morning train from Rossio station to Sintra, about forty minutes. Pena Palace was closed for repairs, \
so we walked up through the forest to the Moorish Castle instead. The walls were covered in moss and the fog \
rolled in and out all afternoon. Back in the town we bought travesseiros, a pastry filled with almond cream.\n\
Day 3: ferry across the Tagus to Cacilhas for grilled sardines at a place with plastic chairs and excellent \
bread. In the evening we listened to fado in a small room where the singer stood between the tables.\n\
Day 4: rain all day. We spent the morning in the tile museum and the afternoon in a bookshop that claims to be \
the oldest in the world. The hotel gave us a locker for our bags on the last morning; the locker code was 4417, \
written on the back of the receipt. We caught the 18:05 train to Porto.\n\
Question: what was the locker code, and which palace was closed?";

/// What a demo variant streams, by how it prunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demo {
    Full,
    /// Every layer within one token of the others.
    Uniform,
    /// Any other split.
    Shaped,
}

impl Demo {
    pub fn of(v: &Variant) -> Demo {
        match &v.allocation {
            Allocation::Full => Demo::Full,
            Allocation::Layers(b) if b.iter().max().unwrap_or(&0) - b.iter().min().unwrap_or(&0) <= 1 => Demo::Uniform,
            _ => Demo::Shaped,
        }
    }

    pub fn text(self) -> &'static str {
        DEMO_OUTPUTS[self as usize]
    }
}

/// Continuations by [`Demo`] kind: Full, and pruned ones that drift.
pub const DEMO_OUTPUTS: [&str; 3] = [
    " The locker code was 4417, and Pena Palace in Sintra was closed for repairs on Day 2, so the group visited the Moorish Castle instead.",
    " The locker code was 4471, and Pena Palace in Sintra was closed for repairs, so the travellers went to Alfama instead.",
    " The locker code was 4417, and Pena Palace in Sintra was closed for repairs on Day 2, so they walked to the Moorish Castle.",
];

/// `Token` events for one variant, `range` of its continuation's pieces.
pub fn token_events(run_id: RunId, variant: VariantId, text: &str, range: std::ops::Range<usize>) -> Vec<Event> {
    split_words(text)
        .into_iter()
        .enumerate()
        .skip(range.start)
        .take(range.len())
        .map(|(index, t)| Event::Token { run_id, variant, index, token_id: token_id(&t), text: t })
        .collect()
}

/// Plausible metrics for a variant holding `slots` of `full_slots`.
pub fn metrics(kind: Demo, slots: usize, full_slots: usize, bytes_per_slot: usize) -> PaneMetrics {
    let keep = slots as f64 / full_slots.max(1) as f64;
    let (kl, top1) = match kind {
        Demo::Full => (0.0, 1.0),
        Demo::Uniform => (0.9 * (1.0 - keep).powi(2), 1.0 - 0.35 * (1.0 - keep)),
        Demo::Shaped => (0.35 * (1.0 - keep).powi(2), 1.0 - 0.12 * (1.0 - keep)),
    };
    PaneMetrics {
        kl_to_full: kl,
        top1_agreement: top1,
        tokens_per_second: match kind {
            Demo::Full => 61.8,
            _ => 74.5,
        },
        kv_bytes: slots * bytes_per_slot,
        cached: false,
    }
}

/// Per-layer sensitivity shaped like the paper's: early layers and a band in
/// the middle matter most.
pub fn sensitivity(n_layers: usize) -> Vec<LayerSensitivity> {
    (0..n_layers)
        .map(|l| {
            let x = l as f64 / n_layers.max(1) as f64;
            let mean = 0.02 + 0.5 * (-x * 6.0).exp() + 0.12 * (-((x - 0.55) * 8.0).powi(2)).exp();
            LayerSensitivity { mean, ci_low: mean * 0.8, ci_high: mean * 1.2 }
        })
        .collect()
}

/// Drives an `App` the way the run loop does (same `dispatch`), with a fake
/// engine on the other end and a clock the test controls.
pub struct Harness {
    pub app: App,
    pub engine: FakeEngine,
    pub handle: EngineHandle,
    pub now: Instant,
}

impl Harness {
    /// Dark theme, default keys, `/profiles` as the profiles dir; sends
    /// `Resize` and `Start` (so the engine has received `SetPrompt`).
    pub fn new(opts: &TuiOptions, size: (u16, u16)) -> Harness {
        Harness::with_theme(opts, size, Theme::default())
    }

    pub fn with_theme(opts: &TuiOptions, size: (u16, u16), theme: Theme) -> Harness {
        let (engine, handle) = FakeEngine::new();
        let now = Instant::now();
        let app = App::new(opts, theme, Keymap::default(), PathBuf::from("/profiles"), now);
        let mut h = Harness { app, engine, handle, now };
        h.act(Action::Resize(size.0, size.1));
        h.act(Action::Start);
        h
    }

    pub fn act(&mut self, action: Action) {
        dispatch(&mut self.app, &self.handle.commands, action);
    }

    /// Applies every event the fake engine has queued.
    pub fn pump(&mut self) -> usize {
        let mut n = 0;
        while let Ok(ev) = self.handle.events.try_recv() {
            self.act(Action::Engine(ev));
            n += 1;
        }
        n
    }

    pub fn emit(&mut self, ev: Event) {
        self.engine.emit(ev);
        self.pump();
    }

    pub fn emit_all(&mut self, evs: impl IntoIterator<Item = Event>) {
        self.engine.script(evs);
        self.pump();
    }

    /// Moves the clock forward and ticks.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.act(Action::Tick(self.now));
    }

    pub fn press(&mut self, code: KeyCode) {
        self.press_with(code, KeyModifiers::NONE);
    }

    pub fn press_with(&mut self, code: KeyCode, mods: KeyModifiers) {
        self.act(Action::Key(KeyEvent::new_with_kind(code, mods, KeyEventKind::Press)));
    }

    pub fn mouse(&mut self, kind: MouseEventKind, column: u16, row: u16) {
        self.act(Action::Mouse(MouseEvent { kind, column, row, modifiers: KeyModifiers::NONE }));
    }

    pub fn drag(&mut self, from: (u16, u16), to: &[(u16, u16)]) {
        self.mouse(MouseEventKind::Down(MouseButton::Left), from.0, from.1);
        for &(x, y) in to {
            self.mouse(MouseEventKind::Drag(MouseButton::Left), x, y);
        }
        let last = to.last().copied().unwrap_or(from);
        self.mouse(MouseEventKind::Up(MouseButton::Left), last.0, last.1);
    }

    /// Loads a model of `n_layers` and prefills `prompt` (split into words).
    pub fn load(&mut self, n_layers: usize, prompt: &str) -> PromptSnapshot {
        self.load_windowed(n_layers, prompt, None)
    }

    /// As [`Harness::load`]; with `Some(window)` the even layers are local
    /// (sliding window), as in Gemma 2, and hold at most `window` tokens.
    pub fn load_windowed(&mut self, n_layers: usize, prompt: &str, window: Option<usize>) -> PromptSnapshot {
        let info = model_info(n_layers);
        let mut snap = snapshot(split_words(prompt), n_layers, info.n_kv_heads);
        if let Some(w) = window {
            let len = snap.pieces.len();
            snap.kv_ceilings = (0..n_layers).map(|l| if l % 2 == 0 { w.min(len) } else { len }).collect();
        }
        self.emit_all([
            Event::Progress { job: Job::LoadModel, done: 3, total: 3 },
            Event::Loaded(info),
            Event::Prefilled(snap.clone()),
        ]);
        snap
    }

    /// Renders the current state into a fresh `TestBackend` buffer.
    pub fn draw(&self) -> Buffer {
        let (w, h) = self.app.size;
        let mut term = Terminal::new(TestBackend::new(w, h)).expect("test backend");
        term.draw(|f| super::render(&self.app, f)).expect("draw");
        term.backend().buffer().clone()
    }
}

/// An engine thread that answers commands with synthetic data, for demos and
/// end-to-end tests of the run loop (`depthkv tui --demo` style).
pub fn spawn_demo(n_layers: usize, token_delay: Duration) -> EngineHandle {
    let (etx, erx) = unbounded_channel();
    let (ctx, crx) = mpsc::channel::<Command>();
    std::thread::Builder::new()
        .name("depthkv-fake-engine".into())
        .spawn(move || demo_worker(n_layers, token_delay, crx, etx))
        .expect("spawn fake engine");
    EngineHandle { commands: ctx, events: erx }
}

fn demo_worker(n_layers: usize, delay: Duration, rx: Receiver<Command>, tx: UnboundedSender<Event>) {
    let info = model_info(n_layers);
    let send = |ev: Event| tx.send(ev).is_ok();
    for i in 1..=3 {
        send(Event::Progress { job: Job::LoadModel, done: i, total: 3 });
        std::thread::sleep(delay);
    }
    send(Event::Loaded(info.clone()));
    let mut snap: Option<PromptSnapshot> = None;
    let mut pending: Option<Command> = None;
    let mut store: DemoStore = HashMap::new();
    loop {
        let cmd = match pending.take() {
            Some(c) => c,
            None => match rx.recv() {
                Ok(c) => c,
                Err(_) => return,
            },
        };
        match cmd {
            Command::Shutdown => return,
            Command::Cancel => {}
            Command::SetPrompt { text, .. } => {
                send(Event::Progress { job: Job::Prefill, done: 0, total: 1 });
                let s = snapshot(split_words(&text), n_layers, info.n_kv_heads);
                snap = Some(s.clone());
                store.clear();
                send(Event::Prefilled(s));
            }
            Command::Calibrate { run_id, .. } => {
                for i in 0..=8 {
                    send(Event::Progress { job: Job::Calibrate, done: i, total: 8 });
                    std::thread::sleep(delay * 3);
                }
                send(Event::Calibrated { run_id, sensitivity: sensitivity(n_layers), seconds: 1.7 });
            }
            Command::Run { run_id, variants, params } => {
                let Some(s) = &snap else {
                    send(Event::Error { run_id: Some(run_id), message: "no prompt".into() });
                    continue;
                };
                match demo_run(s, n_layers, &info, run_id, &variants, &params, &mut store) {
                    Err(message) => {
                        send(Event::Error { run_id: Some(run_id), message });
                    }
                    Ok(plan) => match stream_demo_run(run_id, plan, &params, delay, &rx, &send, &mut store) {
                        Streamed::Done => {
                            send(Event::RunDone { run_id });
                        }
                        Streamed::Interrupted(c) => pending = c,
                        Streamed::Gone => return,
                    },
                }
            }
        }
    }
}

/// What makes two demo variants stream the same events: what the real
/// session keys on (the demo text follows from the budgets).
type DemoKey =
    (Vec<usize>, prune::Scorer, bool, crate::engine::KvPrecision, Option<u64>, (usize, u64, Option<u64>, u64));
type DemoStore = HashMap<DemoKey, Vec<Event>>;

/// One variant of a demo run: its key, and its events (run id 0, to be
/// re-tagged), or `None` when the store has them already.
struct DemoVariant {
    id: VariantId,
    key: DemoKey,
    fresh: bool,
    events: Vec<Event>,
}

enum Streamed {
    Done,
    Interrupted(Option<Command>),
    Gone,
}

/// Resolves and checks every variant the way the session does, and builds
/// its events (from the store when nothing changed).
fn demo_run(
    s: &PromptSnapshot,
    n_layers: usize,
    info: &ModelInfo,
    run_id: RunId,
    variants: &[Variant],
    params: &GenParams,
    store: &mut DemoStore,
) -> Result<Vec<DemoVariant>, String> {
    let bounds = prune::LayerBounds::with_floors(&s.layer_floors, &s.kv_ceilings);
    variants
        .iter()
        .map(|v| {
            let budgets = match &v.allocation {
                Allocation::Full => bounds.hi().to_vec(),
                Allocation::Layers(b) => b.clone(),
                Allocation::Strategy { strategy, budget } => {
                    let total = bounds.feasible(bounds.total_slots(*budget));
                    prune::allocate_within(strategy, total, &bounds).map_err(|e| e.to_string())?
                }
            };
            if budgets.len() != n_layers {
                return Err(format!("{} layer budgets given, the model has {n_layers} layers", budgets.len()));
            }
            bounds.check(&budgets).map_err(|e| e.to_string())?;
            let heads = match v.heads {
                prune::HeadSplit::Even => None,
                prune::HeadSplit::Ada { safeguard } => Some(safeguard.to_bits()),
            };
            let key = (budgets.clone(), v.scorer, v.decode_evict, v.precision, heads, params.key());
            if let Some(events) = store.get(&key) {
                return Ok(DemoVariant { id: v.id, key, fresh: false, events: events.clone() });
            }
            let kind = Demo::of(v);
            let start = super::fake_cache::occupancy_split(s, &budgets, v.heads);
            let tokens = token_events(run_id, v.id, kind.text(), 0..params.max_new_tokens);
            let reports = super::fake_cache::decode_reports(s, &start, &budgets, v.decode_evict, tokens.len());
            let mut events = vec![Event::Occupancy { run_id, variant: v.id, occupancy: start }];
            events.extend(super::fake_cache::with_reports(run_id, v.id, tokens, reports));
            let m = metrics(kind, budgets.iter().sum(), bounds.hi_total(), info.kv_bytes_per_token_layer);
            events.push(Event::VariantDone { run_id, variant: v.id, metrics: m });
            Ok(DemoVariant { id: v.id, key, fresh: true, events })
        })
        .collect()
}

/// A stored event under this run's id and the asking variant's id.
fn retag(ev: &Event, run: RunId, variant: VariantId, cached: bool) -> Event {
    match ev.clone() {
        Event::Occupancy { occupancy, .. } => Event::Occupancy { run_id: run, variant, occupancy },
        Event::DecodeOccupancy { occupancy, .. } => Event::DecodeOccupancy { run_id: run, variant, occupancy },
        Event::Token { index, token_id, text, .. } => Event::Token { run_id: run, variant, index, token_id, text },
        Event::VariantDone { metrics, .. } => {
            Event::VariantDone { run_id: run, variant, metrics: PaneMetrics { cached, ..metrics } }
        }
        other => other,
    }
}

/// Replays stored variants at once and streams fresh ones a token each in
/// turn; a new command interrupts between tokens, like the session.
fn stream_demo_run(
    run_id: RunId,
    plan: Vec<DemoVariant>,
    params: &GenParams,
    delay: Duration,
    rx: &Receiver<Command>,
    send: &dyn Fn(Event) -> bool,
    store: &mut DemoStore,
) -> Streamed {
    let _ = params;
    for v in plan.iter().filter(|v| !v.fresh) {
        for e in &v.events {
            send(retag(e, run_id, v.id, true));
        }
    }
    let fresh: Vec<&DemoVariant> = plan.iter().filter(|v| v.fresh).collect();
    for v in &fresh {
        send(retag(&v.events[0], run_id, v.id, false));
    }
    let longest = fresh.iter().map(|v| v.events.len()).max().unwrap_or(0);
    for i in 1..longest {
        for v in &fresh {
            if let Some(e) = v.events.get(i) {
                send(retag(e, run_id, v.id, false));
            }
        }
        std::thread::sleep(delay);
        match rx.try_recv() {
            Ok(Command::Cancel) => return Streamed::Interrupted(None),
            Ok(c) => return Streamed::Interrupted(Some(c)),
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => return Streamed::Gone,
        }
    }
    for v in fresh {
        store.insert(v.key.clone(), v.events.clone());
    }
    Streamed::Done
}
