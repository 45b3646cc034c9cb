//! The engine thread: owns the model, takes `Command`s, reports `Event`s.
//!
//! Only the newest request matters: while a run decodes, the thread polls its
//! command queue between tokens; a new run, prompt or cancel stops the
//! current run at once, and queued runs collapse to the latest. Every event
//! of a run carries its id, so clients can drop stragglers.
//!
//! Finished variants are stored per prompt, keyed by what determines their
//! output (layer budgets, scorer, head split, decode-phase eviction, KV
//! precision, sampling). A run
//! replays stored variants and decodes only the rest: dragging one pane's
//! bars re-decodes that pane, not its neighbours.

use super::protocol::{
    to_ranges, Allocation, Command, DecodeOccupancy, EngineHandle, Event, GenParams, Job, Occupancy, PromptSnapshot,
    RunId, Variant, VariantId, VariantMetrics, DECODE_OCCUPANCY_EVERY, EVICT_SLACK,
};
use super::scoring;
use crate::engine::cache::{KvCache, PADDING};
use crate::engine::evict::Evictor;
use crate::engine::{Decoder, Detokenizer, Engine, KvPrecision, LoadOptions, PrefillOptions, Prefilled};
use crate::prune::{apply, HeadSplit, Scorer, SelectConfig};
use candle_core::Tensor;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// Finished variants kept per prompt before the store starts over.
const STORE_LIMIT: usize = 256;

/// Starts the engine thread, loading the model described by `opts`.
pub fn spawn(opts: LoadOptions, select: SelectConfig) -> std::io::Result<EngineHandle> {
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::Builder::new().name("depthkv-engine".into()).spawn(move || {
        let _ = ev_tx.send(Event::Progress { job: Job::LoadModel, done: 0, total: 1 });
        match Engine::load(&opts, &mut |_| {}) {
            Ok(engine) => {
                let _ = ev_tx.send(Event::Progress { job: Job::LoadModel, done: 1, total: 1 });
                serve(engine, select, cmd_rx, ev_tx);
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
    Worker { engine, select, events, commands, pending: VecDeque::new(), prompt: None }.run();
}

/// What makes two variants decode the same tokens on one prompt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct VariantKey {
    budgets: Vec<usize>,
    scorer: Scorer,
    decode_evict: bool,
    precision: KvPrecision,
    /// The head split, as `HeadSplit` (its safeguard's bits for `Ada`).
    heads: Option<u64>,
    params: (usize, u64, Option<u64>, u64),
}

impl VariantKey {
    fn head_split(&self) -> HeadSplit {
        self.heads.map_or(HeadSplit::Even, |bits| HeadSplit::Ada { safeguard: f64::from_bits(bits) })
    }
}

/// A decoded variant, ready to be replayed.
#[derive(Debug, Clone)]
struct Finished {
    occupancy: Occupancy,
    /// The cache while decoding, `(index of the token it follows, occupancy)`.
    decode: Vec<(usize, DecodeOccupancy)>,
    tokens: Vec<(u32, String)>,
    metrics: VariantMetrics,
}

/// The full cache's continuation for one sampling setting, and its
/// log-probabilities (what every variant is scored against).
struct FullReference {
    tokens: Vec<u32>,
    logprobs: Tensor,
}

/// The prefilled prompt and everything decoded from it so far.
struct PromptState {
    pre: Prefilled,
    done: HashMap<VariantKey, Finished>,
    full: HashMap<(usize, u64, Option<u64>, u64), FullReference>,
}

struct Worker {
    engine: Engine,
    select: SelectConfig,
    events: UnboundedSender<Event>,
    commands: Receiver<Command>,
    /// Commands that arrived while a job ran, oldest first.
    pending: VecDeque<Command>,
    prompt: Option<PromptState>,
}

/// One variant being decoded in a run (several client ids may share it).
struct Decoding {
    key: VariantKey,
    ids: Vec<VariantId>,
    decoder: Decoder,
    detok: Detokenizer,
    /// The cache as pruned, before decoding (a cheap clone that shares the
    /// slots); the quality pass teacher-forces from it.
    pruned: KvCache,
    occupancy: Occupancy,
    decode: Vec<(usize, DecodeOccupancy)>,
    tokens: Vec<(u32, String)>,
    started: Instant,
    seconds: Option<f64>,
}

/// How a run ended.
enum Outcome {
    Finished,
    Superseded,
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
                Command::Run { run_id, variants, params } => match self.decode_run(run_id, &variants, &params) {
                    Ok(Outcome::Finished) => self.send(Event::RunDone { run_id }),
                    Ok(Outcome::Superseded) => {}
                    Err(e) => self.error(Some(run_id), e),
                },
                Command::Calibrate { run_id, prompts, ablation_keep } => {
                    if let Err(e) = self.calibrate(run_id, prompts, ablation_keep) {
                        self.error(Some(run_id), e);
                    }
                }
            }
        }
    }

    fn set_prompt(&mut self, text: &str, chat: bool) -> anyhow::Result<()> {
        self.prompt = None;
        let chat = chat && self.engine.codec.has_chat();
        let tokens = self.engine.encode(text, chat)?;
        let events = self.events.clone();
        // H2O's sums cost a pass over every attention matrix (and keep the GPU
        // off its flash kernels); they are recorded on the first run that needs them.
        let opts = self.select.prefill_options();
        let pre = self.engine.prefill_with(&tokens, opts, &mut |done, total| {
            events.send(Event::Progress { job: Job::Prefill, done, total }).is_ok()
        })?;
        self.send(Event::Prefilled(PromptSnapshot {
            pieces: self.engine.codec.pieces(&tokens),
            window_attention: pre.stats.window.clone(),
            prefill_seconds: pre.seconds,
            layer_floors: apply::floors(&self.select, tokens.len(), &pre.kv_ceilings),
            kv_ceilings: pre.kv_ceilings.clone(),
        }));
        self.prompt = Some(PromptState { pre, done: HashMap::new(), full: HashMap::new() });
        Ok(())
    }

    /// Adds H2O's statistic (attention received from every prompt query) to a
    /// prefill made without it: one more pass over the prompt, reported as
    /// prefill progress. The cache and the other statistics stay as they are.
    fn record_h2o_sums(&mut self, pre: &mut Prefilled) -> anyhow::Result<()> {
        let events = self.events.clone();
        let opts = PrefillOptions { accumulated: true, ..self.select.prefill_options() };
        let again = self.engine.prefill_with(&pre.tokens, opts, &mut |done, total| {
            events.send(Event::Progress { job: Job::Prefill, done, total }).is_ok()
        })?;
        pre.stats.accumulated = again.stats.accumulated;
        Ok(())
    }

    /// The key of a variant on the current prompt, its allocation resolved
    /// and checked against the layer limits.
    fn key(&self, pre: &Prefilled, v: &Variant, params: &GenParams) -> anyhow::Result<VariantKey> {
        let n = self.engine.config().n_layers;
        let budgets = match &v.allocation {
            Allocation::Full => pre.kv_ceilings.clone(),
            Allocation::Layers(b) => b.clone(),
            Allocation::Strategy { strategy, budget } => {
                apply::budgets_for_prefill(strategy, *budget, pre, &self.select)
                    .map_err(|e| anyhow::anyhow!("variant {}: {e}", v.id))?
            }
        };
        if budgets.len() != n {
            anyhow::bail!("variant {}: {} layer budgets given, the model has {n} layers", v.id, budgets.len());
        }
        let bounds = apply::bounds(&self.select, pre.tokens.len(), &pre.kv_ceilings);
        if let Err(e) = bounds.check(&budgets) {
            anyhow::bail!("variant {}: {e}", v.id);
        }
        // Keeping everything at full precision does not depend on the scorer.
        let full = v.allocation == Allocation::Full
            || (budgets == pre.kv_ceilings && !v.decode_evict && v.precision == KvPrecision::Native);
        Ok(VariantKey {
            budgets,
            scorer: if full { Scorer::SnapKv } else { v.scorer },
            decode_evict: v.decode_evict && !full,
            precision: if full { KvPrecision::Native } else { v.precision },
            heads: match v.heads {
                HeadSplit::Ada { safeguard } if !full => Some(safeguard.to_bits()),
                _ => None,
            },
            params: params.key(),
        })
    }

    fn decode_run(&mut self, run_id: RunId, variants: &[Variant], params: &GenParams) -> anyhow::Result<Outcome> {
        let Some(mut state) = self.prompt.take() else {
            anyhow::bail!("no prompt has been prefilled yet");
        };
        let result = self.decode_variants(run_id, &mut state, variants, params);
        if state.done.len() > STORE_LIMIT {
            state.done.clear();
        }
        self.prompt = Some(state);
        result
    }

    fn decode_variants(
        &mut self,
        run_id: RunId,
        state: &mut PromptState,
        variants: &[Variant],
        params: &GenParams,
    ) -> anyhow::Result<Outcome> {
        if variants.iter().any(|v| v.scorer == Scorer::H2o) && state.pre.stats.accumulated.is_empty() {
            self.record_h2o_sums(&mut state.pre)?;
        }
        // Group client ids by key: equal variants decode once.
        let mut groups: Vec<(VariantKey, Vec<VariantId>)> = Vec::new();
        for v in variants {
            let key = self.key(&state.pre, v, params)?;
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, ids)) => ids.push(v.id),
                None => groups.push((key, vec![v.id])),
            }
        }
        let pre = &state.pre;
        let full_key = self.key(pre, &Variant::full(0), params)?;
        let reference_known = state.full.contains_key(&params.key());
        let mut decoding = Vec::new();
        for (key, ids) in groups {
            if let (Some(done), true) = (state.done.get(&key), reference_known) {
                self.replay(run_id, &ids, done);
                continue;
            }
            decoding.push(self.start(run_id, pre, key, ids, params)?);
        }
        // The full continuation is the yardstick: decode it (unseen) if no
        // pane asked for it and it is not known yet.
        if !reference_known && !decoding.iter().any(|d| d.key == full_key) {
            decoding.push(self.start(run_id, pre, full_key.clone(), Vec::new(), params)?);
        }
        if let Outcome::Superseded = self.stream(run_id, &mut decoding)? {
            return Ok(Outcome::Superseded);
        }
        if !reference_known {
            let full = decoding.iter().find(|d| d.key == full_key).expect("the full variant is decoding");
            let tokens = full.decoder.produced.clone();
            let logprobs = self.engine.teacher_force(&pre.cache, &pre.first_logits, &tokens)?;
            state.full.insert(params.key(), FullReference { tokens, logprobs });
        }
        let reference = &state.full[&params.key()];
        for d in decoding {
            let metrics = self.metrics(pre, &d, reference)?;
            for &id in &d.ids {
                self.send(Event::VariantDone { run_id, variant: id, metrics });
            }
            let finished = Finished {
                occupancy: d.occupancy,
                decode: d.decode,
                tokens: d.tokens,
                metrics: VariantMetrics { cached: true, ..metrics },
            };
            state.done.insert(d.key, finished);
            if self.poll_interrupt() {
                return Ok(Outcome::Superseded);
            }
        }
        Ok(Outcome::Finished)
    }

    /// Sends a stored variant's events again under this run's id.
    fn replay(&self, run_id: RunId, ids: &[VariantId], done: &Finished) {
        for &variant in ids {
            self.send(Event::Occupancy { run_id, variant, occupancy: done.occupancy.clone() });
            let mut decode = done.decode.iter().peekable();
            for (index, (token_id, text)) in done.tokens.iter().enumerate() {
                self.send(Event::Token { run_id, variant, index, token_id: *token_id, text: text.clone() });
                while let Some((_, occupancy)) = decode.next_if(|(after, _)| *after == index) {
                    self.send(Event::DecodeOccupancy { run_id, variant, occupancy: occupancy.clone() });
                }
            }
            self.send(Event::VariantDone { run_id, variant, metrics: done.metrics });
        }
    }

    /// Prunes the prefill for one variant and starts its decoder.
    fn start(
        &self,
        run_id: RunId,
        pre: &Prefilled,
        key: VariantKey,
        ids: Vec<VariantId>,
        params: &GenParams,
    ) -> anyhow::Result<Decoding> {
        let select = SelectConfig { scorer: key.scorer, heads: key.head_split(), ..self.select };
        let (cache, occupancy) = apply::prune_as(pre, &key.budgets, &select, params.max_new_tokens + 1, key.precision)?;
        for &variant in &ids {
            self.send(Event::Occupancy { run_id, variant, occupancy: occupancy.clone() });
        }
        let pruned = cache.clone();
        let evictor =
            key.decode_evict.then(|| Evictor::new(key.budgets.clone(), select.sinks, select.window, EVICT_SLACK));
        let decoder = self.engine.decoder_with(cache, &pre.first_logits, params, evictor);
        Ok(Decoding {
            key,
            ids,
            decoder,
            detok: Detokenizer::new(),
            pruned,
            occupancy,
            decode: Vec::new(),
            tokens: Vec::new(),
            started: Instant::now(),
            seconds: None,
        })
    }

    /// Decodes every variant, one token each in turn so they stream together.
    fn stream(&mut self, run_id: RunId, decoding: &mut [Decoding]) -> anyhow::Result<Outcome> {
        while decoding.iter().any(|d| d.seconds.is_none()) {
            for d in decoding.iter_mut().filter(|d| d.seconds.is_none()) {
                match d.decoder.step(&self.engine)? {
                    Some(token_id) => {
                        let mut text = d.detok.push(&self.engine.codec, token_id);
                        if d.decoder.is_done() {
                            text.push_str(&d.detok.flush(&self.engine.codec));
                        }
                        let index = d.tokens.len();
                        for &variant in &d.ids {
                            self.send(Event::Token { run_id, variant, index, token_id, text: text.clone() });
                        }
                        d.tokens.push((token_id, text));
                        if d.tokens.len() % DECODE_OCCUPANCY_EVERY == 0 || d.decoder.is_done() {
                            let occupancy = decode_occupancy(&d.decoder.cache, d.tokens.len());
                            for &variant in &d.ids {
                                self.send(Event::DecodeOccupancy { run_id, variant, occupancy: occupancy.clone() });
                            }
                            d.decode.push((index, occupancy));
                        }
                    }
                    None => d.seconds = Some(d.started.elapsed().as_secs_f64()),
                }
            }
            if self.poll_interrupt() {
                return Ok(Outcome::Superseded);
            }
        }
        Ok(Outcome::Finished)
    }

    /// Teacher-forced quality of a decoded variant against the reference.
    fn metrics(&self, pre: &Prefilled, d: &Decoding, reference: &FullReference) -> anyhow::Result<VariantMetrics> {
        let keeps_all =
            d.key.budgets == pre.kv_ceilings && !d.key.decode_evict && d.key.precision == KvPrecision::Native;
        let (kl, top1) = if keeps_all || reference.tokens.is_empty() {
            (0.0, 1.0)
        } else {
            let lp = self.engine.teacher_force(&d.pruned, &pre.first_logits, &reference.tokens)?;
            let q = scoring::compare(&reference.logprobs, &lp, &reference.tokens)?;
            (q.kl, q.top1)
        };
        let secs = d.seconds.unwrap_or(0.0).max(1e-9);
        Ok(VariantMetrics {
            kl_to_full: kl,
            top1_agreement: top1,
            tokens_per_second: d.tokens.len() as f64 / secs,
            kv_bytes: d.pruned.bytes(),
            cached: false,
        })
    }

    fn calibrate(&mut self, run_id: RunId, prompts: Vec<String>, ablation_keep: f64) -> anyhow::Result<()> {
        use super::calibrate::{calibrate, CalibConfig};
        let specs: Vec<_> =
            prompts.iter().map(|text| scoring::PromptSpec { text, chat: true, reference: None }).collect();
        let cfg = CalibConfig {
            ablation_keep,
            select: self.select,
            prefill: self.select.prefill_options(),
            ..Default::default()
        };
        let events = self.events.clone();
        let mut interrupted = false;
        let engine = &self.engine;
        let commands = &self.commands;
        let pending = &mut self.pending;
        let res = calibrate(engine, &specs, &cfg, &mut |done, total| {
            let _ = events.send(Event::Progress { job: Job::Calibrate, done, total });
            while let Ok(c) = commands.try_recv() {
                pending.push_back(c);
                interrupted = true;
            }
            !interrupted
        });
        match res {
            Ok(r) => self.send(Event::Calibrated { run_id, sensitivity: r.sensitivity, seconds: r.seconds }),
            Err(crate::engine::error::EngineError::Cancelled) if interrupted => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

/// What a decoding cache holds, as ranges per layer and KV head (padding
/// slots left out): its size follows the runs of held positions, never the
/// cache's tensors.
fn decode_occupancy(cache: &KvCache, step: usize) -> DecodeOccupancy {
    let held = cache
        .layers()
        .iter()
        .map(|layer| {
            (0..layer.kv_heads())
                .map(|h| {
                    let mut pos: Vec<u32> = layer.positions(h).iter().copied().filter(|&p| p != PADDING).collect();
                    pos.sort_unstable();
                    pos.dedup();
                    to_ranges(pos)
                })
                .collect()
        })
        .collect();
    DecodeOccupancy { step, positions: cache.next_pos(), held }
}
