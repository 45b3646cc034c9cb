//! Key hints for the focused panel, built from the live key map so user
//! overrides show up.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::ui::app::{App, Focus, Overlay};
use crate::ui::keys::KeyAction as K;

/// (keys, what they do) for the focused panel, most useful first.
pub fn hints(app: &App) -> Vec<(String, &'static str)> {
    let m = &app.keymap;
    let pair = |a: K, b: K| format!("{}{}", m.short(a), m.short(b));
    let mut out: Vec<(String, &'static str)> = Vec::new();
    match &app.overlay {
        Overlay::Help => return vec![("any key".into(), "close help")],
        Overlay::Editor { .. } => {
            return vec![
                ("Enter".into(), "confirm"),
                ("Esc".into(), "cancel"),
                ("Ctrl-U".into(), "clear"),
                ("Ctrl-W".into(), "delete word"),
            ]
        }
        Overlay::Menu { .. } => {
            return vec![
                ("↑↓ Enter".into(), "choose"),
                ("f/u/p/d/m/i".into(), "add"),
                ("s/v/k/h/x".into(), "scorer/evict/KV/heads/remove"),
                ("Esc".into(), "close"),
            ]
        }
        Overlay::None => {}
    }
    match app.focus {
        Focus::Budgets => {
            out.push((pair(K::Up, K::Down), "layer"));
            out.push((pair(K::Left, K::Right), "budget"));
            out.push((format!("{}/{}", m.short(K::LeftCoarse), m.short(K::RightCoarse)), "coarse"));
            out.push((m.short(K::Lock), "lock"));
            out.push((
                format!("{}/{}/{}", m.short(K::ResetUniform), m.short(K::ResetPyramid), m.short(K::ResetDepthKv)),
                "split",
            ));
            out.push((format!("{}/{}", m.short(K::BudgetUp), m.short(K::BudgetDown)), "global"));
        }
        Focus::Heatmap => {
            out.push((pair(K::Up, K::Down), "layer"));
            out.push((pair(K::Left, K::Right), "column"));
            out.push((m.short(K::HeatmapMode), "source"));
            out.push((format!("{}/{}", m.short(K::BudgetUp), m.short(K::BudgetDown)), "global"));
        }
        Focus::Tokens => {
            out.push((pair(K::Up, K::Down), "scroll"));
            out.push((pair(K::Left, K::Right), "token"));
            out.push((m.short(K::HeatmapMode), "pane"));
            out.push((m.short(K::EditPrompt), "edit prompt"));
        }
        Focus::Outputs => {
            out.push((pair(K::Left, K::Right), "pane"));
            out.push((pair(K::Up, K::Down), "scroll"));
            out.push((m.short(K::Rerun), "re-run"));
            out.push((m.short(K::Cancel), "stop"));
            out.push((m.short(K::EditPrompt), "prompt"));
        }
    }
    if app.focus != Focus::Outputs {
        out.push((pair(K::PrevPane, K::NextPane), "pane"));
    }
    out.push((m.short(K::VariantMenu), "variants"));
    out.push((m.short(K::Calibrate), "calibrate"));
    out.push((format!("{}/{}", m.short(K::Export), m.short(K::Import)), "profile"));
    if app.focus != Focus::Tokens && app.focus != Focus::Outputs {
        out.push((m.short(K::EditPrompt), "prompt"));
    }
    out.push((m.short(K::FocusNext), "panel"));
    out.push((m.short(K::Help), "help"));
    out.push((m.short(K::Quit), "quit"));
    out
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let items = hints(app);
    let width = area.width as usize;
    // Drop hints from the middle until the line fits; help and quit stay.
    // Drawn as "KEY DESC   ".
    let cost = |(k, d): &(String, &str)| crate::ui::text::str_width(k) + 1 + d.len() + 3;
    let mut keep: Vec<bool> = vec![true; items.len()];
    let mut total: usize = 1 + items.iter().map(cost).sum::<usize>();
    let mut drop = items.len().saturating_sub(3);
    while total > width && drop > 0 {
        drop -= 1;
        keep[drop] = false;
        total -= cost(&items[drop]);
    }
    let mut spans = vec![Span::raw(" ")];
    for (item, k) in items.iter().zip(keep) {
        if !k {
            continue;
        }
        spans.push(Span::styled(item.0.clone(), t.key()));
        spans.push(Span::styled(format!(" {}   ", item.1), t.dim()));
    }
    Line::from(spans).render(area, buf);
}
