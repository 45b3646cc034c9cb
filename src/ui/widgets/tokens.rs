//! The prompt as the selected layer sees it: kept tokens in full colour,
//! tokens some KV heads dropped in the "partial" colour, tokens every head
//! dropped dimmed and struck through. The cursor is the heatmap column.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{panel, scroll_marker, title};
use crate::ui::app::{App, Focus};
use crate::ui::text::{wrap_items, Wrapped};

fn inner(area: Rect) -> Rect {
    Rect::new(
        area.x.saturating_add(1),
        area.y.saturating_add(1),
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    )
}

pub fn text_rows(area: Rect) -> usize {
    inner(area).height as usize
}

/// The prompt wrapped to the panel width.
pub fn wrap(area: Rect, app: &App) -> Wrapped {
    let Some(p) = &app.prompt else {
        return Wrapped::default();
    };
    wrap_items(p.pieces.iter().map(String::as_str), inner(area).width as usize, true)
}

/// Prompt position under a click.
pub fn position_at(area: Rect, app: &App, x: u16, y: u16) -> Option<usize> {
    let i = inner(area);
    if !i.contains(ratatui::layout::Position::new(x, y)) {
        return None;
    }
    let w = wrap(area, app);
    let line = w.lines.get(app.token_scroll + (y - i.y) as usize)?;
    let mut col = i.x;
    for seg in line {
        let sw = crate::ui::text::str_width(&seg.text) as u16;
        if x < col + sw {
            return Some(seg.item);
        }
        col += sw;
    }
    line.last().map(|s| s.item)
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let focused = app.focus == Focus::Tokens;
    let pane = app.heat_mode.pane();
    let state = &app.panes[pane.index()];
    let share = state.share.get(app.selected);
    let len = app.prompt_len();
    let mut head = format!("Tokens · layer {}", app.selected);
    if let Some(row) = share {
        let kept = row.iter().filter(|v| **v > 0.0).count();
        head.push_str(&format!(" · {pane:?} keeps {kept}/{len} ({:.1}%)", 100.0 * kept as f64 / len.max(1) as f64));
    }
    let mut block = panel(title(head, focused, t), focused, t);
    if len > 0 {
        block = block.title(Line::styled(format!(" pos {}/{} ", app.cursor, len), t.dim()).right_aligned());
    }
    block.render(area, buf);
    let i = inner(area);
    let Some(_) = &app.prompt else {
        Paragraph::new("waiting for the prompt prefill…").style(t.dim()).render(i, buf);
        return;
    };
    let w = wrap(area, app);
    let rows = i.height as usize;
    let scroll = app.token_scroll.min(w.lines.len().saturating_sub(rows));
    let kept = Style::default().fg(t.fg);
    let partial = Style::default().fg(t.partial);
    let evicted = Style::default().fg(t.evicted).add_modifier(Modifier::CROSSED_OUT | Modifier::DIM);
    for (r, line) in w.lines.iter().skip(scroll).take(rows).enumerate() {
        let spans: Vec<Span> = line
            .iter()
            .map(|seg| {
                let style = if seg.item == app.cursor {
                    t.cursor().add_modifier(Modifier::BOLD)
                } else {
                    match share.and_then(|s| s.get(seg.item)) {
                        None => kept,
                        Some(v) if *v >= 0.999 => kept,
                        Some(v) if *v > 0.0 => partial,
                        Some(_) => evicted,
                    }
                };
                Span::styled(seg.text.clone(), style)
            })
            .collect();
        Line::from(spans).render(Rect::new(i.x, i.y + r as u16, i.width, 1), buf);
    }
    scroll_marker(buf, area, scroll, rows, w.lines.len(), Style::default().fg(t.accent));
}
