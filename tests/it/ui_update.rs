//! Behaviour of `update` through the fake engine: budget totals stay exact
//! under random key and drag sequences, stale runs never reach a pane, the
//! debounce sends exactly one run after a burst, a run always carries every
//! pane's variant, panes come and go through the variants menu, and the
//! commands sent at each step of the workflow.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyModifiers, MouseButton, MouseEventKind};
use depthkv::prune::{self, StrategyKind};
use depthkv::session::protocol::{Command, Event, LayerSensitivity, RunId, VariantId};
use depthkv::ui::app::{Action, Focus, ImportedProfile, Overlay, DEBOUNCE};
use depthkv::ui::fake::{self, Demo, Harness, Rng, SentRun, DEMO_OUTPUTS, DEMO_PROMPT};
use depthkv::ui::widgets::bars;
use depthkv::ui::TuiOptions;

const LAYERS: usize = 24;

pub(crate) fn options() -> TuiOptions {
    TuiOptions {
        initial_budget: 0.3,
        initial_strategy: StrategyKind::Pyramid,
        prompt: DEMO_PROMPT.to_string(),
        ..TuiOptions::default()
    }
}

pub(crate) fn loaded(size: (u16, u16)) -> Harness {
    let mut h = Harness::new(&options(), size);
    h.load(LAYERS, DEMO_PROMPT);
    h
}

/// Variant ids of the default panes: full, uniform, the starting split.
const FULL: VariantId = 0;
const UNIFORM: VariantId = 1;
const CUSTOM: VariantId = 2;

/// `(run id, uniform pane's budgets, starting-split pane's budgets)`.
fn uc(run: &SentRun) -> (RunId, Vec<usize>, Vec<usize>) {
    (run.run_id, run.layers(UNIFORM).expect("uniform pane"), run.layers(CUSTOM).expect("starting-split pane"))
}

/// The invariants every state must satisfy once budgets exist, in every
/// pane: pruned splits hold exactly the global total within the limits,
/// full ones the whole prompt.
fn check_budgets(h: &Harness, context: &str) {
    for (k, p) in h.app.panes.iter().enumerate() {
        let b = &p.split;
        assert!(b.is_ready(), "{context}: pane {k} budgets not ready");
        assert!((p.split.global - h.app.split().global).abs() < 1e-12, "{context}: pane {k} global differs");
        let total = prune::feasible_total(prune::total_slots(b.global, b.prompt_len, b.n_layers), b.n_layers, b.limits);
        assert_eq!(b.uniform.iter().sum::<usize>(), total, "{context}: pane {k} uniform sum");
        if p.is_full() {
            assert!(b.layers.iter().all(|&v| v == b.prompt_len), "{context}: full pane {k}");
            continue;
        }
        assert_eq!(b.layers.iter().sum::<usize>(), total, "{context}: pane {k} sum");
        for (i, &v) in b.layers.iter().enumerate() {
            assert!(
                (b.limits.min..=b.limits.max).contains(&v),
                "{context}: pane {k} layer {i} = {v} outside {:?}",
                b.limits
            );
        }
    }
}

/// A run carries exactly the panes' variants (plus the hidden full reference
/// when no pane is full), each as the pane holds it now.
fn check_run_matches_panes(h: &mut Harness, context: &str) {
    let run = h.engine.last_run().expect("a run");
    let mut want: Vec<_> = h.app.panes.iter().map(|p| p.variant()).collect();
    if !h.app.panes.iter().any(|p| p.is_full()) {
        want.push(depthkv::session::protocol::Variant::full(depthkv::ui::pane::REFERENCE_VARIANT));
    }
    assert_eq!(run.variants, want, "{context}");
}

fn runs(h: &mut Harness) -> usize {
    h.engine.runs().len()
}

#[test]
fn start_sends_prompt_then_one_run_after_prefill() {
    let mut h = Harness::new(&options(), (200, 50));
    assert_eq!(h.engine.commands(), &[Command::SetPrompt { text: DEMO_PROMPT.to_string(), chat: false }]);
    h.load(LAYERS, DEMO_PROMPT);
    let all = h.engine.runs();
    assert_eq!(all.len(), 1);
    // Defaults: full, uniform and the starting split (pyramid here).
    assert_eq!(all[0].variants.len(), 3);
    assert_eq!(all[0].variant(FULL), Some(&depthkv::session::protocol::Variant::full(FULL)));
    let (id, uniform, custom) = &uc(&all[0]);
    assert_eq!(*id, 1);
    let len = h.app.prompt_len();
    let total = prune::total_slots(0.3, len, LAYERS);
    assert_eq!(uniform.iter().sum::<usize>(), total);
    assert_eq!(custom.iter().sum::<usize>(), total);
    // Pyramid: the bottom layer holds more than the top one.
    assert!(custom[0] > custom[LAYERS - 1]);
    assert!(uniform.iter().max().unwrap() - uniform.iter().min().unwrap() <= 1);
    // Limits: min(4 + 32, L), max L.
    assert_eq!(h.app.split().limits.min, 36.min(len));
    assert_eq!(h.app.split().limits.max, len);
    check_budgets(&h, "after prefill");
}

#[test]
fn random_key_sequences_keep_the_total_exact() {
    for seed in 0..40u64 {
        let mut h = loaded(if seed % 2 == 0 { (200, 50) } else { (80, 24) });
        h.app.sensitivity = Some(fake::sensitivity(LAYERS));
        let mut rng = Rng::new(seed);
        for step in 0..150 {
            let (code, mods) = match rng.below(17) {
                0 => (KeyCode::Up, KeyModifiers::NONE),
                1 | 2 => (KeyCode::Down, KeyModifiers::NONE),
                3 | 4 => (KeyCode::Left, KeyModifiers::NONE),
                5 | 6 => (KeyCode::Right, KeyModifiers::NONE),
                7 => (KeyCode::Left, KeyModifiers::SHIFT),
                8 => (KeyCode::Right, KeyModifiers::SHIFT),
                9 => (KeyCode::Char('l'), KeyModifiers::NONE),
                10 => (KeyCode::Char(['u', 'p', 'd'][rng.below(3)]), KeyModifiers::NONE),
                11 => (KeyCode::Char('+'), KeyModifiers::NONE),
                12 => (KeyCode::Char('-'), KeyModifiers::NONE),
                // Other panes, their scorers and the variants menu.
                13 => (KeyCode::Char(['[', ']'][rng.below(2)]), KeyModifiers::NONE),
                14 => (KeyCode::Char(['s', 'v'][rng.below(2)]), KeyModifiers::NONE),
                15 => {
                    h.press(KeyCode::Char('a'));
                    (KeyCode::Char(['f', 'u', 'p', 'd', 'm', 'x'][rng.below(6)]), KeyModifiers::NONE)
                }
                _ => (KeyCode::PageDown, KeyModifiers::NONE),
            };
            h.press_with(code, mods);
            h.advance(Duration::from_millis(rng.below(200) as u64));
            check_budgets(&h, &format!("seed {seed} step {step} after {code:?}"));
        }
        // Whatever was sent last matches the state exactly.
        h.advance(DEBOUNCE * 2);
        h.press(KeyCode::Char('r'));
        check_run_matches_panes(&mut h, &format!("seed {seed}"));
        assert!((2..=6).contains(&h.app.panes.len()), "seed {seed}");
    }
}

#[test]
fn random_drags_keep_the_total_exact_and_move_the_bar() {
    for seed in 0..40u64 {
        let size = if seed % 3 == 0 { (80, 24) } else { (200, 50) };
        let mut h = loaded(size);
        let area = h.app.layout().bars.expect("budgets visible");
        let g = bars::geometry(area, &h.app);
        let mut rng = Rng::new(1000 + seed);
        for step in 0..60 {
            if rng.below(8) == 0 {
                h.press(KeyCode::Char('l'));
            }
            let row = g.inner.y + rng.below(g.rows.min(LAYERS)) as u16;
            let layer = g.layer_at(row, h.app.bars_scroll, LAYERS).unwrap();
            let start = g.bar_x + rng.below(g.bar_w as usize) as u16;
            let path: Vec<(u16, u16)> = (0..rng.below(6) + 1)
                .map(|_| {
                    // Anywhere on screen, including outside the bar.
                    let x = rng.below(size.0 as usize) as u16;
                    (x, row)
                })
                .collect();
            let locked = h.app.split().locked[layer];
            h.drag((start, row), &path);
            check_budgets(&h, &format!("seed {seed} step {step}"));
            assert_eq!(h.app.selected, layer);
            assert!(h.app.drag.is_none(), "mouse up ends the drag");
            if !locked {
                // The dragged bar ends where the mouse was released, unless
                // the other layers could not give or take enough.
                let want = g.target_at(path.last().unwrap().0, h.app.prompt_len());
                let got = h.app.split().layers[layer];
                let b = h.app.split();
                let others: Vec<usize> = (0..LAYERS).filter(|&i| i != layer && !b.locked[i]).collect();
                let room_down: usize = others.iter().map(|&i| b.limits.max - b.layers[i]).sum();
                let room_up: usize = others.iter().map(|&i| b.layers[i] - b.limits.min).sum();
                let want = want.clamp(b.limits.min, b.limits.max);
                assert!(
                    got == want || (got > want && room_down == 0) || (got < want && room_up == 0),
                    "seed {seed} step {step}: layer {layer} wanted {want}, got {got}"
                );
            }
        }
    }
}

#[test]
fn drag_on_locked_layer_changes_nothing() {
    let mut h = loaded((200, 50));
    let g = bars::geometry(h.app.layout().bars.unwrap(), &h.app);
    h.press(KeyCode::Char('l'));
    let before = h.app.split().layers.clone();
    h.drag((g.bar_x + 2, g.inner.y), &[(g.bar_x + g.bar_w - 1, g.inner.y)]);
    assert_eq!(h.app.split().layers, before);
    assert!(h.app.current_message().is_some_and(|m| m.text.contains("locked")));
}

#[test]
fn debounce_sends_exactly_one_run_after_a_burst() {
    let mut h = loaded((200, 50));
    assert_eq!(runs(&mut h), 1);
    // A burst of edits 40 ms apart: nothing is sent while it lasts.
    for i in 0..12 {
        let key = if i % 3 == 2 { KeyCode::Char('+') } else { KeyCode::Right };
        h.press(key);
        h.advance(Duration::from_millis(40));
        assert_eq!(runs(&mut h), 1, "no run during the burst (edit {i})");
    }
    // 40 ms after the last edit: still waiting.
    assert_eq!(runs(&mut h), 1);
    h.advance(DEBOUNCE - Duration::from_millis(41));
    assert_eq!(runs(&mut h), 1, "not yet");
    h.advance(Duration::from_millis(2));
    assert_eq!(runs(&mut h), 2, "exactly one run after the burst");
    for _ in 0..20 {
        h.advance(Duration::from_millis(100));
    }
    assert_eq!(runs(&mut h), 2, "and no more");
    let (id, _, custom) = uc(&h.engine.last_run().unwrap());
    assert_eq!(id, 2);
    assert_eq!(custom, h.app.split().layers);
    assert!(h.app.rerun_at.is_none());
}

#[test]
fn edits_that_change_nothing_do_not_rerun() {
    let mut h = loaded((200, 50));
    // Layer 0 of a pyramid split at a low budget: push it past the max.
    for _ in 0..30 {
        h.press_with(KeyCode::Right, KeyModifiers::SHIFT);
    }
    h.advance(DEBOUNCE * 2);
    let n = runs(&mut h);
    h.press_with(KeyCode::Right, KeyModifiers::SHIFT);
    h.advance(DEBOUNCE * 2);
    assert_eq!(runs(&mut h), n);
}

#[test]
fn stale_run_events_are_dropped() {
    let mut h = loaded((200, 50));
    let snap = h.app.prompt.clone().unwrap();
    let (old, _, old_custom) = uc(&h.engine.last_run().unwrap());
    h.emit_all(fake::token_events(old, FULL, DEMO_OUTPUTS[0], 0..3));
    assert_eq!(h.app.panes[0].tokens.len(), 3);
    // A budget edit supersedes run `old`.
    h.press(KeyCode::Right);
    h.advance(DEBOUNCE * 2);
    let (new, _, _) = uc(&h.engine.last_run().unwrap());
    assert!(new > old);
    assert!(h.app.panes.iter().all(|p| p.tokens.is_empty()), "panes cleared for the new run");
    // Late events of the old run: tokens, occupancy, done, errors.
    h.emit_all(fake::token_events(old, FULL, DEMO_OUTPUTS[0], 3..10));
    h.emit_all(fake::token_events(old, CUSTOM, DEMO_OUTPUTS[2], 0..10));
    h.emit(Event::Occupancy { run_id: old, variant: CUSTOM, occupancy: fake::occupancy(&snap, &old_custom) });
    h.emit(Event::VariantDone { run_id: old, variant: UNIFORM, metrics: fake::metrics(Demo::Uniform, 1, 2, 1) });
    h.emit(Event::Error { run_id: Some(old), message: "old failure".into() });
    assert!(h.app.panes.iter().all(|p| p.tokens.is_empty() && p.metrics.is_none()));
    assert!(h.app.panes[CUSTOM as usize].occupancy.is_none());
    assert!(!h.app.messages.iter().any(|m| m.text.contains("old failure")));
    // Events of the new run do arrive.
    h.emit_all(fake::token_events(new, CUSTOM, DEMO_OUTPUTS[2], 0..4));
    let text: String = h.app.panes[CUSTOM as usize].tokens.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(text, " The locker code was");
    // Events for a run never requested are dropped too.
    h.emit_all(fake::token_events(new + 5, FULL, DEMO_OUTPUTS[0], 0..4));
    assert!(h.app.panes[FULL as usize].tokens.is_empty());
    // And events for a variant no pane has (one removed meanwhile).
    h.emit_all(fake::token_events(new, 77, DEMO_OUTPUTS[0], 0..4));
    assert!(h.app.panes.iter().all(|p| p.id == CUSTOM || p.tokens.is_empty()));
    assert!(h.app.full_tokens().is_empty());
}

#[test]
fn new_prompt_drops_the_running_decode() {
    let mut h = loaded((200, 50));
    let (run, _, _) = uc(&h.engine.last_run().unwrap());
    h.press(KeyCode::Char('o'));
    assert!(matches!(h.app.overlay, Overlay::Editor { .. }));
    h.press_with(KeyCode::Char('u'), KeyModifiers::CONTROL);
    for c in "Short new prompt about Paris.".chars() {
        h.press(KeyCode::Char(c));
    }
    h.press(KeyCode::Enter);
    assert_eq!(
        h.engine.commands().last(),
        Some(&Command::SetPrompt { text: "Short new prompt about Paris.".into(), chat: false })
    );
    h.emit_all(fake::token_events(run, FULL, DEMO_OUTPUTS[0], 0..5));
    assert!(h.app.panes[0].tokens.is_empty(), "old run is gone once the prompt changes");
    // No run before the new prefill, even if the debounce fires.
    h.press(KeyCode::Right);
    h.advance(DEBOUNCE * 3);
    assert_eq!(runs(&mut h), 1);
    let snap = fake::snapshot(fake::split_words("Short new prompt about Paris."), LAYERS, 2);
    h.emit(Event::Prefilled(snap));
    assert_eq!(runs(&mut h), 2);
    // Six tokens < min(36, L): every layer keeps the whole prompt.
    let (_, uniform, custom) = uc(&h.engine.last_run().unwrap());
    assert!(custom.iter().chain(&uniform).all(|&v| v == 6));
}

#[test]
fn calibrate_sends_the_prompt_and_applies_depthkv() {
    let mut h = loaded((200, 50));
    h.press(KeyCode::Char('d'));
    assert!(h.app.current_message().unwrap().text.contains("calibrate"));
    h.press(KeyCode::Char('c'));
    let id = match h.engine.commands().last().unwrap() {
        Command::Calibrate { run_id, prompts, ablation_keep } => {
            assert_eq!(prompts, &vec![DEMO_PROMPT.to_string()]);
            assert!((ablation_keep - 0.4).abs() < 1e-12, "the paper's 60% pruning, as the CLI");
            *run_id
        }
        other => panic!("expected Calibrate, got {other:?}"),
    };
    // A second press while running sends nothing.
    h.press(KeyCode::Char('c'));
    assert!(matches!(h.engine.commands().last().unwrap(), Command::Calibrate { .. }));
    let n_cmds = h.engine.commands().len();
    // A stale calibration result is ignored.
    h.emit(Event::Calibrated { run_id: id + 100, sensitivity: fake::sensitivity(LAYERS), seconds: 1.0 });
    assert!(h.app.sensitivity.is_none());
    h.emit(Event::Calibrated { run_id: id, sensitivity: fake::sensitivity(LAYERS), seconds: 2.5 });
    assert!(h.app.sensitivity.is_some());
    // No DepthKV pane yet: one is added and selected.
    assert_eq!(h.app.panes.len(), 4);
    assert_eq!(h.app.split().shape.name(), "depthkv");
    // Applying the split re-runs at once.
    assert_eq!(h.engine.commands().len(), n_cmds + 1);
    let custom = h.engine.last_run().unwrap().layers(h.app.selected_pane().id).unwrap();
    check_run_matches_panes(&mut h, "after calibration");
    assert!(custom[0] > custom[LAYERS - 1], "most sensitive (first) layer gets more");
    check_budgets(&h, "after calibration");
}

#[test]
fn locks_survive_resets_and_global_changes() {
    let mut h = loaded((200, 50));
    h.app.sensitivity = Some(fake::sensitivity(LAYERS));
    for _ in 0..3 {
        h.press(KeyCode::Down);
    }
    for _ in 0..4 {
        h.press_with(KeyCode::Right, KeyModifiers::SHIFT);
    }
    h.press(KeyCode::Char('l'));
    let kept = h.app.split().layers[3];
    for key in ['u', '+', 'd', '-', '-', 'p'] {
        h.press(KeyCode::Char(key));
        assert_eq!(h.app.split().layers[3], kept, "after {key}");
        check_budgets(&h, &format!("after {key}"));
    }
    h.press(KeyCode::Char('l'));
    h.press(KeyCode::Char('u'));
    assert_ne!(h.app.split().layers[3], kept);
}

#[test]
fn global_budget_steps_on_a_five_percent_grid() {
    let mut h = loaded((200, 50));
    h.press(KeyCode::Char('+'));
    assert!((h.app.split().global - 0.35).abs() < 1e-9);
    h.press(KeyCode::Char('-'));
    h.press(KeyCode::Char('-'));
    assert!((h.app.split().global - 0.25).abs() < 1e-9);
    for _ in 0..30 {
        h.press(KeyCode::Char('-'));
    }
    // Clamped to the per-layer minimum: 36 of L tokens.
    let min = 36.0 / h.app.prompt_len() as f64;
    assert!((h.app.split().global - min).abs() < 1e-9);
    for _ in 0..30 {
        h.press(KeyCode::Char('+'));
    }
    assert!((h.app.split().global - 1.0).abs() < 1e-9);
    check_budgets(&h, "at 100%");
    assert!(h.app.split().layers.iter().all(|&v| v == h.app.prompt_len()));
}

#[test]
fn quit_and_ctrl_c_send_shutdown() {
    let mut h = loaded((80, 24));
    h.press(KeyCode::Char('?'));
    h.press(KeyCode::Char('q'));
    assert!(!h.app.quit, "q closes the help first");
    h.press(KeyCode::Char('q'));
    assert!(h.app.quit);
    assert_eq!(h.engine.commands().last(), Some(&Command::Shutdown));

    let mut h = loaded((80, 24));
    h.press(KeyCode::Char('o'));
    h.press_with(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(h.app.quit, "Ctrl-C quits even from the editor");
}

#[test]
fn escape_stops_generation_and_rerun_restarts() {
    let mut h = loaded((200, 50));
    h.press(KeyCode::Esc);
    assert_eq!(h.engine.commands().last(), Some(&Command::Cancel));
    let (run, _, _) = uc(&h.engine.last_run().unwrap());
    h.emit_all(fake::token_events(run, FULL, DEMO_OUTPUTS[0], 0..3));
    assert!(h.app.panes[0].tokens.is_empty(), "tokens after stop are ignored");
    h.press(KeyCode::Char('r'));
    assert_eq!(h.engine.last_run().unwrap().run_id, run + 1);
}

#[test]
fn export_and_import_go_through_effects() {
    let mut h = loaded((200, 50));
    h.press(KeyCode::Char('e'));
    match &h.app.overlay {
        Overlay::Editor { editor, .. } => {
            assert_eq!(editor.text(), "/profiles/qwen2.5-0.5b-instruct-pyramid-30.json")
        }
        o => panic!("{o:?}"),
    }
    h.press(KeyCode::Esc);
    assert_eq!(h.app.overlay, Overlay::None);

    // An imported profile replaces the split and reruns after the debounce.
    let fractions: Vec<f64> = (0..LAYERS).map(|i| 1.0 + (i % 4) as f64).collect();
    let sens: Vec<LayerSensitivity> = fake::sensitivity(LAYERS);
    h.act(Action::ProfileImported(Ok(ImportedProfile {
        name: "lisbon".into(),
        path: "/profiles/lisbon.json".into(),
        global_budget: 0.4,
        fractions,
        sensitivity: Some(sens),
        warnings: vec![],
    })));
    assert_eq!(h.app.profile_name.as_deref(), Some("lisbon"));
    assert!((h.app.split().global - 0.4).abs() < 1e-9);
    check_budgets(&h, "after import");
    let c = &h.app.split().layers;
    assert!(c[3] > c[0], "fractions shape the split");
    let n = runs(&mut h);
    h.advance(DEBOUNCE * 2);
    assert_eq!(runs(&mut h), n + 1);

    // A profile for another depth is refused.
    h.act(Action::ProfileImported(Ok(ImportedProfile {
        name: "other".into(),
        path: "/x.json".into(),
        global_budget: 0.2,
        fractions: vec![1.0; 12],
        sensitivity: None,
        warnings: vec![],
    })));
    assert_eq!(h.app.profile_name.as_deref(), Some("lisbon"));
    assert!(h.app.current_message().unwrap().text.contains("12 layers"));
}

#[test]
fn focus_and_heatmap_navigation() {
    let mut h = loaded((200, 50));
    h.press(KeyCode::Tab);
    assert_eq!(h.app.focus, Focus::Heatmap);
    let heat = h.app.layout().heatmap.unwrap();
    let g = depthkv::ui::widgets::heatmap::geometry(heat, &h.app);
    let len = h.app.prompt_len();
    h.press(KeyCode::Right);
    assert_eq!(h.app.cursor, g.bin(1, len).start);
    h.press(KeyCode::End);
    assert_eq!(h.app.selected, LAYERS - 1);
    // Clicking a heatmap cell selects its layer and position.
    h.mouse(MouseEventKind::Down(MouseButton::Left), g.map.x + 10, g.map.y);
    assert_eq!(h.app.selected, 0);
    assert_eq!(h.app.cursor, g.bin(10, len).start);
    h.press(KeyCode::Char('h'));
    assert_eq!(h.app.heat_mode, depthkv::ui::app::HeatMode::Attention);
    h.press(KeyCode::BackTab);
    assert_eq!(h.app.focus, Focus::Budgets);
    // Compact layout: clicking a tab switches to it.
    h.act(Action::Resize(80, 24));
    let tabs = h.app.layout().tabs.unwrap();
    h.mouse(MouseEventKind::Down(MouseButton::Left), tabs.x + 30, tabs.y);
    assert_eq!(h.app.focus, Focus::Tokens);
}

/// The real run loop over a `TestBackend`, a scripted key stream and the
/// demo engine thread.
#[tokio::test]
async fn event_loop_end_to_end() {
    use crossterm::event::{Event as TermEvent, KeyEvent};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    let handle = fake::spawn_demo(LAYERS, Duration::from_millis(1));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<std::io::Result<TermEvent>>();
    let input = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) }));
    let app = depthkv::ui::App::new(
        &options(),
        depthkv::ui::theme::Theme::default(),
        depthkv::ui::keys::Keymap::default(),
        "/profiles".into(),
        std::time::Instant::now(),
    );
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let script = tokio::spawn(async move {
        let key = |c| Ok(TermEvent::Key(KeyEvent::new(c, KeyModifiers::NONE)));
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..3 {
            tx.send(key(KeyCode::Right)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        tx.send(key(KeyCode::Char('q'))).unwrap();
        tx
    });
    let app =
        tokio::time::timeout(Duration::from_secs(20), depthkv::ui::run::event_loop(&mut term, input, handle, app))
            .await
            .expect("loop finishes")
            .expect("no error");
    let _tx = script.await.unwrap();
    assert!(app.quit);
    assert!(app.ready());
    assert!(app.run_id.unwrap() >= 2, "the edit re-ran");
    assert!(!app.panes[0].tokens.is_empty(), "tokens streamed into the Full pane");
}

#[test]
fn export_then_import_round_trips_the_split() {
    let dir = std::env::temp_dir().join(format!("depthkv-ui-profiles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut h = loaded((200, 50));
    h.app.profiles_dir = dir.clone();
    h.app.sensitivity = Some(fake::sensitivity(LAYERS));
    h.press(KeyCode::Char('d'));
    for _ in 0..2 {
        h.press(KeyCode::Down);
    }
    h.press_with(KeyCode::Right, KeyModifiers::SHIFT);
    let saved = h.app.split().layers.clone();
    h.press(KeyCode::Char('e'));
    h.press(KeyCode::Enter);
    let file = dir.join("qwen2.5-0.5b-instruct-depthkv-30.json");
    assert!(file.is_file(), "{:?}", h.app.messages.last());
    assert!(h.app.current_message().unwrap().text.contains("profile saved"));
    let p = depthkv::profile::load(&file).unwrap();
    assert_eq!(p.strategy, depthkv::prune::StrategyKind::Manual);
    assert_eq!(p.model.n_layers, LAYERS);
    assert!(p.sensitivity.is_some());

    // Exporting again to the same name refuses to overwrite.
    h.press(KeyCode::Char('e'));
    h.press(KeyCode::Enter);
    assert!(h.app.current_message().unwrap().text.contains("already exists"));

    // Reset, then import: the split comes back.
    h.press(KeyCode::Char('u'));
    assert_ne!(h.app.split().layers, saved);
    h.press(KeyCode::Char('i'));
    h.press_with(KeyCode::Char('u'), KeyModifiers::CONTROL);
    for c in file.display().to_string().chars() {
        h.press(KeyCode::Char(c));
    }
    h.press(KeyCode::Enter);
    let text = &h.app.messages.iter().rev().find(|m| m.text.contains("imported")).unwrap().text;
    assert!(text.contains("qwen2.5-0.5b-instruct-depthkv-30"), "{text}");
    assert_eq!(h.app.split().layers, saved);
    check_budgets(&h, "after import");

    // A profile for another model shape is refused with the mismatch.
    let mut other = p.clone();
    other.model.n_kv_heads = 8;
    let other_path = dir.join("other.json");
    depthkv::profile::save(&other, &other_path, true).unwrap();
    h.act(Action::ProfileImported(depthkv::ui::profile_io::import(&other_path, h.app.model.as_ref())));
    assert!(h.app.current_message().unwrap().text.contains("n_kv_heads"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn per_layer_minimum_follows_the_session_snapshot() {
    // The session reports its per-layer minimum (sinks + window, e.g. 8 + 64)
    // with the prefill; the UI mirrors no constant of its own.
    let mut h = Harness::new(&options(), (200, 50));
    let info = fake::model_info(LAYERS);
    let mut snap = fake::snapshot(fake::split_words(DEMO_PROMPT), LAYERS, info.n_kv_heads);
    snap.layer_floors = vec![72; LAYERS];
    h.emit_all([Event::Loaded(info), Event::Prefilled(snap)]);
    assert!(h.app.panes.iter().all(|p| p.split.limits.min == 72));
    for _ in 0..20 {
        h.press(KeyCode::Char('-'));
    }
    let (_, uniform, custom) = uc(&h.engine.last_run().unwrap());
    h.advance(DEBOUNCE * 2);
    let (_, uniform2, custom2) = uc(&h.engine.last_run().unwrap());
    for v in uniform.iter().chain(&custom).chain(&uniform2).chain(&custom2) {
        assert!(*v >= 72);
    }
}

/// The run loop against the real engine thread and the default model on CPU
/// (installed on demand, so it needs the model or the network): start-up,
/// a budget edit, calibration, quit. `cargo test --test ui_update -- --ignored`.
#[tokio::test]
#[ignore = "loads the real default model"]
async fn real_engine_end_to_end() {
    use crossterm::event::{Event as TermEvent, KeyEvent};
    use depthkv::engine::device::DeviceChoice;
    use depthkv::engine::{fetch, LoadOptions};
    use depthkv::prune::SelectConfig;
    use depthkv::session::worker;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    let model = fetch::ensure_default_model(&mut |m| eprintln!("{m}")).expect("default model");
    let load =
        LoadOptions { model: Some(model.display().to_string()), device: DeviceChoice::Cpu, ..Default::default() };
    let handle = worker::spawn(load, SelectConfig::default()).unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<std::io::Result<TermEvent>>();
    let input = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) }));
    let opts = TuiOptions {
        params: depthkv::engine::GenParams { max_new_tokens: 24, ..Default::default() },
        chat: true,
        ..options()
    };
    let app = depthkv::ui::App::new(
        &opts,
        depthkv::ui::theme::Theme::default(),
        depthkv::ui::keys::Keymap::default(),
        "/profiles".into(),
        std::time::Instant::now(),
    );
    let mut term = Terminal::new(TestBackend::new(200, 50)).unwrap();
    let script = tokio::spawn(async move {
        let key = |c| Ok(TermEvent::Key(KeyEvent::new(c, KeyModifiers::NONE)));
        tokio::time::sleep(Duration::from_secs(8)).await;
        tx.send(key(KeyCode::Right)).unwrap();
        tokio::time::sleep(Duration::from_secs(8)).await;
        tx.send(key(KeyCode::Char('c'))).unwrap();
        tokio::time::sleep(Duration::from_secs(40)).await;
        tx.send(key(KeyCode::Char('q'))).unwrap();
        tx
    });
    let app =
        tokio::time::timeout(Duration::from_secs(300), depthkv::ui::run::event_loop(&mut term, input, handle, app))
            .await
            .expect("loop finishes")
            .expect("no error");
    let _tx = script.await.unwrap();
    let errors: Vec<_> =
        app.messages.iter().filter(|m| m.level == depthkv::ui::app::Level::Error).map(|m| m.text.clone()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(app.ready());
    assert!(app.panes.iter().all(|p| !p.tokens.is_empty()), "all panes streamed");
    if let Ok(dir) = std::env::var("DEPTHKV_UI_DUMP") {
        std::fs::write(format!("{dir}/real_engine.txt"), format!("{:?}", term.backend().buffer())).unwrap();
    }
}

/// Opens the variants menu and presses an entry's letter.
fn menu(h: &mut Harness, key: char) {
    h.press(KeyCode::Char('a'));
    assert!(matches!(h.app.overlay, Overlay::Menu { .. }));
    h.press(KeyCode::Char(key));
}

#[test]
fn the_menu_adds_and_removes_panes_between_two_and_six() {
    let mut h = loaded((200, 50));
    h.app.sensitivity = Some(fake::sensitivity(LAYERS));
    // Add pyramid, DepthKV and full: six panes, each new one selected.
    for (key, kind) in [('p', "pyramid"), ('d', "depthkv"), ('f', "full")] {
        menu(&mut h, key);
        assert_eq!(h.app.overlay, Overlay::None, "adding closes the menu");
        assert_eq!(h.app.pane, h.app.panes.len() - 1);
        assert_eq!(h.app.split().shape.name(), kind);
    }
    assert_eq!(h.app.panes.len(), 6);
    let ids: Vec<VariantId> = h.app.panes.iter().map(|p| p.id).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5]);
    let colours: std::collections::HashSet<usize> = h.app.panes.iter().map(|p| p.colour).collect();
    assert_eq!(colours.len(), 6, "every pane its own colour");
    check_budgets(&h, "six panes");
    // A seventh is refused, with the reason.
    menu(&mut h, 'u');
    assert_eq!(h.app.panes.len(), 6);
    assert!(h.app.current_message().unwrap().text.contains("6 panes at most"));
    h.press(KeyCode::Esc);
    // One debounced run carries all six.
    h.advance(DEBOUNCE * 2);
    check_run_matches_panes(&mut h, "six panes");
    // Remove the selected (full) pane and two more; ids stay with their panes.
    h.press(KeyCode::Char('x'));
    assert_eq!(h.app.panes.iter().map(|p| p.id).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert_eq!(h.app.pane, 4);
    h.press(KeyCode::Char('['));
    menu(&mut h, 'x');
    assert_eq!(h.app.panes.iter().map(|p| p.id).collect::<Vec<_>>(), [0, 1, 2, 4]);
    for _ in 0..5 {
        h.press(KeyCode::Char('x'));
    }
    assert_eq!(h.app.panes.len(), 2, "two panes at least");
    assert!(h.app.current_message().unwrap().text.contains("2 panes at least"));
    // A pane added now reuses a free colour and gets a fresh id.
    menu(&mut h, 'u');
    let last = h.app.panes.last().unwrap();
    assert_eq!(last.id, 6);
    assert!(h.app.panes[..2].iter().all(|p| p.colour != last.colour));
    h.advance(DEBOUNCE * 2);
    check_run_matches_panes(&mut h, "after removals");
}

#[test]
fn depthkv_needs_a_sensitivity_and_the_menu_says_so() {
    let mut h = loaded((200, 50));
    menu(&mut h, 'd');
    assert_eq!(h.app.panes.len(), 3);
    assert!(matches!(h.app.overlay, Overlay::Menu { .. }), "a disabled entry keeps the menu open");
    assert!(h.app.current_message().unwrap().text.contains("calibrate"));
}

#[test]
fn bars_edit_only_the_selected_pane_and_make_it_manual() {
    let mut h = loaded((200, 50));
    let before: Vec<Vec<usize>> = h.app.panes.iter().map(|p| p.split.layers.clone()).collect();
    // Select the uniform pane and move layer 0's budget.
    h.press(KeyCode::Char('['));
    assert_eq!(h.app.pane, 1);
    h.press_with(KeyCode::Right, KeyModifiers::SHIFT);
    assert_ne!(h.app.panes[1].split.layers, before[1]);
    assert_eq!(h.app.panes[1].split.kind_name(), "manual");
    assert_eq!(h.app.panes[0].split.layers, before[0]);
    assert_eq!(h.app.panes[2].split.layers, before[2]);
    check_budgets(&h, "after the edit");
    // Dragging a bar edits the selected pane too.
    h.press(KeyCode::Char(']'));
    let g = bars::geometry(h.app.layout().bars.unwrap(), &h.app);
    h.drag((g.bar_x + 1, g.inner.y + 4), &[(g.bar_x + g.bar_w - 2, g.inner.y + 4)]);
    assert_ne!(h.app.panes[2].split.layers, before[2]);
    assert_eq!(h.app.panes[2].split.kind_name(), "manual");
    check_budgets(&h, "after the drag");
    // The full pane has nothing to edit.
    h.press(KeyCode::Home);
    h.press(KeyCode::Char('['));
    h.press(KeyCode::Char('['));
    assert!(h.app.selected_pane().is_full());
    h.press(KeyCode::Right);
    assert!(h.app.panes[0].is_full());
    assert!(h.app.current_message().unwrap().text.contains("full pane keeps every token"));
    // The debounced run carries every pane, the edited ones as edited.
    h.advance(DEBOUNCE * 2);
    check_run_matches_panes(&mut h, "after edits");
}

#[test]
fn scorer_and_decode_eviction_belong_to_the_selected_pane() {
    let mut h = loaded((200, 50));
    h.press(KeyCode::Char('s'));
    h.press(KeyCode::Char('v'));
    h.advance(DEBOUNCE * 2);
    let run = h.engine.last_run().unwrap();
    let custom = run.variant(CUSTOM).unwrap();
    assert_eq!(custom.scorer, depthkv::prune::Scorer::H2o);
    assert!(custom.decode_evict);
    let uniform = run.variant(UNIFORM).unwrap();
    assert_eq!(uniform.scorer, depthkv::prune::Scorer::SnapKv);
    assert!(!uniform.decode_evict);
    assert_eq!(h.app.selected_pane().names()[0], "pyramid · h2o + evict");
    // In the menu, the scorer entry cycles and the menu stays open.
    menu(&mut h, 's');
    assert!(matches!(h.app.overlay, Overlay::Menu { .. }));
    assert_eq!(h.app.selected_pane().scorer, depthkv::prune::Scorer::Streaming);
}

#[test]
fn kv_precision_belongs_to_the_selected_pane() {
    use depthkv::engine::KvPrecision;
    let mut h = loaded((200, 50));
    menu(&mut h, 'k');
    assert!(matches!(h.app.overlay, Overlay::Menu { .. }), "the menu stays open to show the change");
    assert_eq!(h.app.selected_pane().precision, KvPrecision::Int8);
    h.press(KeyCode::Char('k'));
    assert_eq!(h.app.selected_pane().precision, KvPrecision::Int4);
    h.advance(DEBOUNCE * 2);
    let run = h.engine.last_run().unwrap();
    assert_eq!(run.variant(CUSTOM).unwrap().precision, KvPrecision::Int4);
    assert_eq!(run.variant(UNIFORM).unwrap().precision, KvPrecision::Native);
    assert!(h.app.selected_pane().names()[0].ends_with("· int4"));
}

#[test]
fn without_a_full_pane_a_hidden_reference_keeps_first_divergence() {
    let mut h = loaded((200, 50));
    let (old, _, _) = uc(&h.engine.last_run().unwrap());
    h.emit_all(fake::token_events(old, FULL, DEMO_OUTPUTS[0], 0..20));
    // Select and remove the full pane: its tokens stay as the reference.
    h.press(KeyCode::Char('4'));
    h.press(KeyCode::Left);
    h.press(KeyCode::Left);
    assert_eq!(h.app.pane, 0);
    h.press(KeyCode::Char('x'));
    assert!(h.app.panes.iter().all(|p| !p.is_full()));
    assert_eq!(h.app.full_tokens().len(), 20);
    // The next run asks for the full continuation under the reserved id.
    h.press(KeyCode::Char('r'));
    check_run_matches_panes(&mut h, "no full pane");
    let run = h.engine.last_run().unwrap();
    let reference = depthkv::ui::pane::REFERENCE_VARIANT;
    h.emit_all(fake::token_events(run.run_id, reference, DEMO_OUTPUTS[0], 0..20));
    h.emit_all(fake::token_events(run.run_id, UNIFORM, DEMO_OUTPUTS[1], 0..20));
    assert_eq!(h.app.full_tokens().len(), 20);
    let (full, uniform) = (fake::split_words(DEMO_OUTPUTS[0]), fake::split_words(DEMO_OUTPUTS[1]));
    let diverge = full.iter().zip(&uniform).position(|(a, b)| a != b).unwrap();
    assert_eq!(depthkv::ui::widgets::panes::first_diff(&h.app, 0), Some(diverge));
}

#[test]
fn clicking_a_pane_selects_it_and_the_heatmap_follows() {
    let mut h = loaded((200, 50));
    let area = h.app.layout().panes.unwrap();
    let grid = depthkv::ui::layout::pane_grid(area, &h.app);
    let (i, r) = grid[1];
    h.mouse(MouseEventKind::Down(MouseButton::Left), r.x + 3, r.y + 2);
    assert_eq!((h.app.pane, h.app.focus), (i, Focus::Outputs));
    assert_eq!(h.app.pane_at(r.x + 3, r.y + 2), Some(i));
    let run = h.engine.last_run().unwrap();
    let snap = h.app.prompt.clone().unwrap();
    h.emit(Event::Occupancy {
        run_id: run.run_id,
        variant: UNIFORM,
        occupancy: fake::occupancy(&snap, &run.layers(UNIFORM).unwrap()),
    });
    assert!(!h.app.selected_pane().share.is_empty(), "the heatmap's data is the selected pane's");
}

#[test]
fn the_menu_works_with_the_mouse() {
    let mut h = loaded((120, 40));
    h.press(KeyCode::Char('a'));
    let area = ratatui::layout::Rect::new(0, 0, 120, 40);
    let g = depthkv::ui::widgets::menu::geometry(&h.app, area);
    let entries = depthkv::ui::menu::entries(&h.app);
    let pyramid = entries.iter().position(|e| e.key == 'p').unwrap();
    let (row, _) = g.rows.iter().find(|(_, k)| *k == pyramid).unwrap();
    h.mouse(MouseEventKind::Down(MouseButton::Left), g.frame.x + 4, *row);
    assert_eq!(h.app.panes.len(), 4);
    assert_eq!(h.app.split().shape.name(), "pyramid");
    // A click outside closes it.
    h.press(KeyCode::Char('a'));
    h.mouse(MouseEventKind::Down(MouseButton::Left), 0, 0);
    assert_eq!(h.app.overlay, Overlay::None);
    assert_eq!(h.app.panes.len(), 4);
}

#[test]
fn global_budget_moves_every_pruned_pane() {
    let mut h = loaded((200, 50));
    menu(&mut h, 'p');
    h.press(KeyCode::Char('+'));
    check_budgets(&h, "after +");
    for p in &h.app.panes {
        assert!((p.split.global - 0.35).abs() < 1e-9);
    }
    h.advance(DEBOUNCE * 2);
    check_run_matches_panes(&mut h, "after +");
}
