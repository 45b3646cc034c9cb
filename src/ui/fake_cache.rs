//! The fake engine's KV cache: what a variant keeps of the synthetic prompt
//! (per KV head, evenly or AdaKV-style), and what it holds as decoding
//! proceeds, with decode-phase eviction modelled on the engine's (sinks and
//! the recent window protected, the best-scoring rest kept, eviction in
//! batches of [`EVICT_SLACK`]). Deterministic, so the UI's tests can pin it.

use crate::prune::{select_layer_split, HeadSplit, LayerStats, SelectConfig};
use crate::session::protocol::{
    to_ranges, DecodeOccupancy, Event, Occupancy, PromptSnapshot, RunId, VariantId, DECODE_OCCUPANCY_EVERY, EVICT_SLACK,
};

use super::fake::{occupancy, token_events, Demo, Harness, Rng};

/// What the selector keeps under `heads`: the even split as [`occupancy`]
/// does it, the `ada` split by the real head-sharing policy on the synthetic
/// attention.
pub fn occupancy_split(snap: &PromptSnapshot, budgets: &[usize], heads: HeadSplit) -> Occupancy {
    if heads == HeadSplit::Even {
        return occupancy(snap, budgets);
    }
    let len = snap.pieces.len();
    let cfg = SelectConfig { heads, kernel: 1, ..SelectConfig::default() };
    let kept = snap
        .window_attention
        .iter()
        .zip(budgets)
        .map(|(att, &b)| {
            let stats = LayerStats { window_attention: att, accumulated: att, key_norms: att };
            select_layer_split(&cfg, &stats, len, b)
        })
        .collect();
    Occupancy { prompt_len: len, kept }
}

/// A slot's eviction score: the prompt's synthetic attention, or a
/// deterministic draw for a generated token.
fn score(snap: &PromptSnapshot, layer: usize, head: usize, pos: u32) -> f32 {
    let prompt = snap.window_attention.get(layer).and_then(|h| h.get(head)).and_then(|a| a.get(pos as usize));
    match prompt {
        Some(&v) => v,
        None => Rng::new(((layer as u64) << 40) ^ ((head as u64) << 32) ^ pos as u64).f32() * 0.8,
    }
}

/// One head's slots cut back to `keep`: the first `sinks` positions and the
/// `window` most recent slots stay, then the best scores.
fn evict(held: &mut Vec<u32>, keep: usize, sinks: u32, window: usize, score: impl Fn(u32) -> f32) {
    let recent = held.len().saturating_sub(window);
    // `(slot, position)` pairs: protected ones, and the rest to rank.
    type Slots = Vec<(usize, u32)>;
    let (mut kept, mut rest): (Slots, Slots) =
        held.iter().copied().enumerate().partition(|&(slot, p)| slot >= recent || p < sinks);
    rest.sort_by(|a, b| score(b.1).total_cmp(&score(a.1)).then(a.0.cmp(&b.0)));
    kept.extend(rest.into_iter().take(keep.saturating_sub(kept.len())));
    kept.sort_unstable();
    *held = kept.into_iter().map(|(_, p)| p).collect();
}

/// The cache after each reported step of a `tokens`-token decode from
/// `start` (reports every [`DECODE_OCCUPANCY_EVERY`] tokens and after the
/// last; the last token is not fed back, as in the engine).
pub fn decode_reports(
    snap: &PromptSnapshot,
    start: &Occupancy,
    budgets: &[usize],
    decode_evict: bool,
    tokens: usize,
) -> Vec<DecodeOccupancy> {
    let sel = SelectConfig::default();
    let len = start.prompt_len;
    let mut held: Vec<Vec<Vec<u32>>> = start.kept.clone();
    let mut out = Vec::new();
    for step in 1..=tokens {
        let fed = if step < tokens { step } else { step - 1 };
        if fed == step {
            let pos = (len + step - 1) as u32;
            for (l, heads) in held.iter_mut().enumerate() {
                let cap = budgets.get(l).copied().unwrap_or(len).max(sel.window + 1);
                for (h, slots) in heads.iter_mut().enumerate() {
                    slots.push(pos);
                    if decode_evict && slots.len() >= cap + EVICT_SLACK {
                        evict(slots, cap, sel.sinks as u32, sel.window, |p| score(snap, l, h, p));
                    }
                }
            }
        }
        if step % DECODE_OCCUPANCY_EVERY == 0 || step == tokens {
            let ranges = held.iter().map(|heads| heads.iter().map(|s| to_ranges(s.iter().copied())).collect());
            out.push(DecodeOccupancy { step, positions: len + fed, held: ranges.collect() });
        }
    }
    out
}

/// Token events with each decode report placed right after its token.
pub fn with_reports(
    run_id: RunId,
    variant: VariantId,
    tokens: Vec<Event>,
    reports: Vec<DecodeOccupancy>,
) -> Vec<Event> {
    let mut reports = reports.into_iter().peekable();
    let mut out = Vec::with_capacity(tokens.len() + reports.len());
    for (i, t) in tokens.into_iter().enumerate() {
        out.push(t);
        while let Some(occupancy) = reports.next_if(|r| r.step == i + 1) {
            out.push(Event::DecodeOccupancy { run_id, variant, occupancy });
        }
    }
    out
}

/// Streams the harness's last run as the fake engine would, every variant
/// with its own head split and eviction: its occupancy, its first `tokens`
/// demo tokens and the decode reports between them.
pub fn stream_last_run(h: &mut Harness, tokens: usize) {
    let run = h.engine.last_run().expect("a run was sent");
    let snap = h.app.prompt.clone().expect("a prefilled prompt");
    for v in &run.variants {
        let layers = run.layers(v.id).unwrap_or_else(|| snap.kv_ceilings.clone());
        let start = occupancy_split(&snap, &layers, v.heads);
        let toks = token_events(run.run_id, v.id, Demo::of(v).text(), 0..tokens);
        let reports = decode_reports(&snap, &start, &layers, v.decode_evict, toks.len());
        h.emit(Event::Occupancy { run_id: run.run_id, variant: v.id, occupancy: start });
        h.emit_all(with_reports(run.run_id, v.id, toks, reports));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fake::{snapshot, split_words, DEMO_PROMPT};

    #[test]
    fn eviction_keeps_every_head_near_its_budget_and_the_sinks() {
        let snap = snapshot(split_words(DEMO_PROMPT), 4, 2);
        let budgets = vec![60; 4];
        let start = occupancy(&snap, &budgets);
        let len = snap.pieces.len();
        let evicting = decode_reports(&snap, &start, &budgets, true, 50);
        let plain = decode_reports(&snap, &start, &budgets, false, 50);
        assert_eq!(
            evicting.iter().map(|r| r.step).collect::<Vec<_>>(),
            (1..=12).map(|k| 4 * k).chain([50]).collect::<Vec<_>>()
        );
        let last = evicting.last().unwrap();
        assert_eq!(last.positions, len + 49, "the last token is not fed back");
        for heads in &last.held {
            for r in heads {
                let n: usize = r.iter().map(|(s, e)| (e - s) as usize).sum();
                assert!(n < 60 + EVICT_SLACK, "{n} slots held");
                assert_eq!(r[0].0, 0, "sinks kept");
                assert_eq!(r.last().unwrap().1 as usize, len + 49, "the newest token kept");
            }
        }
        let plain_last = plain.last().unwrap();
        assert!(plain_last
            .held
            .iter()
            .flatten()
            .all(|r| r.iter().map(|(s, e)| (e - s) as usize).sum::<usize>() == 60 + 49));
    }

    #[test]
    fn ada_split_is_uneven_and_exact() {
        let snap = snapshot(split_words(DEMO_PROMPT), 6, 2);
        let budgets = vec![80; 6];
        let occ = occupancy_split(&snap, &budgets, HeadSplit::Ada { safeguard: 0.2 });
        for kept in &occ.kept {
            assert_eq!(kept.iter().map(Vec::len).sum::<usize>(), 2 * 80);
        }
        assert!(occ.kept.iter().any(|k| k[0].len() != k[1].len()), "synthetic heads attend differently");
    }
}
