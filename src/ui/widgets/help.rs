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

/// Groups of rows (a heading and its entries), in display order.
fn groups(app: &App) -> Vec<Vec<Row>> {
    let mut out = Vec::new();
    for g in KeyGroup::ALL {
        let mut rows = vec![Row::Heading(g.title())];
        for a in KeyAction::ALL.into_iter().filter(|a| a.group() == g) {
            rows.push(Row::Entry(app.keymap.label(a), a.description()));
        }
        out.push(rows);
    }
    // After Navigate and General, so the first column holds those three.
    out.insert(
        2,
        vec![
            Row::Heading("Mouse"),
            Row::Entry("drag bar".into(), "resize layer budget"),
            Row::Entry("click".into(), "select layer/column/tab"),
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

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let groups = groups(app);
    let col_w: usize = 38;
    let avail_w = area.width.saturating_sub(4) as usize;
    let avail_h = area.height.saturating_sub(2) as usize;
    let max_cols = (avail_w / col_w).max(1);
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
            let ncols = max_cols;
            let per = total.div_ceil(ncols);
            for (k, r) in groups.iter().flatten().enumerate() {
                cells.push((k / per, k % per, r));
            }
            per
        }
    };
    let used_cols = cells.iter().map(|c| c.0 + 1).max().unwrap_or(1);
    let w = (used_cols * col_w + 2) as u16;
    let h = (height + 2) as u16;
    let r = centered(area, w.max(30), h);
    Clear.render(r, buf);
    panel(title("Keys", true, t), true, t)
        .title_bottom(Line::styled(" any key closes · keys.toml in the config dir rebinds ", t.dim()))
        .render(r, buf);
    let inner = Rect::new(r.x + 1, r.y + 1, r.width.saturating_sub(2), r.height.saturating_sub(2));
    for (c, y, row) in cells {
        if y >= inner.height as usize {
            continue;
        }
        let x = inner.x + (c * col_w) as u16 + 1;
        if x >= inner.right() {
            continue;
        }
        let width = (inner.right() - x).min(col_w as u16 - 1) as usize;
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
