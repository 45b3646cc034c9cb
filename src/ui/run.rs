//! The run loop: terminal setup/teardown, and one `tokio::select!` over
//! terminal input, a render tick and engine events.

use std::collections::VecDeque;
use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event as TermEvent,
    EventStream, KeyEventKind,
};
use crossterm::execute;
use crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen};
use futures_util::{Stream, StreamExt};
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::Terminal;
use tokio::time::MissedTickBehavior;

use crate::session::protocol::{Command, EngineHandle, Event, GenParams};

use super::app::{update, Action, App, Effect};
use super::config::{self, KeysFile};
use super::keys::Keymap;
use super::profile_io;
use super::render::render;
use super::signals::StopSignals;
use super::theme::Theme;
use crate::prune::{SelectConfig, StrategyKind};

/// Render/debounce tick.
pub const TICK: Duration = Duration::from_millis(50);
/// Engine events applied per frame at most (keeps input responsive under a
/// flood of tokens).
const MAX_EVENTS_PER_FRAME: usize = 4096;

/// How the TUI starts.
#[derive(Debug, Clone, PartialEq)]
pub struct TuiOptions {
    /// `--theme NAME|PATH`: built-in name, user theme in the config dir, or a file.
    pub theme: String,
    /// Global KV budget: kept fraction of the prompt's KV slots, in (0, 1].
    pub initial_budget: f64,
    /// How the third starting pane (after full and uniform) splits the budget.
    pub initial_strategy: StrategyKind,
    /// Per-layer sensitivity means (needed by the DepthKV strategies).
    pub initial_sensitivity: Option<Vec<f64>>,
    /// Per-layer kept fractions (needed by `Manual`).
    pub initial_fractions: Option<Vec<f64>>,
    /// Shown in the header when the split comes from a profile.
    pub profile_name: Option<String>,
    pub prompt: String,
    /// Apply the model's chat template to the prompt.
    pub chat: bool,
    pub params: GenParams,
    /// The selection settings the engine was started with: their sinks and
    /// window set the per-layer minimum budget (`min(sinks + window, L)`).
    pub select: SelectConfig,
}

impl Default for TuiOptions {
    fn default() -> Self {
        TuiOptions {
            theme: "dark".into(),
            initial_budget: 0.25,
            initial_strategy: StrategyKind::Uniform,
            initial_sensitivity: None,
            initial_fractions: None,
            profile_name: None,
            prompt: String::new(),
            chat: false,
            params: GenParams::default(),
            select: SelectConfig::default(),
        }
    }
}

/// Runs the workbench until the user quits. The caller owns the tokio
/// current-thread runtime and the engine thread; on quit the TUI sends
/// `Command::Shutdown`. The terminal is restored on every exit path:
/// normal quit, errors, panics, and SIGTERM/SIGHUP/SIGINT.
pub async fn run_tui(handle: EngineHandle, opts: TuiOptions) -> anyhow::Result<()> {
    let config_dir = config::config_dir();
    let theme = Theme::resolve(&opts.theme, config_dir.as_deref())?;
    let keys = KeysFile::load_from_dir(config_dir.as_deref())?;
    let keymap = Keymap::with_overrides(&keys).context("invalid keys.toml")?;
    let app = App::new(&opts, theme, keymap, config::default_profiles_dir(), Instant::now());

    let signals = StopSignals::install().context("could not install signal handlers")?;
    let guard = TerminalGuard::enter().context("could not set up the terminal")?;
    let mut terminal: Terminal<CrosstermBackend<Stdout>> =
        Terminal::new(CrosstermBackend::new(io::stdout())).context("could not set up the terminal")?;
    let commands = handle.commands.clone();
    let result = tokio::select! {
        r = event_loop(&mut terminal, EventStream::new(), handle, app) => r.map(|_| ()),
        name = signals.wait() => {
            let _ = commands.send(Command::Shutdown);
            Err(anyhow::anyhow!("stopped by {name}; the terminal was restored"))
        }
    };
    drop(terminal);
    drop(guard);
    drop(signals);
    result
}

/// The loop behind [`run_tui`], generic over the backend and the input
/// stream so tests can drive it with `TestBackend` and scripted input.
/// Returns the final state.
pub async fn event_loop<B, S>(
    terminal: &mut Terminal<B>,
    mut input: S,
    mut handle: EngineHandle,
    mut app: App,
) -> anyhow::Result<App>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    S: Stream<Item = io::Result<TermEvent>> + Unpin,
{
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let size = terminal.size()?;
    dispatch(&mut app, &handle.commands, Action::Resize(size.width, size.height));
    dispatch(&mut app, &handle.commands, Action::Start);
    let mut engine_open = true;
    loop {
        terminal.draw(|f| render(&app, f))?;
        if app.quit {
            break;
        }
        tokio::select! {
            _ = ticker.tick() => {
                dispatch(&mut app, &handle.commands, Action::Tick(Instant::now()));
            }
            ev = input.next() => match ev {
                Some(Ok(ev)) => {
                    if let Some(action) = translate(ev) {
                        dispatch(&mut app, &handle.commands, Action::Tick(Instant::now()));
                        dispatch(&mut app, &handle.commands, action);
                    }
                }
                Some(Err(e)) => return Err(e).context("reading terminal input"),
                None => break,
            },
            ev = handle.events.recv(), if engine_open => match ev {
                Some(ev) => {
                    dispatch(&mut app, &handle.commands, Action::Engine(ev));
                    for _ in 0..MAX_EVENTS_PER_FRAME {
                        match handle.events.try_recv() {
                            Ok(ev) => dispatch(&mut app, &handle.commands, Action::Engine(ev)),
                            Err(_) => break,
                        }
                    }
                }
                None => {
                    engine_open = false;
                    let message = "the engine stopped; press q to quit".to_string();
                    dispatch(&mut app, &handle.commands, Action::Engine(Event::Error { run_id: None, message }));
                }
            },
        }
    }
    Ok(app)
}

/// Terminal events the app cares about.
pub fn translate(ev: TermEvent) -> Option<Action> {
    match ev {
        TermEvent::Key(k) if k.kind != KeyEventKind::Release => Some(Action::Key(k)),
        TermEvent::Mouse(m) => Some(Action::Mouse(m)),
        TermEvent::Resize(w, h) => Some(Action::Resize(w, h)),
        TermEvent::Paste(s) => Some(Action::Paste(s)),
        _ => None,
    }
}

/// Applies an action and carries out its effects (which may feed further
/// actions back, e.g. the result of writing a profile).
pub fn dispatch(app: &mut App, commands: &Sender<Command>, action: Action) {
    let mut queue = VecDeque::from([action]);
    while let Some(a) = queue.pop_front() {
        for fx in update(app, a) {
            match fx {
                Effect::Send(cmd) => {
                    let shutdown = cmd == Command::Shutdown;
                    if commands.send(cmd).is_err() && !shutdown {
                        queue.push_back(Action::Engine(Event::Error {
                            run_id: None,
                            message: "the engine is not running".into(),
                        }));
                    }
                }
                Effect::Export { path } => queue.push_back(Action::ProfileExported(profile_io::export(app, &path))),
                Effect::Import { path } => {
                    queue.push_back(Action::ProfileImported(profile_io::import(&path, app.model.as_ref())))
                }
            }
        }
    }
}

static TERMINAL_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Leaves raw mode and the alternate screen, once.
fn restore_terminal() {
    if TERMINAL_ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(
            io::stdout(),
            DisableBracketedPaste,
            DisableMouseCapture,
            LeaveAlternateScreen,
            crossterm::cursor::Show
        );
    }
}

/// Raw mode + alternate screen + mouse capture for its lifetime; dropping it
/// (normal return, `?`, unwinding) restores the terminal, and a panic hook
/// restores it before the panic message is printed.
pub struct TerminalGuard {
    _private: (),
}

impl TerminalGuard {
    pub fn enter() -> io::Result<TerminalGuard> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_terminal();
                previous(info);
            }));
        });
        enable_raw_mode()?;
        TERMINAL_ACTIVE.store(true, Ordering::SeqCst);
        let guard = TerminalGuard { _private: () };
        execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture, EnableBracketedPaste)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}
