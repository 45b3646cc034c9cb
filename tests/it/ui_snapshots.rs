//! Snapshot tests of whole screens, driven by the fake engine's scripted
//! events. The snapshots are the `Debug` form of the `TestBackend` buffer, so
//! colours and modifiers are part of what is checked.
//!
//! Update after an intended change with `INSTA_UPDATE=always cargo test --test
//! ui_snapshots`, then review the `.snap` diffs.

use std::time::Duration;

use crossterm::event::KeyCode;
use depthkv::prune::StrategyKind;
use depthkv::session::protocol::{Event, Job};
use depthkv::ui::app::Pane;
use depthkv::ui::fake::{self, Harness, DEMO_OUTPUTS, DEMO_PROMPT};
use depthkv::ui::TuiOptions;

const LAYERS: usize = 24;

fn options() -> TuiOptions {
    TuiOptions {
        initial_budget: 0.3,
        initial_strategy: StrategyKind::DepthKv,
        initial_sensitivity: Some(fake::sensitivity(LAYERS).iter().map(|s| s.mean).collect()),
        prompt: DEMO_PROMPT.to_string(),
        ..TuiOptions::default()
    }
}

/// Model loaded, prompt prefilled, the first run streaming: the panes have
/// 18 / 15 / 17 tokens, the Full pane is done.
fn mid_stream(size: (u16, u16)) -> Harness {
    let mut h = Harness::new(&options(), size);
    let snap = h.load(LAYERS, DEMO_PROMPT);
    let (run, uniform, custom) = h.engine.last_run().expect("a run after prefill");
    let full = vec![snap.pieces.len(); LAYERS];
    h.emit_all([
        Event::Occupancy { run_id: run, variant: Pane::Full.variant(), occupancy: fake::occupancy(&snap, &full) },
        Event::Occupancy { run_id: run, variant: Pane::Uniform.variant(), occupancy: fake::occupancy(&snap, &uniform) },
        Event::Occupancy { run_id: run, variant: Pane::Custom.variant(), occupancy: fake::occupancy(&snap, &custom) },
    ]);
    h.advance(Duration::from_millis(400));
    h.emit_all(fake::token_events(run, Pane::Full, DEMO_OUTPUTS[0], 0..40));
    h.emit_all(fake::token_events(run, Pane::Uniform, DEMO_OUTPUTS[1], 0..15));
    h.emit_all(fake::token_events(run, Pane::Custom, DEMO_OUTPUTS[2], 0..17));
    let bytes = h.app.model.as_ref().unwrap().kv_bytes_per_token_layer;
    let full_slots = snap.pieces.len() * LAYERS;
    h.emit(Event::VariantDone {
        run_id: run,
        variant: Pane::Full.variant(),
        metrics: fake::metrics(Pane::Full, full_slots, full_slots, bytes),
    });
    h
}

fn finish(h: &mut Harness) {
    let (run, uniform, custom) = h.engine.last_run().unwrap();
    let len = h.app.prompt_len();
    let bytes = h.app.model.as_ref().unwrap().kv_bytes_per_token_layer;
    for (pane, text) in [(Pane::Uniform, DEMO_OUTPUTS[1]), (Pane::Custom, DEMO_OUTPUTS[2])] {
        let have = h.app.panes[pane.index()].tokens.len();
        h.emit_all(fake::token_events(run, pane, text, have..200));
    }
    let slots = [len * LAYERS, uniform.iter().sum(), custom.iter().sum()];
    for pane in [Pane::Uniform, Pane::Custom] {
        let m = fake::metrics(pane, slots[pane.index()], slots[0], bytes);
        h.emit(depthkv::session::protocol::Event::VariantDone { run_id: run, variant: pane.variant(), metrics: m });
    }
}

#[test]
fn main_screen_200x50_mid_stream() {
    let mut h = mid_stream((200, 50));
    // Select layer 5, lock it, focus the heatmap and move its column cursor.
    for _ in 0..5 {
        h.press(KeyCode::Down);
    }
    h.press(KeyCode::Char('l'));
    h.press(KeyCode::Tab);
    for _ in 0..30 {
        h.press(KeyCode::Right);
    }
    h.emit(Event::Progress { job: Job::Calibrate, done: 3, total: 8 });
    insta::assert_snapshot!(format!("{:?}", h.draw()));
}

#[test]
fn help_overlay_200x50() {
    let mut h = mid_stream((200, 50));
    h.press(KeyCode::Char('?'));
    insta::assert_snapshot!(format!("{:?}", h.draw()));
}

#[test]
fn compact_80x24_budgets_tab() {
    let mut h = mid_stream((80, 24));
    finish(&mut h);
    for _ in 0..3 {
        h.press(KeyCode::Down);
    }
    insta::assert_snapshot!(format!("{:?}", h.draw()));
}

#[test]
fn compact_80x24_outputs_tab() {
    let mut h = mid_stream((80, 24));
    finish(&mut h);
    h.press(KeyCode::Char('4'));
    insta::assert_snapshot!(format!("{:?}", h.draw()));
}

#[test]
fn compact_80x24_heatmap_and_tokens_tabs() {
    let mut h = mid_stream((80, 24));
    h.press(KeyCode::Char('2'));
    let heat = format!("{:?}", h.draw());
    h.press(KeyCode::Char('3'));
    let tokens = format!("{:?}", h.draw());
    insta::assert_snapshot!(format!("{heat}\n{tokens}"));
}

#[test]
fn help_overlay_80x24() {
    let mut h = mid_stream((80, 24));
    h.press(KeyCode::Char('?'));
    insta::assert_snapshot!(format!("{:?}", h.draw()));
}

#[test]
fn prompt_editor_popup() {
    let mut h = mid_stream((120, 32));
    h.press(KeyCode::Char('o'));
    for c in " Answer briefly.".chars() {
        h.press(KeyCode::Char(c));
    }
    insta::assert_snapshot!(format!("{:?}", h.draw()));
}

#[test]
fn high_contrast_theme_heatmap() {
    let theme = depthkv::ui::theme::Theme::builtin("high-contrast").unwrap();
    let mut h = Harness::with_theme(&options(), (120, 32), theme);
    let snap = h.load(LAYERS, DEMO_PROMPT);
    let (run, _, custom) = h.engine.last_run().unwrap();
    h.emit(Event::Occupancy {
        run_id: run,
        variant: Pane::Custom.variant(),
        occupancy: fake::occupancy(&snap, &custom),
    });
    h.press(KeyCode::Char('2'));
    insta::assert_snapshot!(format!("{:?}", h.draw()));
}

#[test]
fn light_theme_main_screen_120x32() {
    let theme = depthkv::ui::theme::Theme::builtin("light").unwrap();
    let mut h = Harness::with_theme(&options(), (120, 32), theme);
    let snap = h.load(LAYERS, DEMO_PROMPT);
    let (run, uniform, custom) = h.engine.last_run().unwrap();
    h.emit_all([
        Event::Occupancy { run_id: run, variant: Pane::Uniform.variant(), occupancy: fake::occupancy(&snap, &uniform) },
        Event::Occupancy { run_id: run, variant: Pane::Custom.variant(), occupancy: fake::occupancy(&snap, &custom) },
    ]);
    h.advance(Duration::from_millis(250));
    h.emit_all(fake::token_events(run, Pane::Full, DEMO_OUTPUTS[0], 0..12));
    h.emit_all(fake::token_events(run, Pane::Uniform, DEMO_OUTPUTS[1], 0..12));
    h.emit_all(fake::token_events(run, Pane::Custom, DEMO_OUTPUTS[2], 0..12));
    insta::assert_snapshot!(format!("{:?}", h.draw()));
}
