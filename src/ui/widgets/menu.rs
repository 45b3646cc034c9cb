//! The variants menu popup: add a pane, change the selected one, remove it.
//! Its geometry is public so clicks map to entries with the same arithmetic.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Widget};

use super::help::centered;
use super::{panel, put, title};
use crate::ui::app::App;
use crate::ui::menu::{self, Line as MenuLine};
use crate::ui::text::{str_width, truncate};

const HINT: &str = " ↑↓ Enter or a letter · Esc closes ";

/// Where the menu box is and which entry each row holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuGeom {
    pub frame: Rect,
    /// `(screen row, entry index)` of every entry that fits.
    pub rows: Vec<(u16, usize)>,
}

impl MenuGeom {
    pub fn entry_at(&self, y: u16) -> Option<usize> {
        self.rows.iter().find(|(row, _)| *row == y).map(|(_, k)| *k)
    }
}

/// The text of a line, without styles (also sizes the box).
fn line_text(line: &MenuLine) -> String {
    match line {
        MenuLine::Heading(h) => h.clone(),
        MenuLine::Entry(e) => format!("  {}  {}", e.key, e.label),
    }
}

pub fn geometry(app: &App, area: Rect) -> MenuGeom {
    let lines = menu::lines(app);
    let widest = lines.iter().map(|l| str_width(&line_text(l))).max().unwrap_or(0).max(str_width(HINT));
    let frame = centered(area, (widest + 4) as u16, lines.len() as u16 + 2);
    let inner_h = frame.height.saturating_sub(2) as usize;
    let mut rows = Vec::new();
    let mut k = 0;
    for (r, l) in lines.iter().enumerate() {
        if let MenuLine::Entry(_) = l {
            if r < inner_h {
                rows.push((frame.y + 1 + r as u16, k));
            }
            k += 1;
        }
    }
    MenuGeom { frame, rows }
}

pub fn render(app: &App, cursor: usize, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let g = geometry(app, area);
    let r = g.frame;
    Clear.render(r, buf);
    let mut block = panel(title("Variants", true, t), true, t);
    if str_width(HINT) + 2 <= r.width as usize {
        block = block.title_bottom(Line::styled(HINT, t.dim()));
    }
    block.render(r, buf);
    let inner = Rect::new(r.x + 1, r.y + 1, r.width.saturating_sub(2), r.height.saturating_sub(2));
    let w = inner.width.saturating_sub(2) as usize;
    let mut k = 0;
    for (row, line) in menu::lines(app).iter().enumerate().take(inner.height as usize) {
        let y = inner.y + row as u16;
        let x = inner.x + 1;
        match line {
            MenuLine::Heading(h) => {
                let style = Style::default().fg(t.title).add_modifier(Modifier::BOLD | Modifier::UNDERLINED);
                put(buf, x, y, &truncate(h, w), w as u16, style);
            }
            MenuLine::Entry(e) => {
                let here = k == cursor;
                k += 1;
                let (key, text) = match (e.disabled.is_some(), here) {
                    (true, _) => (t.dim(), t.dim()),
                    (false, true) => (t.selected().add_modifier(Modifier::BOLD), t.selected()),
                    (false, false) => (t.key(), Style::default().fg(t.fg)),
                };
                let label = truncate(&e.label, w.saturating_sub(5));
                let pad = " ".repeat(w.saturating_sub(5 + str_width(&label)));
                let mut spans = vec![
                    Span::styled(if here { "▶ " } else { "  " }, Style::default().fg(t.accent)),
                    Span::styled(e.key.to_string(), key),
                    Span::styled("  ", text),
                    Span::styled(label, text),
                ];
                if here {
                    spans.push(Span::styled(pad, text));
                }
                Line::from(spans).render(Rect::new(x, y, inner.width.saturating_sub(1), 1), buf);
            }
        }
    }
}
