//! The screen at any size from 20×8 up, with 2–6 panes, every panel
//! focused, every heatmap view and every overlay open: drawing never panics, every panel lies on
//! the screen without overlapping another, and the pane grid shows each pane
//! once inside the panes area (or the selected pane alone when too small).

use crossterm::event::KeyCode;
use depthkv::prune::StrategyKind;
use depthkv::session::protocol::Event;
use depthkv::ui::app::Action;
use depthkv::ui::fake::{self, Demo, Harness, DEMO_PROMPT};
use depthkv::ui::fake_cache;
use depthkv::ui::layout::pane_grid;
use depthkv::ui::TuiOptions;
use proptest::prelude::*;
use ratatui::layout::Rect;

const LAYERS: usize = 24;

/// A workbench with `panes` panes, mid-stream.
fn workbench(panes: usize) -> Harness {
    let opts = TuiOptions {
        initial_budget: 0.25,
        initial_strategy: StrategyKind::Pyramid,
        prompt: DEMO_PROMPT.to_string(),
        ..TuiOptions::default()
    };
    let mut h = Harness::new(&opts, (120, 40));
    h.load(LAYERS, DEMO_PROMPT);
    for k in 3..=panes {
        h.press(KeyCode::Char('a'));
        h.press(KeyCode::Char(['u', 'p', 'f', 'm'][k % 4]));
    }
    while h.app.panes.len() > panes {
        h.press(KeyCode::Char('x'));
    }
    h.press(KeyCode::Char('r'));
    let run = h.engine.last_run().unwrap();
    let snap = h.app.prompt.clone().unwrap();
    for v in &run.variants {
        let layers = run.layers(v.id).unwrap_or_else(|| vec![snap.pieces.len(); LAYERS]);
        let start = fake::occupancy(&snap, &layers);
        let tokens = fake::token_events(run.run_id, v.id, Demo::of(v).text(), 0..30);
        // Eviction on, so the decode view has evictions to draw.
        let reports = fake_cache::decode_reports(&snap, &start, &layers, true, tokens.len());
        h.emit(Event::Occupancy { run_id: run.run_id, variant: v.id, occupancy: start });
        h.emit_all(fake_cache::with_reports(run.run_id, v.id, tokens, reports));
    }
    h
}

fn inside(r: Rect, area: Rect) -> bool {
    r.x >= area.x && r.y >= area.y && r.right() <= area.right() && r.bottom() <= area.bottom()
}

fn check(h: &Harness, context: &str) {
    let (w, hh) = h.app.size;
    let screen = Rect::new(0, 0, w, hh);
    let buf = h.draw();
    assert_eq!(buf.area, screen, "{context}");
    let l = h.app.layout();
    let panels: Vec<Rect> =
        [Some(l.header), l.tabs, l.bars, l.heatmap, l.tokens, l.panes, Some(l.status), Some(l.footer)]
            .into_iter()
            .flatten()
            .filter(|r| !r.is_empty())
            .collect();
    for (i, a) in panels.iter().enumerate() {
        assert!(inside(*a, screen), "{context}: panel {a:?} off the screen");
        for b in &panels[i + 1..] {
            assert!(!a.intersects(*b), "{context}: panels {a:?} and {b:?} overlap");
        }
    }
    if let Some(area) = l.panes {
        let grid = pane_grid(area, &h.app);
        let mut shown: Vec<usize> = grid.iter().map(|(i, _)| *i).collect();
        shown.sort_unstable();
        let all: Vec<usize> = (0..h.app.panes.len()).collect();
        assert!(shown == all || shown == [h.app.pane], "{context}: panes shown {shown:?}");
        for (k, (_, a)) in grid.iter().enumerate() {
            assert!(inside(*a, area), "{context}: pane {a:?} outside {area:?}");
            for (_, b) in &grid[k + 1..] {
                assert!(!a.intersects(*b), "{context}: panes {a:?} and {b:?} overlap");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_size_any_pane_count_draws_within_the_screen(
        w in 20u16..260,
        hh in 8u16..80,
        panes in 2usize..=6,
        focus in 0usize..4,
        overlay in 0usize..4,
        selected in 0usize..6,
        view in 0usize..4,
    ) {
        let mut h = workbench(panes);
        prop_assert_eq!(h.app.panes.len(), panes);
        h.act(Action::Resize(w, hh));
        h.press(KeyCode::Char(['1', '2', '3', '4'][focus]));
        for _ in 0..selected {
            h.press(KeyCode::Char(']'));
        }
        // Heatmap views: keep, attention, heads, decode.
        for _ in 0..view {
            h.press(KeyCode::Char('h'));
        }
        match overlay {
            1 => h.press(KeyCode::Char('?')),
            2 => h.press(KeyCode::Char('a')),
            3 => h.press(KeyCode::Char('o')),
            _ => {}
        }
        check(&h, &format!("{w}x{hh}, {panes} panes, focus {focus}, overlay {overlay}, view {view}"));
    }
}

#[test]
fn four_panes_sit_in_one_row_when_wide_and_two_by_two_at_80x24() {
    let mut h = workbench(4);
    h.act(Action::Resize(200, 50));
    let wide = pane_grid(h.app.layout().panes.unwrap(), &h.app);
    assert_eq!(wide.len(), 4);
    assert!(wide.iter().all(|(_, r)| r.y == wide[0].1.y), "one row: {wide:?}");
    h.act(Action::Resize(80, 24));
    h.press(KeyCode::Char('4'));
    let compact = pane_grid(h.app.layout().panes.unwrap(), &h.app);
    let rows: std::collections::BTreeSet<u16> = compact.iter().map(|(_, r)| r.y).collect();
    let cols: std::collections::BTreeSet<u16> = compact.iter().map(|(_, r)| r.x).collect();
    assert_eq!((compact.len(), rows.len(), cols.len()), (4, 2, 2), "{compact:?}");
    // Too small for a grid: the selected pane alone.
    h.act(Action::Resize(30, 10));
    let tiny = pane_grid(h.app.layout().panes.unwrap(), &h.app);
    assert_eq!(tiny.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [h.app.pane]);
}
