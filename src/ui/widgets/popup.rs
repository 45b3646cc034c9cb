//! Line-editor popup (prompt, export path, import path).

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Clear, Widget};

use super::help::centered;
use super::{panel, put, title};
use crate::ui::app::{App, EditorKind};
use crate::ui::editor::LineEditor;
use crate::ui::text::char_width;

/// Draws the popup; returns where the terminal cursor should go.
pub fn render(app: &App, kind: EditorKind, editor: &LineEditor, area: Rect, buf: &mut Buffer) -> Option<Position> {
    let t = &app.theme;
    let w = area.width.saturating_sub(4).min(100);
    let text_w = w.saturating_sub(2).max(1) as usize;
    // Wrap by columns; a newline shows as ⏎ and ends its line.
    let chars = editor.chars();
    let shown = |c: char| if c == '\n' { '⏎' } else { c };
    let mut lines: Vec<(usize, usize)> = vec![(0, 0)]; // (start char, width)
    for (i, c) in chars.iter().enumerate() {
        let cw = char_width(shown(*c));
        let last = lines.last_mut().expect("one line");
        if last.1 + cw > text_w {
            lines.push((i, cw));
        } else {
            last.1 += cw;
        }
        if *c == '\n' {
            lines.push((i + 1, 0));
        }
    }
    let max_rows = area.height.saturating_sub(4).max(1) as usize;
    let rows = lines.len().clamp(1, max_rows);
    let r = centered(area, w, rows as u16 + 3);
    Clear.render(r, buf);
    let hint = match kind {
        EditorKind::Prompt => " Enter: set prompt & prefill · Alt-Enter: newline · Esc: cancel ",
        EditorKind::Export => " Enter: write profile (JSON) · Esc: cancel ",
        EditorKind::Import => " Enter: load profile · Esc: cancel ",
    };
    panel(title(kind.title(), true, t), true, t).title_bottom(Line::styled(hint, t.dim())).render(r, buf);
    let inner = Rect::new(r.x + 1, r.y + 1, r.width.saturating_sub(2), r.height.saturating_sub(2));
    // Which wrapped line holds the cursor; scroll so it is visible.
    let cur = editor.cursor();
    let cur_line = lines.iter().rposition(|(s, _)| *s <= cur).unwrap_or(0);
    let first = (cur_line + 1).saturating_sub(rows);
    let mut cursor_pos = None;
    for (row, li) in (first..lines.len()).take(rows).enumerate() {
        let start = lines[li].0;
        let end = lines.get(li + 1).map_or(chars.len(), |l| l.0);
        let s: String = chars[start..end].iter().map(|c| shown(*c)).collect();
        let y = inner.y + row as u16;
        put(buf, inner.x, y, &s, inner.width, t.base());
        if li == cur_line {
            let col: usize = chars[start..cur].iter().map(|c| char_width(shown(*c))).sum();
            let x = inner.x + col as u16;
            if x < inner.right() {
                let ch = chars.get(cur).map_or(" ".to_string(), |c| shown(*c).to_string());
                put(buf, x, y, &ch, 1, t.cursor());
                cursor_pos = Some(Position::new(x, y));
            }
        }
    }
    cursor_pos
}
