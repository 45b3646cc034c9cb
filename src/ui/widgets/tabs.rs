//! Tab bar of the compact layout.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::ui::app::{App, Focus};
use crate::ui::layout::tab_labels;

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let mut spans = Vec::new();
    for (f, label) in Focus::ALL.iter().zip(tab_labels()) {
        if !spans.is_empty() {
            spans.push(Span::styled("│", Style::default().fg(t.border)));
        }
        let style = if *f == app.focus { t.selected().add_modifier(Modifier::BOLD) } else { t.dim() };
        spans.push(Span::styled(label, style));
    }
    Line::from(spans).render(area, buf);
}
