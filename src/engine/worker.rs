//! The engine thread: owns the model, takes `Command`s, reports `Event`s.
//!
//! Only the newest request matters: while a run decodes, the thread polls its
//! command queue between tokens; a new run, prompt or cancel stops the
//! current run at once, and queued runs collapse to the latest. Every event
//! of a run carries its id, so clients can drop stragglers.

use super::cache::KvCache;
use super::protocol::{
    Command, EngineHandle, Event, GenParams, Job, Occupancy, Pane, PaneMetrics, PromptSnapshot, RunId,
};
use super::{Decoder, Engine, LoadOptions, PrefillOptions, Prefilled};
use crate::calib::sensitivity::{calibrate, CalibConfig};
use crate::eval::prompts::PromptItem;
use crate::eval::scoring;
use crate::prune::{apply, SelectConfig};
use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// Starts the engine thread, loading the model described by `opts`.
pub fn spawn(opts: LoadOptions, select: SelectConfig) -> std::io::Result<EngineHandle> {
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::Builder::new().name("depthkv-engine".into()).spawn(move || {
        let _ = ev_tx.send(Event::Progress { job: Job::LoadModel, done: 0, total: 1 });
        match Engine::load(&opts, &mut |_| {}) {
            Ok(engine) => {
                let _ = ev_tx.send(Event::Progress { job: Job::LoadModel, done: 1, total: 1 });
                let _ = ev_tx.send(Event::Loaded(engine.info.clone()));
                Worker { engine, select, events: ev_tx, commands: cmd_rx, pending: VecDeque::new(), prefilled: None }
                    .run();
            }
            Err(e) => {
                let _ = ev_tx.send(Event::Error { run_id: None, message: format!("loading the model failed: {e}") });
            }
        }
    })?;
    Ok(EngineHandle { commands: cmd_tx, events: ev_rx })
}

/// Serves an already loaded engine on the current thread (tests, benchmarks).
pub fn serve(engine: Engine, select: SelectConfig, commands: Receiver<Command>, events: UnboundedSender<Event>) {
    let _ = events.send(Event::Loaded(engine.info.clone()));
    Worker { engine, select, events, commands, pending: VecDeque::new(), prefilled: None }.run();
}

struct Worker {
    engine: Engine,
    select: SelectConfig,
    events: UnboundedSender<Event>,
    commands: Receiver<Command>,
    /// Commands that arrived while a job ran, oldest first.
    pending: VecDeque<Command>,
    prefilled: Option<Prefilled>,
}

/// One pane's decode in a run.
struct PaneRun {
    pane: Pane,
    decoder: Decoder,
    /// The pane's cache as pruned, before decoding (a cheap clone that shares
    /// the slots); the quality pass teacher-forces from it.
    pruned: KvCache,
    kv_bytes: usize,
    text_len: usize,
    started: Instant,
    finished: Option<f64>,
}

impl Worker {
    fn send(&self, e: Event) {
        let _ = self.events.send(e);
    }

    fn error(&self, run_id: Option<RunId>, e: impl std::fmt::Display) {
        self.send(Event::Error { run_id, message: e.to_string() });
    }

    /// Next command: queued first, else block on the channel.
    fn next(&mut self) -> Option<Command> {
        if let Some(c) = self.pending.pop_front() {
            return Some(c);
        }
        self.commands.recv().ok()
    }

    /// Moves newly arrived commands into the queue; true if one of them
    /// supersedes the job in flight.
    fn poll_interrupt(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(c) => self.pending.push_back(c),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.pending.push_back(Command::Shutdown);
                    break;
                }
            }
        }
        // Only the newest run request is worth starting.
        if let Some(last_run) = self.pending.iter().rposition(|c| matches!(c, Command::Run { .. })) {
            let mut i = 0;
            self.pending.retain(|c| {
                let keep = !matches!(c, Command::Run { .. }) || i == last_run;
                i += 1;
                keep
            });
        }
        !self.pending.is_empty()
    }

    fn run(mut self) {
        while let Some(cmd) = self.next() {
            match cmd {
                Command::Shutdown => break,
                Command::Cancel => {}
                Command::SetPrompt { text, chat } => {
                    if let Err(e) = self.set_prompt(&text, chat) {
                        self.error(None, e);
                    }
                }
                Command::Run { run_id, uniform, custom, params } => {
                    if let Err(e) = self.decode_run(run_id, &uniform, &custom, &params) {
                        self.error(Some(run_id), e);
                    }
                }
                Command::Calibrate { run_id, prompts, ablation_keep } => {
                    if let Err(e) = self.calibrate(run_id, prompts, ablation_keep) {
                        self.error(Some(run_id), e);
                    }
                }
            }
        }
    }

    fn set_prompt(&mut self, text: &str, chat: bool) -> anyhow::Result<()> {
        self.prefilled = None;
        let chat = chat && self.engine.codec.has_chat();
        let tokens = self.engine.encode(text, chat)?;
        let opts = PrefillOptions { window: self.select.window, ..Default::default() };
        let events = self.events.clone();
        let pre = self.engine.prefill_with(&tokens, opts, &mut |done, total| {
            events.send(Event::Progress { job: Job::Prefill, done, total }).is_ok()
        })?;
        self.send(Event::Prefilled(PromptSnapshot {
            pieces: self.engine.codec.pieces(&tokens),
            window_attention: pre.stats.window.clone(),
            prefill_seconds: pre.seconds,
        }));
        self.prefilled = Some(pre);
        Ok(())
    }

    fn pane_cache(&self, pre: &Prefilled, budgets: &[usize], reserve: usize) -> anyhow::Result<(KvCache, Occupancy)> {
        let l = pre.tokens.len();
        let n = self.engine.config().n_layers;
        if budgets.len() != n {
            anyhow::bail!("{} layer budgets given, the model has {n} layers", budgets.len());
        }
        let lim = apply::limits(&self.select, l);
        if let Some(b) = budgets.iter().find(|&&b| b < lim.min || b > lim.max) {
            anyhow::bail!("layer budget {b} is outside [{}, {}]", lim.min, lim.max);
        }
        Ok(apply::prune(pre, budgets, &self.select, reserve)?)
    }

    fn decode_run(
        &mut self,
        run_id: RunId,
        uniform: &[usize],
        custom: &[usize],
        params: &GenParams,
    ) -> anyhow::Result<()> {
        let Some(pre) = self.prefilled.take() else {
            anyhow::bail!("no prompt has been prefilled yet");
        };
        let result = self.decode_panes(run_id, &pre, uniform, custom, params);
        self.prefilled = Some(pre);
        result
    }

    fn decode_panes(
        &mut self,
        run_id: RunId,
        pre: &Prefilled,
        uniform: &[usize],
        custom: &[usize],
        params: &GenParams,
    ) -> anyhow::Result<()> {
        let l = pre.tokens.len();
        let reserve = params.max_new_tokens + 1;
        let full_budgets = vec![l; self.engine.config().n_layers];
        let mut panes = Vec::new();
        for (pane, budgets) in [(Pane::Full, &full_budgets[..]), (Pane::Uniform, uniform), (Pane::Custom, custom)] {
            let (cache, occupancy) = self.pane_cache(pre, budgets, reserve)?;
            self.send(Event::Occupancy { run_id, pane, occupancy });
            panes.push(PaneRun {
                pane,
                kv_bytes: cache.bytes(),
                pruned: cache.clone(),
                decoder: self.engine.decoder(cache, &pre.first_logits, params),
                text_len: 0,
                started: Instant::now(),
                finished: None,
            });
        }
        // Round-robin one token per pane so all three stream together.
        while panes.iter().any(|p| p.finished.is_none()) {
            for p in panes.iter_mut().filter(|p| p.finished.is_none()) {
                match p.decoder.step(&self.engine)? {
                    Some(token_id) => {
                        let text = self.engine.decode(&p.decoder.produced);
                        let piece = text.get(p.text_len..).unwrap_or_default().to_string();
                        p.text_len = text.len();
                        let index = p.decoder.produced.len() - 1;
                        let _ = self.events.send(Event::Token { run_id, pane: p.pane, index, token_id, text: piece });
                    }
                    None => p.finished = Some(p.started.elapsed().as_secs_f64()),
                }
            }
            if self.poll_interrupt() {
                return Ok(());
            }
        }
        // Teacher-forced quality of each pane against the full continuation.
        let full_tokens = panes[0].decoder.produced.clone();
        let full_lp = self.engine.teacher_force(&pre.cache, &pre.first_logits, &full_tokens)?;
        for p in &panes {
            let (kl, top1) = if p.pane == Pane::Full || full_tokens.is_empty() {
                (0.0, 1.0)
            } else {
                let lp = self.engine.teacher_force(&p.pruned, &pre.first_logits, &full_tokens)?;
                let q = scoring::compare(&full_lp, &lp, &full_tokens)?;
                (q.kl, q.top1)
            };
            let secs = p.finished.unwrap_or(0.0).max(1e-9);
            let metrics = PaneMetrics {
                kl_to_full: kl,
                top1_agreement: top1,
                tokens_per_second: p.decoder.produced.len() as f64 / secs,
                kv_bytes: p.kv_bytes,
            };
            self.send(Event::PaneDone { run_id, pane: p.pane, metrics });
            if self.poll_interrupt() {
                return Ok(());
            }
        }
        Ok(())
    }

    fn calibrate(&mut self, run_id: RunId, prompts: Vec<String>, ablation_keep: f64) -> anyhow::Result<()> {
        let items: Vec<PromptItem> = prompts
            .into_iter()
            .enumerate()
            .map(|(i, prompt)| PromptItem {
                id: format!("tui-{i}"),
                prompt,
                reference: None,
                answers: None,
                chat: None,
            })
            .collect();
        let cfg = CalibConfig {
            ablation_keep,
            select: self.select,
            prefill: PrefillOptions { window: self.select.window, ..Default::default() },
            ..Default::default()
        };
        let events = self.events.clone();
        let mut interrupted = false;
        let engine = &self.engine;
        let commands = &self.commands;
        let pending = &mut self.pending;
        let res = calibrate(engine, &items, &cfg, &mut |done, total| {
            let _ = events.send(Event::Progress { job: Job::Calibrate, done, total });
            while let Ok(c) = commands.try_recv() {
                pending.push_back(c);
                interrupted = true;
            }
            !interrupted
        });
        match res {
            Ok(r) => self.send(Event::Calibrated { run_id, sensitivity: r.sensitivity, seconds: r.seconds }),
            Err(super::error::EngineError::Cancelled) if interrupted => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}
