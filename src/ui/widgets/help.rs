//! `?` overlay: every bound key, grouped, from the live key map.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Widget};

use super::{panel, title};
use crate::ui::app::App;
use crate::ui::keys::{KeyAction, KeyGroup};
use crate::ui::text::{str_width, truncate};

const KEY_W: usize = 12;

enum Row {
    Heading(&'static str),
    Entry(String, &'static str),
}

/// Actions that share a help row with their partner (so the overlay still
/// fits 80×24): `(first, second, what the pair does)`.
const PAIRS: [(KeyAction, KeyAction, &str); 5] = [
    (KeyAction::Up, KeyAction::Down, "select layer / scroll"),
    (KeyAction::PageUp, KeyAction::PageDown, "page up / down"),
    (KeyAction::First, KeyAction::Last, "first / last layer"),
    (KeyAction::BudgetUp, KeyAction::BudgetDown, "global budget ± 5%"),
    (KeyAction::PrevPane, KeyAction::NextPane, "previous / next pane"),
];

/// Groups of rows (a heading and its entries), in display order.
fn groups(app: &App) -> Vec<Vec<Row>> {
    let mut out = Vec::new();
    for g in KeyGroup::ALL {
        let mut rows = vec![Row::Heading(g.title())];
        for a in KeyAction::ALL.into_iter().filter(|a| a.group() == g) {
            if PAIRS.iter().any(|p| p.1 == a) {
                continue;
            }
            rows.push(match PAIRS.iter().find(|p| p.0 == a) {
                Some((_, b, desc)) => Row::Entry(format!("{} {}", app.keymap.label(a), app.keymap.label(*b)), desc),
                None => Row::Entry(app.keymap.label(a), a.description()),
            });
        }
        out.push(rows);
    }
    // After Navigate and General, so the first column holds those three.
    out.insert(
        2,
        vec![
            Row::Heading("Mouse"),
            Row::Entry("drag bar".into(), "resize layer budget"),
            Row::Entry("click".into(), "select layer/pane/tab"),
            Row::Entry("wheel".into(), "select layer / scroll"),
        ],
    );
    out
}

/// Puts whole groups into at most `ncols` columns of at most `limit` rows;
/// `None` if they do not fit.
fn pack(sizes: &[usize], ncols: usize, limit: usize) -> Option<Vec<usize>> {
    let mut col_of = Vec::new();
    let (mut col, mut used) = (0, 0);
    for &n in sizes {
        if used > 0 && used + n > limit {
            col += 1;
            used = 0;
        }
        if n > limit || col >= ncols {
            return None;
        }
        col_of.push(col);
        used += n;
    }
    Some(col_of)
}

/// Centered rectangle of at most `w`×`h` inside `area`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h)
}

/// Blank columns between the border and the text, on both sides.
const PAD: usize = 1;
/// Blank columns between two columns of keys.
const GAP: usize = 2;

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let groups = groups(app);
    // A column is as wide as its longest entry (or heading).
    let content_w = groups
        .iter()
        .flatten()
        .map(|r| match r {
            Row::Heading(h) => str_width(h),
            Row::Entry(_, desc) => KEY_W + 1 + str_width(desc),
        })
        .max()
        .unwrap_or(KEY_W);
    let avail_w = (area.width as usize).saturating_sub(2 + 2 * PAD);
    let col_w = content_w.min(avail_w).max(1);
    let avail_h = area.height.saturating_sub(2) as usize;
    let max_cols = ((avail_w + GAP) / (col_w + GAP)).max(1);
    let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
    let total: usize = sizes.iter().sum();
    // Prefer two columns, then the shortest packing of whole groups; if
    // nothing fits, split groups row by row.
    let ncols = max_cols.min(2);
    let mut placed: Option<(usize, Vec<usize>)> = None;
    for limit in total.div_ceil(ncols)..=avail_h.max(1) {
        if let Some(cols) = pack(&sizes, ncols, limit) {
            placed = Some((limit, cols));
            break;
        }
    }
    let mut cells: Vec<(usize, usize, &Row)> = Vec::new(); // (col, row, entry)
    let height = match &placed {
        Some((_, cols)) => {
            let mut used = vec![0usize; ncols];
            for (g, rows) in groups.iter().enumerate() {
                let c = cols[g];
                for r in rows {
                    cells.push((c, used[c], r));
                    used[c] += 1;
                }
            }
            used.into_iter().max().unwrap_or(0)
        }
        None => {
            let per = total.div_ceil(max_cols);
            for (k, r) in groups.iter().flatten().enumerate() {
                cells.push((k / per, k % per, r));
            }
            per
        }
    };
    let used_cols = cells.iter().map(|c| c.0 + 1).max().unwrap_or(1);
    let text_w = used_cols * col_w + (used_cols - 1) * GAP;
    let hint = " any key closes · keys.toml in the config dir rebinds ";
    // Wide enough for the hint on the bottom border when there is room.
    let mut inner_w = (text_w + 2 * PAD).max(str_width(hint) + 2);
    inner_w += (inner_w - text_w) % 2; // so the margins can be equal
    let w = inner_w + 2;
    let r = centered(area, w as u16, (height + 2) as u16);
    Clear.render(r, buf);
    panel(title("Keys", true, t), true, t).title_bottom(Line::styled(hint, t.dim())).render(r, buf);
    let inner = Rect::new(r.x + 1, r.y + 1, r.width.saturating_sub(2), r.height.saturating_sub(2));
    // The text block centred: equal margins left and right.
    let left = inner.x + (inner.width as usize).saturating_sub(text_w) as u16 / 2;
    for (c, y, row) in cells {
        if y >= inner.height as usize {
            continue;
        }
        let x = left + (c * (col_w + GAP)) as u16;
        if x >= inner.right() {
            continue;
        }
        let width = (inner.right() - x).min(col_w as u16) as usize;
        let line = match row {
            Row::Heading(h) => Line::from(Span::styled(
                h.to_string(),
                Style::default().fg(t.title).add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            )),
            Row::Entry(keys, desc) => {
                let k = truncate(keys, KEY_W);
                let pad = " ".repeat(KEY_W + 1 - str_width(&k));
                Line::from(vec![
                    Span::styled(k, t.key()),
                    Span::raw(pad),
                    Span::styled(truncate(desc, width.saturating_sub(KEY_W + 1)), Style::default().fg(t.fg)),
                ])
            }
        };
        line.render(Rect::new(x, inner.y + y as u16, width as u16, 1), buf);
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::KeyCode;

    use crate::ui::fake::{Harness, DEMO_PROMPT};
    use crate::ui::TuiOptions;

    /// The box's rows between its side borders.
    fn box_rows(size: (u16, u16)) -> Vec<String> {
        let opts = TuiOptions { prompt: DEMO_PROMPT.to_string(), ..TuiOptions::default() };
        let mut h = Harness::new(&opts, size);
        h.load(24, DEMO_PROMPT);
        h.press(KeyCode::Char('?'));
        let buf = h.draw();
        let rows: Vec<String> =
            (0..size.1).map(|y| (0..size.0).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>()).collect();
        let top = rows.iter().position(|r| r.contains("┏ Keys ")).expect("the help box");
        let left = rows[top].chars().position(|c| c == '┏').unwrap();
        let right = left + rows[top].chars().skip(left).position(|c| c == '┓').unwrap();
        rows[top + 1..]
            .iter()
            .take_while(|r| r.chars().nth(left) == Some('┃'))
            .map(|r| r.chars().skip(left + 1).take(right - left - 1).collect())
            .collect()
    }

    #[test]
    fn text_has_equal_margins_on_both_sides() {
        for size in [(80, 24), (120, 40), (200, 50), (60, 40)] {
            let rows = box_rows(size);
            assert!(!rows.is_empty(), "{size:?}");
            let margin_l = rows.iter().map(|r| r.chars().take_while(|c| *c == ' ').count()).min().unwrap();
            let margin_r = rows.iter().map(|r| r.chars().rev().take_while(|c| *c == ' ').count()).min().unwrap();
            assert!(margin_l >= 1, "{size:?}: {rows:#?}");
            assert_eq!(margin_l, margin_r, "{size:?}: {rows:#?}");
        }
    }
}
