//! Snapshot tests of whole screens, driven by the fake engine's scripted
//! events. The snapshots are the `Debug` form of the `TestBackend` buffer, so
//! colours and modifiers are part of what is checked.
//!
//! Update after an intended change with `INSTA_UPDATE=always cargo test --test
//! ui_snapshots`, then review the `.snap` diffs.

use std::time::Duration;

use crossterm::event::KeyCode;
use depthkv::prune::StrategyKind;
use depthkv::session::protocol::{Event, Job, VariantId};
use depthkv::ui::fake::{self, Demo, Harness, DEMO_PROMPT};
use depthkv::ui::fake_cache;
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

/// Streams the last run as the fake engine would: each variant's occupancy
/// and its first `tokens(id)` tokens (its continuation by how it prunes).
fn stream(h: &mut Harness, tokens: impl Fn(VariantId) -> usize) {
    let run = h.engine.last_run().expect("a run");
    let snap = h.app.prompt.clone().unwrap();
    for v in &run.variants {
        let layers = run.layers(v.id).unwrap_or_else(|| vec![snap.pieces.len(); LAYERS]);
        h.emit(Event::Occupancy { run_id: run.run_id, variant: v.id, occupancy: fake::occupancy(&snap, &layers) });
    }
    for v in &run.variants {
        h.emit_all(fake::token_events(run.run_id, v.id, Demo::of(v).text(), 0..tokens(v.id)));
    }
}

/// Finishes the listed variants of the last run: the rest of their
/// tokens, then their metrics (`cached` ones as replayed from the store).
fn finish(h: &mut Harness, ids: &[VariantId], cached: &[VariantId]) {
    let run = h.engine.last_run().unwrap();
    let full_slots = h.app.prompt_len() * LAYERS;
    let bytes = h.app.model.as_ref().unwrap().kv_bytes_per_token_layer;
    for v in run.variants.iter().filter(|v| ids.contains(&v.id)) {
        let have = h.app.pane_of(v.id).map_or(0, |i| h.app.panes[i].tokens.len());
        h.emit_all(fake::token_events(run.run_id, v.id, Demo::of(v).text(), have..200));
        let slots = run.layers(v.id).map_or(full_slots, |l| l.iter().sum());
        let mut metrics = fake::metrics(Demo::of(v), slots, full_slots, bytes);
        metrics.cached = cached.contains(&v.id);
        h.emit(Event::VariantDone { run_id: run.run_id, variant: v.id, metrics });
    }
}

/// Model loaded, prompt prefilled, the first run streaming: the panes have
/// 40 (done) / 15 / 17 tokens.
fn mid_stream(size: (u16, u16)) -> Harness {
    let mut h = Harness::new(&options(), size);
    h.load(LAYERS, DEMO_PROMPT);
    h.advance(Duration::from_millis(400));
    stream(&mut h, |id| [40, 15, 17][id as usize]);
    finish(&mut h, &[0], &[]);
    h
}

/// The four-variant workbench: full, uniform, DepthKV, and a pyramid pane
/// with the H2O scorer added from the menu. The second run replays the
/// three earlier panes (cached) and streams the new one.
fn four_variants(size: (u16, u16)) -> Harness {
    let mut h = Harness::new(&options(), size);
    h.load(LAYERS, DEMO_PROMPT);
    stream(&mut h, |_| 40);
    finish(&mut h, &[0, 1, 2], &[]);
    h.press(KeyCode::Char('a'));
    h.press(KeyCode::Char('p'));
    h.press(KeyCode::Char('s'));
    h.advance(Duration::from_millis(400));
    assert_eq!(h.engine.last_run().unwrap().variants.len(), 4);
    h.advance(Duration::from_millis(300));
    stream(&mut h, |id| if id == 3 { 21 } else { 40 });
    finish(&mut h, &[0, 1, 2], &[0, 1, 2]);
    h
}

/// A model with sliding-window layers (even layers local, window 48): local
/// layers are marked (◦) in the bars and heatmap rows, their bars hatched
/// past the window, and the slot total is the sum of the ceilings.
#[test]
fn windowed_model_200x50() {
    let mut h = Harness::new(&options(), (200, 50));
    let snap = h.load_windowed(LAYERS, DEMO_PROMPT, Some(48));
    assert!(snap.pieces.len() > 48, "the demo prompt is longer than the window");
    h.advance(Duration::from_millis(400));
    let run = h.engine.last_run().expect("a run");
    for v in &run.variants {
        if let Some(layers) = run.layers(v.id) {
            assert!(layers.iter().zip(&snap.kv_ceilings).all(|(b, c)| b <= c), "{layers:?}");
        }
    }
    stream(&mut h, |_| 20);
    finish(&mut h, &[0, 1, 2], &[]);
    insta::assert_snapshot!(format!("{:?}", h.draw()));
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
    finish(&mut h, &[1, 2], &[]);
    for _ in 0..3 {
        h.press(KeyCode::Down);
    }
    insta::assert_snapshot!(format!("{:?}", h.draw()));
}

#[test]
fn compact_80x24_outputs_tab() {
    let mut h = mid_stream((80, 24));
    finish(&mut h, &[1, 2], &[]);
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
    h.load(LAYERS, DEMO_PROMPT);
    stream(&mut h, |_| 0);
    h.press(KeyCode::Char('2'));
    insta::assert_snapshot!(format!("{:?}", h.draw()));
}

#[test]
fn light_theme_main_screen_120x32() {
    let theme = depthkv::ui::theme::Theme::builtin("light").unwrap();
    let mut h = Harness::with_theme(&options(), (120, 32), theme);
    h.load(LAYERS, DEMO_PROMPT);
    h.advance(Duration::from_millis(250));
    stream(&mut h, |_| 12);
    insta::assert_snapshot!(format!("{:?}", h.draw()));
}

#[test]
fn four_variants_200x50() {
    let mut h = four_variants((200, 50));
    // The bars show the new pyramid pane; the heatmap follows it.
    h.press(KeyCode::Char('2'));
    insta::assert_snapshot!(format!("{:?}", h.draw()));
}

#[test]
fn four_variants_80x24_outputs_tab() {
    let mut h = four_variants((80, 24));
    h.press(KeyCode::Char('4'));
    insta::assert_snapshot!(format!("{:?}", h.draw()));
}

#[test]
fn variants_menu_120x40() {
    let mut h = four_variants((120, 40));
    h.press(KeyCode::Char('a'));
    h.press(KeyCode::Down);
    insta::assert_snapshot!(format!("{:?}", h.draw()));
}

/// The starting-split pane with decode-phase eviction and the ada head
/// split, every pane streamed with its decode reports; layer 5 selected and
/// the heatmap in focus, then `h` pressed `views` times (2: heads, 3: decode).
fn decode_workbench(size: (u16, u16), views: usize) -> Harness {
    let mut h = Harness::new(&options(), size);
    h.load(LAYERS, DEMO_PROMPT);
    for key in ['v', 'h'] {
        h.press(KeyCode::Char('a'));
        h.press(KeyCode::Char(key));
        h.press(KeyCode::Esc);
    }
    h.advance(Duration::from_millis(400));
    fake_cache::stream_last_run(&mut h, 40);
    finish(&mut h, &[0, 1, 2], &[]);
    for _ in 0..5 {
        h.press(KeyCode::Down);
    }
    h.press(KeyCode::Char('2'));
    for _ in 0..views {
        h.press(KeyCode::Char('h'));
    }
    h
}

/// The heads view, then the decode view, of [`decode_workbench`].
fn heads_then_decode(size: (u16, u16)) -> String {
    let mut h = decode_workbench(size, 2);
    let heads = format!("{:?}", h.draw());
    h.press(KeyCode::Char('h'));
    format!("{heads}\n{:?}", h.draw())
}

#[test]
fn heads_and_decode_views_200x50() {
    insta::assert_snapshot!(heads_then_decode((200, 50)));
}

#[test]
fn heads_and_decode_views_80x24() {
    insta::assert_snapshot!(heads_then_decode((80, 24)));
}
