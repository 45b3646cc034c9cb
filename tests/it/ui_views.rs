//! The heatmap's per-head and decode views and the per-pane head split,
//! through `update` and the fake engine: the head split travels in the
//! pane's variant, decode reports of the current run fill the selected
//! pane's steps view (stale ones are dropped), and `h` walks the four views.

use crate::ui_update::{loaded, options};
use crossterm::event::{KeyCode, MouseButton, MouseEventKind};
use depthkv::prune::{HeadSplit, SelectConfig, ADA_SAFEGUARD};
use depthkv::session::protocol::{Event, VariantId};
use depthkv::ui::app::{HeatMode, Overlay, DEBOUNCE};
use depthkv::ui::fake::{self, Demo, Harness, DEMO_PROMPT};
use depthkv::ui::fake_cache;
use depthkv::ui::widgets::heatmap;
use depthkv::ui::TuiOptions;

const LAYERS: usize = 24;
const FULL: VariantId = 0;
const UNIFORM: VariantId = 1;
const CUSTOM: VariantId = 2;
const ADA: HeadSplit = HeadSplit::Ada { safeguard: ADA_SAFEGUARD };

/// Opens the variants menu and picks an entry by its letter, then closes it.
fn menu(h: &mut Harness, key: char) {
    h.press(KeyCode::Char('a'));
    h.press(KeyCode::Char(key));
    if matches!(h.app.overlay, Overlay::Menu { .. }) {
        h.press(KeyCode::Esc);
    }
}

#[test]
fn head_split_belongs_to_the_selected_pane() {
    let mut h = loaded((200, 50));
    h.press(KeyCode::Char('a'));
    h.press(KeyCode::Char('h'));
    assert!(matches!(h.app.overlay, Overlay::Menu { .. }), "the menu stays open to show the change");
    assert_eq!(h.app.selected_pane().heads, ADA);
    h.press(KeyCode::Esc);
    assert!(h.app.selected_pane().names()[0].ends_with("· ada"), "{}", h.app.selected_pane().names()[0]);
    h.advance(DEBOUNCE * 2);
    let run = h.engine.last_run().unwrap();
    assert_eq!(run.variant(CUSTOM).unwrap().heads, ADA);
    assert_eq!(run.variant(UNIFORM).unwrap().heads, HeadSplit::Even);
    // Again: back to even, and a new run.
    let before = run.run_id;
    menu(&mut h, 'h');
    h.advance(DEBOUNCE * 2);
    let run = h.engine.last_run().unwrap();
    assert!(run.run_id > before);
    assert_eq!(run.variant(CUSTOM).unwrap().heads, HeadSplit::Even);
    // The full pane has no heads to split.
    h.press(KeyCode::Char('['));
    h.press(KeyCode::Char('['));
    assert!(h.app.selected_pane().is_full());
    menu(&mut h, 'h');
    assert_eq!(h.app.selected_pane().heads, HeadSplit::Even);
    assert!(h.app.current_message().unwrap().text.contains("full pane"));
}

#[test]
fn panes_start_with_the_sessions_head_split() {
    let select = SelectConfig { heads: HeadSplit::Ada { safeguard: 0.3 }, ..SelectConfig::default() };
    let mut h = Harness::new(&TuiOptions { select, ..options() }, (200, 50));
    h.load(LAYERS, DEMO_PROMPT);
    let run = h.engine.last_run().unwrap();
    assert_eq!(run.variant(CUSTOM).unwrap().heads, HeadSplit::Ada { safeguard: 0.3 });
    // A pane added from the menu takes the selected pane's split; toggling
    // twice returns to the session's safeguard.
    menu(&mut h, 'u');
    assert_eq!(h.app.selected_pane().heads, HeadSplit::Ada { safeguard: 0.3 });
    menu(&mut h, 'h');
    menu(&mut h, 'h');
    assert_eq!(h.app.selected_pane().heads, HeadSplit::Ada { safeguard: 0.3 });
}

#[test]
fn decode_reports_of_the_current_run_fill_the_steps_view() {
    let mut h = loaded((200, 50));
    menu(&mut h, 'v');
    h.advance(DEBOUNCE * 2);
    let old = h.engine.last_run().unwrap();
    fake_cache::stream_last_run(&mut h, 40);
    let reports = h.app.selected_pane().decode.clone();
    let words = fake::split_words(Demo::of(old.variant(CUSTOM).unwrap()).text()).len().min(40);
    assert_eq!(reports.len(), words.div_ceil(4), "a report every 4 tokens and after the last");
    assert_eq!(reports.last().unwrap().step, words);
    // `h` walks keep → attention → heads → decode → keep.
    let mut seen = vec![h.app.heat_mode];
    for _ in 0..4 {
        h.press(KeyCode::Char('h'));
        seen.push(h.app.heat_mode);
    }
    assert_eq!(seen, [HeatMode::Keep, HeatMode::Attention, HeatMode::Heads, HeatMode::Decode, HeatMode::Keep]);
    h.press(KeyCode::Char('h'));
    h.press(KeyCode::Char('h'));
    h.press(KeyCode::Char('h'));
    assert_eq!(h.app.heat_mode, HeatMode::Decode);
    // Rows are the reports (they fit), columns the prompt and what was fed back.
    let g = heatmap::geometry(h.app.layout().heatmap.unwrap(), &h.app);
    assert_eq!((g.items, g.groups), (reports.len(), reports.len()));
    assert_eq!(g.stretch, (g.map.height as usize / reports.len()).max(1), "few reports share the panel's height");
    assert_eq!(g.len, reports.last().unwrap().positions);
    // A click on a step row keeps the layer and moves the cursor in the prompt.
    h.press(KeyCode::Down);
    h.press(KeyCode::Down);
    h.mouse(MouseEventKind::Down(MouseButton::Left), g.map.x + 5, g.map.y + 3);
    assert_eq!(h.app.selected, 2);
    assert_eq!(h.app.cursor, g.bin(5, g.len).start);
    // Reports of an older run are dropped; the new run's occupancy starts
    // the view afresh.
    h.press(KeyCode::Char('r'));
    let new = h.engine.last_run().unwrap();
    assert!(new.run_id > old.run_id);
    h.emit(Event::DecodeOccupancy { run_id: old.run_id, variant: CUSTOM, occupancy: reports[0].clone() });
    assert_eq!(h.app.selected_pane().decode.len(), reports.len(), "stale reports stay until the new run's occupancy");
    let snap = h.app.prompt.clone().unwrap();
    let layers = new.layers(CUSTOM).unwrap();
    h.emit(Event::Occupancy { run_id: new.run_id, variant: CUSTOM, occupancy: fake::occupancy(&snap, &layers) });
    assert!(h.app.selected_pane().decode.is_empty());
    h.emit(Event::DecodeOccupancy { run_id: old.run_id, variant: CUSTOM, occupancy: reports[0].clone() });
    assert!(h.app.selected_pane().decode.is_empty(), "a report of a superseded run reached the pane");
    h.emit(Event::DecodeOccupancy { run_id: new.run_id, variant: CUSTOM, occupancy: reports[0].clone() });
    assert_eq!(h.app.selected_pane().decode.len(), 1);
    let full = &h.app.panes[FULL as usize];
    assert!(
        full.decode.iter().all(|d| d.step <= 40) && !full.decode.is_empty(),
        "the full pane keeps its last reports"
    );
}

/// The text of buffer row `y`.
fn row(buf: &ratatui::buffer::Buffer, y: u16) -> String {
    (0..buf.area.width).map(|x| buf[(x, y)].symbol().to_string()).collect()
}

#[test]
fn views_label_their_rows_and_mark_the_prompt_end() {
    let mut h = loaded((200, 50));
    menu(&mut h, 'v');
    menu(&mut h, 'h');
    h.advance(DEBOUNCE * 2);
    fake_cache::stream_last_run(&mut h, 40);
    for _ in 0..2 {
        h.press(KeyCode::Char('h'));
    }
    assert_eq!(h.app.heat_mode, HeatMode::Heads);
    let area = h.app.layout().heatmap.unwrap();
    let g = heatmap::geometry(area, &h.app);
    let buf = h.draw();
    assert!(row(&buf, area.y).contains("heads ▶3"), "{}", row(&buf, area.y));
    let h1 = g.map.y + g.stretch as u16;
    assert!(row(&buf, g.map.y).contains(" h0 ") && row(&buf, h1).contains(" h1 "));
    let counts: Vec<usize> = h.app.selected_pane().occupancy.as_ref().unwrap().kept[0].iter().map(Vec::len).collect();
    let legend = row(&buf, g.legend_row);
    assert!(legend.contains(&format!("kept {}/{}", counts[0], counts[1])), "{legend}");

    h.press(KeyCode::Char('h'));
    let g = heatmap::geometry(area, &h.app);
    let buf = h.draw();
    assert!(row(&buf, area.y).contains("decode ▶3"), "{}", row(&buf, area.y));
    let first = h.app.selected_pane().decode[0].step;
    assert!(row(&buf, g.map.y).contains(&format!("{first:>3} ")));
    // The first generated position's column carries the marker on every row.
    let col = g.col_of(h.app.prompt_len(), g.len) as u16;
    let rows = g.text_rows() as u16;
    for r in 0..rows {
        assert_eq!(buf[(g.map.x + col, g.map.y + r)].symbol(), "▏", "row {r}");
    }
    // Positions not generated yet at a row's step are blank, not evicted.
    let last_col = g.map.x + g.cols as u16 - 1;
    assert_eq!(buf[(last_col, g.map.y)].bg, h.app.theme.bg);
    assert_ne!(buf[(last_col, g.map.y + rows - 1)].bg, h.app.theme.bg);
}
