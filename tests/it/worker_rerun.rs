//! The engine thread on the real default model: a budget change supersedes
//! the run in flight, and the new run's tokens equal a direct headless run.

use crate::common;

use depthkv::engine::PrefillOptions;
use depthkv::prune::Scorer;
use depthkv::prune::{apply, SelectConfig, Strategy, PYRAMID_BETA};
use depthkv::session::protocol::{Command, Event, GenParams, Job, Variant};
use depthkv::session::worker;

const PROMPT: &str = "The lighthouse keeper on the island of Varn kept a log. On Monday the fog was thick, \
on Tuesday a ship named Halcyon passed at noon, and on Wednesday the keeper painted the rail green. \
Question: what was the name of the ship?";

#[test]
fn rerun_streams_under_newest_id_and_matches_headless() {
    let engine = common::owned_engine();
    let select = SelectConfig::default();
    let tokens = engine.encode(PROMPT, true).unwrap();
    let l = tokens.len();
    let n = engine.config().n_layers;
    let uniform = apply::budgets_for(&Strategy::Uniform, 0.4, l, n, &select).unwrap();
    let first = apply::budgets_for(&Strategy::Pyramid { beta: PYRAMID_BETA }, 0.4, l, n, &select).unwrap();
    let mut second = uniform.clone();
    second[0] = l;
    second[n - 1] = second[n - 1] - (l - uniform[0]).min(second[n - 1] - apply::limits(&select, l).min);
    let params = GenParams { max_new_tokens: 12, ..Default::default() };

    // Direct headless reference for the second allocation.
    let pre = engine.prefill(&tokens, PrefillOptions::default()).unwrap();
    let (cache, _) = apply::prune(&pre, &second, &select, 13).unwrap();
    let expected = engine.generate(cache, &pre.first_logits, &params, &mut |_| true).unwrap();

    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let thread = std::thread::spawn(move || worker::serve(engine, select, cmd_rx, ev_tx));
    cmd_tx.send(Command::SetPrompt { text: PROMPT.into(), chat: true }).unwrap();
    loop {
        match ev_rx.blocking_recv().expect("engine stopped") {
            Event::Prefilled(p) => {
                assert_eq!(p.pieces.len(), l);
                break;
            }
            Event::Error { message, .. } => panic!("{message}"),
            _ => {}
        }
    }
    let variants = |custom: Vec<usize>| {
        vec![
            Variant::full(0),
            Variant::layers(1, uniform.clone(), Scorer::SnapKv),
            Variant::layers(2, custom, Scorer::SnapKv),
        ]
    };
    cmd_tx.send(Command::Run { run_id: 1, variants: variants(first), params: params.clone() }).unwrap();
    // Let run 1 start streaming, then change the budgets.
    loop {
        if let Event::Token { run_id: 1, .. } = ev_rx.blocking_recv().unwrap() {
            break;
        }
    }
    cmd_tx.send(Command::Run { run_id: 2, variants: variants(second.clone()), params }).unwrap();

    let mut custom_tokens = Vec::new();
    let mut done = 0;
    let mut seen_run2 = false;
    while done < 3 {
        match ev_rx.blocking_recv().expect("engine stopped") {
            Event::Token { run_id, variant, token_id, .. } => {
                if run_id == 1 {
                    assert!(!seen_run2, "a token of the superseded run arrived after the new run began");
                    continue;
                }
                seen_run2 = true;
                assert_eq!(run_id, 2);
                if variant == 2 {
                    custom_tokens.push(token_id);
                }
            }
            Event::Occupancy { run_id: 2, variant: 2, occupancy } => {
                seen_run2 = true;
                let kept: Vec<usize> = occupancy.kept.iter().map(|heads| heads[0].len()).collect();
                assert_eq!(kept, second);
            }
            Event::VariantDone { run_id: 2, variant, metrics } => {
                done += 1;
                assert!(metrics.kl_to_full >= 0.0);
                if variant == 0 {
                    assert_eq!(metrics.top1_agreement, 1.0);
                }
            }
            Event::Error { message, .. } => panic!("{message}"),
            _ => {}
        }
    }
    assert_eq!(custom_tokens, expected, "re-run tokens differ from the direct headless run");
    cmd_tx.send(Command::Shutdown).unwrap();
    thread.join().unwrap();
}

/// A prompt prefills without H2O's sums (no pane needs them yet); the first
/// run with an H2O pane records them with one more pass over the prompt,
/// and its tokens equal a headless run on a prefill that recorded them.
#[test]
fn h2o_sums_are_recorded_when_a_pane_first_needs_them() {
    let engine = common::owned_engine();
    let select = SelectConfig::default();
    assert_ne!(select.scorer, Scorer::H2o, "the session's own scorer does not ask for the sums");
    let tokens = engine.encode(PROMPT, true).unwrap();
    let (l, n) = (tokens.len(), engine.config().n_layers);
    let budgets = apply::budgets_for(&Strategy::Uniform, 0.4, l, n, &select).unwrap();
    let params = GenParams { max_new_tokens: 12, ..Default::default() };
    let h2o = SelectConfig { scorer: Scorer::H2o, ..select };
    let pre = engine.prefill(&tokens, h2o.prefill_options()).unwrap();
    assert!(!pre.stats.accumulated.is_empty());
    let (cache, _) = apply::prune(&pre, &budgets, &h2o, 13).unwrap();
    let expected = engine.generate(cache, &pre.first_logits, &params, &mut |_| true).unwrap();

    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let thread = std::thread::spawn(move || worker::serve(engine, select, cmd_rx, ev_tx));
    cmd_tx.send(Command::SetPrompt { text: PROMPT.into(), chat: true }).unwrap();
    let mut prefill_passes = 0;
    let mut count_pass = |ev: &Event| {
        if let Event::Progress { job: Job::Prefill, done, total } = ev {
            if done == total {
                prefill_passes += 1;
            }
        }
    };
    loop {
        let ev = ev_rx.blocking_recv().expect("engine stopped");
        count_pass(&ev);
        match ev {
            Event::Prefilled(_) => break,
            Event::Error { message, .. } => panic!("{message}"),
            _ => {}
        }
    }
    let variants = vec![Variant::full(0), Variant::layers(1, budgets.clone(), Scorer::H2o)];
    cmd_tx.send(Command::Run { run_id: 1, variants, params }).unwrap();
    let (mut got, mut done) = (Vec::new(), 0);
    while done < 2 {
        let ev = ev_rx.blocking_recv().expect("engine stopped");
        count_pass(&ev);
        match ev {
            Event::Token { run_id: 1, variant: 1, token_id, .. } => got.push(token_id),
            Event::VariantDone { run_id: 1, .. } => done += 1,
            Event::Error { message, .. } => panic!("{message}"),
            _ => {}
        }
    }
    assert_eq!(prefill_passes, 2, "the prompt, then the pass for H2O's sums");
    assert_eq!(got, expected, "the H2O pane differs from a headless run with the sums recorded at prefill");
    cmd_tx.send(Command::Shutdown).unwrap();
    thread.join().unwrap();
}
