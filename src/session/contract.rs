//! What every implementation of the protocol owes its clients, written as
//! checks over an [`EngineHandle`]. The real session and the UI's fake engine
//! are both held to them (tests/it/contract.rs), so the UI's tests exercise
//! the behaviour the real engine has.
//!
//! Each check drives the handle through a scenario and returns a readable
//! violation instead of panicking, so a test can name the implementation.

use super::protocol::{
    held_in, Allocation, Command, DecodeOccupancy, EngineHandle, Event, GenParams, Occupancy, RunId, Variant,
    VariantId, EVICT_SLACK,
};
use crate::engine::ModelInfo;
use crate::prune::{HeadSplit, Scorer, ADA_SAFEGUARD};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a check waits for the next event before calling the engine stuck.
const PATIENCE: Duration = Duration::from_secs(300);

pub type Verdict = Result<(), String>;

/// The events of one run, per variant, as a client sees them.
#[derive(Debug, Default, Clone)]
pub struct RunTrace {
    pub tokens: BTreeMap<VariantId, Vec<u32>>,
    pub text: BTreeMap<VariantId, String>,
    pub cached: BTreeMap<VariantId, bool>,
    pub kl: BTreeMap<VariantId, f64>,
    pub occupancy: BTreeMap<VariantId, Occupancy>,
    /// The cache while decoding, in the order reported.
    pub decode: BTreeMap<VariantId, Vec<DecodeOccupancy>>,
}

/// A client of the protocol under test.
pub struct Client {
    handle: EngineHandle,
    pub info: Option<ModelInfo>,
    pub prompt_len: usize,
    /// Fewest and most tokens each layer can keep, from the snapshot.
    pub layer_floors: Vec<usize>,
    pub kv_ceilings: Vec<usize>,
    next_run: RunId,
}

fn next_event(handle: &mut EngineHandle) -> Result<Event, String> {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        match handle.events.try_recv() {
            Ok(e) => return Ok(e),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return Err("the engine hung up".into()),
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                if std::time::Instant::now() > deadline {
                    return Err(format!("no event for {PATIENCE:?}"));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

impl Client {
    /// Waits for `Loaded` (progress events may come first).
    pub fn connect(mut handle: EngineHandle) -> Result<Self, String> {
        loop {
            match next_event(&mut handle)? {
                Event::Loaded(info) => {
                    return Ok(Client {
                        handle,
                        info: Some(info),
                        prompt_len: 0,
                        layer_floors: Vec::new(),
                        kv_ceilings: Vec::new(),
                        next_run: 1,
                    })
                }
                Event::Progress { .. } => {}
                other => return Err(format!("expected Loaded first, got {other:?}")),
            }
        }
    }

    pub fn n_layers(&self) -> usize {
        self.info.as_ref().map_or(0, |i| i.n_layers)
    }

    fn send(&self, c: Command) -> Verdict {
        self.handle.commands.send(c).map_err(|_| "the engine stopped taking commands".to_string())
    }

    /// Prefills a prompt; checks the snapshot's shape.
    pub fn set_prompt(&mut self, text: &str) -> Verdict {
        self.send(Command::SetPrompt { text: text.into(), chat: true })?;
        loop {
            match next_event(&mut self.handle)? {
                Event::Progress { .. } => {}
                Event::Prefilled(s) => {
                    let n = self.n_layers();
                    if s.pieces.is_empty() {
                        return Err("Prefilled with no prompt pieces".into());
                    }
                    if s.window_attention.len() != n {
                        return Err(format!("window attention for {} layers, model has {n}", s.window_attention.len()));
                    }
                    if s.kv_ceilings.len() != n || s.kv_ceilings.iter().any(|&c| c == 0 || c > s.pieces.len()) {
                        return Err(format!(
                            "kv_ceilings {:?} for {n} layers and a {}-token prompt",
                            s.kv_ceilings,
                            s.pieces.len()
                        ));
                    }
                    let floors_fit = s.layer_floors.iter().zip(&s.kv_ceilings).all(|(&f, &c)| (1..=c).contains(&f));
                    if s.layer_floors.len() != n || !floors_fit {
                        return Err(format!("layer_floors {:?} for ceilings {:?}", s.layer_floors, s.kv_ceilings));
                    }
                    self.prompt_len = s.pieces.len();
                    self.layer_floors = s.layer_floors;
                    self.kv_ceilings = s.kv_ceilings;
                    return Ok(());
                }
                other => return Err(format!("expected Prefilled, got {other:?}")),
            }
        }
    }

    /// Uniform budgets that keep `keep` of the prompt in every layer.
    /// (a sliding-window layer: `keep` of its window).
    pub fn uniform(&self, keep: f64) -> Vec<usize> {
        let b = |f: usize, c: usize| ((c as f64 * keep).round() as usize).clamp(f, c);
        self.layer_floors.iter().zip(&self.kv_ceilings).map(|(&f, &c)| b(f, c)).collect()
    }

    /// Sends a run and returns its id.
    pub fn start(&mut self, variants: Vec<Variant>, params: &GenParams) -> Result<RunId, String> {
        let run_id = self.next_run;
        self.next_run += 1;
        self.send(Command::Run { run_id, variants, params: params.clone() })?;
        Ok(run_id)
    }

    /// Follows run `run_id` to its `RunDone`, checking the order of events per
    /// variant. Events of older runs are skipped; events of the run after a
    /// variant's `VariantDone`, or tokens before its `Occupancy`, are
    /// violations. Each decode occupancy must follow its token, hold only
    /// positions the cache has seen and, of the prompt, only what the
    /// variant kept at the start; the last one follows the last token.
    pub fn follow(&mut self, run_id: RunId, variants: &[VariantId]) -> Result<RunTrace, String> {
        let mut trace = RunTrace::default();
        let mut started = false;
        loop {
            let e = next_event(&mut self.handle)?;
            let (rid, variant) = match &e {
                Event::Occupancy { run_id, variant, .. }
                | Event::DecodeOccupancy { run_id, variant, .. }
                | Event::Token { run_id, variant, .. }
                | Event::VariantDone { run_id, variant, .. } => (*run_id, Some(*variant)),
                Event::RunDone { run_id } => (*run_id, None),
                Event::Error { message, .. } => return Err(format!("engine error: {message}")),
                _ => continue,
            };
            if rid < run_id {
                if started {
                    return Err(format!("event of superseded run {rid} after run {run_id} began: {e:?}"));
                }
                continue;
            }
            started = true;
            if rid > run_id {
                return Err(format!("event of run {rid} while following run {run_id}"));
            }
            if let Some(v) = variant {
                if !variants.contains(&v) {
                    return Err(format!("event for variant {v}, which run {run_id} did not ask for"));
                }
                if trace.cached.contains_key(&v) {
                    return Err(format!("variant {v}: {e:?} after its VariantDone"));
                }
            }
            match e {
                Event::Occupancy { variant, occupancy, .. } => {
                    if occupancy.kept.len() != self.n_layers() || occupancy.prompt_len != self.prompt_len {
                        return Err(format!("variant {variant}: occupancy of the wrong shape"));
                    }
                    trace.occupancy.insert(variant, occupancy);
                }
                Event::DecodeOccupancy { variant, occupancy, .. } => {
                    let tokens = trace.tokens.get(&variant).map_or(0, Vec::len);
                    let start =
                        trace.occupancy.get(&variant).ok_or(format!("variant {variant}: cache before Occupancy"))?;
                    self.check_decode_step(
                        start,
                        &occupancy,
                        tokens,
                        trace.decode.get(&variant).and_then(|d| d.last()),
                    )
                    .map_err(|e| format!("variant {variant}: {e}"))?;
                    trace.decode.entry(variant).or_default().push(occupancy);
                }
                Event::Token { variant, index, token_id, text, .. } => {
                    if !trace.occupancy.contains_key(&variant) {
                        return Err(format!("variant {variant}: a token before its Occupancy"));
                    }
                    let tokens = trace.tokens.entry(variant).or_default();
                    if index != tokens.len() {
                        return Err(format!("variant {variant}: token index {index}, expected {}", tokens.len()));
                    }
                    tokens.push(token_id);
                    trace.text.entry(variant).or_default().push_str(&text);
                }
                Event::VariantDone { variant, metrics, .. } => {
                    if !(metrics.kl_to_full >= 0.0 && (0.0..=1.0).contains(&metrics.top1_agreement)) {
                        return Err(format!("variant {variant}: metrics out of range {metrics:?}"));
                    }
                    let tokens = trace.tokens.get(&variant).map_or(0, Vec::len);
                    let last = trace.decode.get(&variant).and_then(|d| d.last()).map_or(0, |d| d.step);
                    if tokens > 0 && last != tokens {
                        return Err(format!("variant {variant}: {tokens} tokens, the last cache report after {last}"));
                    }
                    trace.cached.insert(variant, metrics.cached);
                    trace.kl.insert(variant, metrics.kl_to_full);
                }
                Event::RunDone { .. } => {
                    if let Some(v) = variants.iter().find(|v| !trace.cached.contains_key(v)) {
                        return Err(format!("RunDone before variant {v} was done"));
                    }
                    return Ok(trace);
                }
                _ => unreachable!("filtered above"),
            }
        }
    }

    /// One decode occupancy, arriving after `tokens` tokens, against the
    /// variant's pruned prompt (`start`) and its previous report.
    fn check_decode_step(
        &self,
        start: &Occupancy,
        d: &DecodeOccupancy,
        tokens: usize,
        previous: Option<&DecodeOccupancy>,
    ) -> Verdict {
        if d.step != tokens || d.step == 0 {
            return Err(format!("cache reported at step {} after {tokens} tokens", d.step));
        }
        if let Some(p) = previous.filter(|p| p.step >= d.step || p.positions > d.positions) {
            return Err(format!("cache reports go back: step {} then {}", p.step, d.step));
        }
        let fed = d.positions.checked_sub(self.prompt_len).unwrap_or(usize::MAX);
        if fed > d.step || fed + 1 < d.step {
            return Err(format!(
                "{} positions after {} tokens of a {}-token prompt",
                d.positions, d.step, self.prompt_len
            ));
        }
        if d.held.len() != self.n_layers() {
            return Err(format!("cache of {} layers", d.held.len()));
        }
        let prompt = self.prompt_len as u32;
        for (l, (heads, kept)) in d.held.iter().zip(&start.kept).enumerate() {
            if heads.len() != kept.len() {
                return Err(format!("layer {l}: {} KV heads while decoding, {} at the start", heads.len(), kept.len()));
            }
            for (h, (ranges, kept)) in heads.iter().zip(kept).enumerate() {
                let ordered = ranges.windows(2).all(|w| w[0].1 < w[1].0) && ranges.iter().all(|r| r.0 < r.1);
                if !ordered || ranges.last().is_some_and(|r| r.1 as usize > d.positions) {
                    return Err(format!("layer {l} head {h}: malformed ranges {ranges:?}"));
                }
                let from_prompt = held_in(ranges, 0, prompt);
                let still_kept = kept.iter().filter(|&&p| held_in(ranges, p, p + 1) == 1).count();
                if still_kept != from_prompt {
                    return Err(format!("layer {l} head {h}: holds prompt positions it had not kept"));
                }
            }
        }
        Ok(())
    }

    /// Waits for an `Error` naming run `run_id`.
    pub fn expect_error(&mut self, run_id: RunId) -> Verdict {
        loop {
            match next_event(&mut self.handle)? {
                Event::Error { run_id: Some(r), .. } if r == run_id => return Ok(()),
                Event::RunDone { run_id: r } if r == run_id => {
                    return Err(format!("run {run_id} finished instead of failing"))
                }
                _ => {}
            }
        }
    }

    pub fn shutdown(self) {
        let _ = self.handle.commands.send(Command::Shutdown);
    }
}

/// Three variants: the full cache, uniform at 60%, and a lopsided split of
/// the same total (half the layers at the minimum, the rest above uniform).
pub fn three_variants(c: &Client) -> Vec<Variant> {
    let uniform = c.uniform(0.6);
    let n = uniform.len();
    let mut lopsided = uniform.clone();
    let mut spare = 0;
    for (b, &floor) in lopsided.iter_mut().zip(&c.layer_floors).take(n / 2) {
        spare += *b - floor;
        *b = floor;
    }
    let upper = n - n / 2;
    for (i, (b, &ceiling)) in lopsided.iter_mut().zip(&c.kv_ceilings).skip(n / 2).enumerate() {
        let share = spare / upper + usize::from(i < spare % upper);
        *b = (*b + share).min(ceiling);
    }
    vec![Variant::full(0), Variant::layers(1, uniform, Scorer::SnapKv), Variant::layers(2, lopsided, Scorer::H2o)]
}

/// A run delivers, per variant, an occupancy, tokens in order and a
/// `VariantDone`, then `RunDone`; the full cache scores KL 0 against itself.
pub fn run_streams_every_variant(c: &mut Client, params: &GenParams) -> Verdict {
    let variants = three_variants(c);
    let ids: Vec<_> = variants.iter().map(|v| v.id).collect();
    let run = c.start(variants, params)?;
    let t = c.follow(run, &ids)?;
    if t.kl.get(&0).copied() != Some(0.0) {
        return Err(format!("the full variant scored KL {:?} against itself", t.kl.get(&0)));
    }
    for id in ids {
        let n = t.tokens.get(&id).map_or(0, Vec::len);
        if n == 0 || n > params.max_new_tokens {
            return Err(format!("variant {id}: {n} tokens for max_new_tokens {}", params.max_new_tokens));
        }
    }
    Ok(())
}

/// Running the same variants again replays them (same tokens, `cached`);
/// changing one variant's budgets re-decodes only that one.
pub fn rerun_decodes_only_what_changed(c: &mut Client, params: &GenParams) -> Verdict {
    let variants = three_variants(c);
    let ids: Vec<_> = variants.iter().map(|v| v.id).collect();
    let run = c.start(variants.clone(), params)?;
    let first = c.follow(run, &ids)?;
    let run = c.start(variants.clone(), params)?;
    let again = c.follow(run, &ids)?;
    if again.tokens != first.tokens {
        return Err("a replayed run produced other tokens".into());
    }
    if let Some(id) = ids.iter().find(|id| again.cached.get(id) != Some(&true)) {
        return Err(format!("variant {id} was decoded again although nothing changed"));
    }
    let mut changed = variants;
    let Allocation::Layers(b) = &mut changed[1].allocation else { unreachable!("variant 1 has layer budgets") };
    let max = c.prompt_len;
    let from = b.iter().enumerate().position(|(i, &x)| x > c.layer_floors[i]);
    let to = from.and_then(|f| b.iter().enumerate().position(|(i, &x)| i != f && x < c.kv_ceilings[i]));
    let (Some(from), Some(to)) = (from, to) else {
        return Err(format!("no budget could move: prompt of {max} tokens, floors {:?}", c.layer_floors));
    };
    b[from] -= 1;
    b[to] += 1;
    let run = c.start(changed, params)?;
    let third = c.follow(run, &ids)?;
    let expect = [(0, true), (1, false), (2, true)];
    for (id, cached) in expect {
        if third.cached.get(&id) != Some(&cached) {
            return Err(format!("after changing variant 1, variant {id} cached = {:?}", third.cached.get(&id)));
        }
    }
    Ok(())
}

/// A run sent while another decodes supersedes it: the newest run finishes
/// and nothing of the older one arrives after the newest run's first event.
pub fn newest_run_wins(c: &mut Client, params: &GenParams) -> Verdict {
    let variants = three_variants(c);
    let ids: Vec<_> = variants.iter().map(|v| v.id).collect();
    let mut long = params.clone();
    long.max_new_tokens += 7; // not in the store: must decode
    c.start(variants.clone(), &long)?;
    let newest = c.start(variants, params)?;
    c.follow(newest, &ids).map(|_| ())
}

/// Budgets that break the layer limits (or a layer's ceiling) are refused
/// with an error for the run.
pub fn bad_budgets_are_refused(c: &mut Client, params: &GenParams) -> Verdict {
    let mut b = c.uniform(0.3);
    b[0] = c.prompt_len + 1;
    let run = c.start(vec![Variant::layers(5, b, Scorer::SnapKv)], params)?;
    c.expect_error(run)?;
    // A sliding-window layer holds no more than its window.
    if let Some(i) = c.kv_ceilings.iter().position(|&k| k < c.prompt_len) {
        let mut b = c.uniform(0.3);
        b[i] = c.kv_ceilings[i] + 1;
        let run = c.start(vec![Variant::layers(7, b, Scorer::SnapKv)], params)?;
        c.expect_error(run)?;
    }
    let short = vec![Variant::layers(6, vec![c.prompt_len; c.n_layers().saturating_sub(1)], Scorer::SnapKv)];
    let run = c.start(short, params)?;
    c.expect_error(run)
}

/// Held counts of one decode report: `(prompt, generated)` per layer and head.
fn split_counts(d: &DecodeOccupancy, prompt_len: usize) -> Vec<Vec<(usize, usize)>> {
    let (p, end) = (prompt_len as u32, d.positions as u32);
    d.held.iter().map(|heads| heads.iter().map(|r| (held_in(r, 0, p), held_in(r, p, end))).collect()).collect()
}

/// The cache while decoding, variant by variant on one prompt: the full
/// cache holds every position it has seen; a pruned variant without
/// eviction holds its budget of the prompt and every generated token; with
/// decode-phase eviction no KV head runs more than [`EVICT_SLACK`] past its
/// layer's budget; an `ada` head split shares each layer's budget unevenly
/// (so it cannot be served the even variant's decode). Replaying the run
/// reports the same caches. `params` must generate more than
/// `EVICT_SLACK + 1` tokens on `prompt`, or eviction is not tested.
pub fn decode_reports_follow_the_budgets(c: &mut Client, prompt: &str, params: &GenParams) -> Verdict {
    c.set_prompt(prompt)?;
    let budgets = c.uniform(0.6);
    let plain = Variant::layers(1, budgets.clone(), Scorer::SnapKv);
    let evict = Variant { id: 2, decode_evict: true, ..plain.clone() };
    let ada = Variant { id: 3, heads: HeadSplit::Ada { safeguard: ADA_SAFEGUARD }, ..plain.clone() };
    let variants = vec![Variant::full(0), plain, evict, ada];
    let ids: Vec<_> = variants.iter().map(|v| v.id).collect();
    let run = c.start(variants.clone(), params)?;
    let t = c.follow(run, &ids)?;
    let reports =
        |id: VariantId| t.decode.get(&id).filter(|d| !d.is_empty()).ok_or(format!("variant {id}: no cache reports"));
    for d in reports(0)? {
        for (l, heads) in split_counts(d, c.prompt_len).iter().enumerate() {
            let want = (c.kv_ceilings[l], d.positions - c.prompt_len);
            if let Some(h) = heads.iter().position(|&n| n != want) {
                return Err(format!(
                    "full cache, step {}: layer {l} head {h} holds {:?}, not {want:?}",
                    d.step, heads[h]
                ));
            }
        }
    }
    for d in reports(1)? {
        for (l, heads) in split_counts(d, c.prompt_len).iter().enumerate() {
            let want = (budgets[l], d.positions - c.prompt_len);
            if let Some(h) = heads.iter().position(|&n| n != want) {
                return Err(format!(
                    "no eviction, step {}: layer {l} head {h} holds {:?}, not {want:?}",
                    d.step, heads[h]
                ));
            }
        }
    }
    let evicting = reports(2)?;
    for d in evicting {
        for (l, heads) in split_counts(d, c.prompt_len).iter().enumerate() {
            if let Some(h) = heads.iter().position(|&(p, g)| p + g > budgets[l] + EVICT_SLACK) {
                return Err(format!(
                    "eviction, step {}: layer {l} head {h} holds {:?} with budget {}",
                    d.step, heads[h], budgets[l]
                ));
            }
        }
    }
    let generated = evicting.last().map_or(0, |d| d.positions - c.prompt_len);
    if generated <= EVICT_SLACK {
        return Err(format!("only {generated} tokens fed back: too few for eviction to be needed"));
    }
    let heads = c.info.as_ref().map_or(0, |i| i.n_kv_heads);
    let start = t.occupancy.get(&3).ok_or("variant 3: no occupancy")?;
    let mut uneven = 0;
    for (l, kept) in start.kept.iter().enumerate() {
        let counts: Vec<usize> = kept.iter().map(Vec::len).collect();
        if counts.iter().sum::<usize>() != heads * budgets[l] {
            return Err(format!("ada split: layer {l} heads keep {counts:?}, budget {} × {heads} heads", budgets[l]));
        }
        uneven += usize::from(counts.iter().any(|&n| n != counts[0]));
    }
    if uneven == 0 {
        return Err("ada split: every layer's heads keep the same count (served the even variant?)".into());
    }
    let run = c.start(variants, params)?;
    let again = c.follow(run, &ids)?;
    if again.decode != t.decode || ids.iter().any(|id| again.cached.get(id) != Some(&true)) {
        return Err("a replayed run reported other caches while decoding".into());
    }
    Ok(())
}

/// Every check in order on one client (one prefill).
pub fn check_all(c: &mut Client, prompt: &str, params: &GenParams) -> Verdict {
    c.set_prompt(prompt)?;
    run_streams_every_variant(c, params).map_err(|e| format!("run_streams_every_variant: {e}"))?;
    rerun_decodes_only_what_changed(c, params).map_err(|e| format!("rerun_decodes_only_what_changed: {e}"))?;
    newest_run_wins(c, params).map_err(|e| format!("newest_run_wins: {e}"))?;
    bad_budgets_are_refused(c, params).map_err(|e| format!("bad_budgets_are_refused: {e}"))
}
