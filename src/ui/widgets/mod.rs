//! Pure render functions, one file per panel. Each takes `&App`, a `Rect` and
//! the frame's buffer; geometry helpers are public so `update` can map mouse
//! positions with exactly the arithmetic the renderer uses.

pub mod bars;
pub mod footer;
pub mod header;
pub mod heatmap;
pub mod help;
pub mod panes;
pub mod popup;
pub mod status;
pub mod tabs;
pub mod tokens;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType};

use super::theme::Theme;

/// A panel frame: rounded border, highlighted when focused.
pub fn panel<'a>(title: impl Into<Line<'a>>, focused: bool, theme: &Theme) -> Block<'a> {
    Block::bordered()
        .border_type(if focused { BorderType::Thick } else { BorderType::Rounded })
        .border_style(theme.border(focused))
        .title(title)
        .style(theme.base())
}

/// " Title " in the panel title style.
pub fn title<'a>(text: impl Into<String>, focused: bool, theme: &Theme) -> Span<'a> {
    Span::styled(format!(" {} ", text.into()), theme.title(focused))
}

/// A vertical scroll indicator drawn over a panel's right border.
pub fn scroll_marker(buf: &mut Buffer, area: Rect, offset: usize, visible: usize, total: usize, style: Style) {
    if total <= visible || area.height < 3 || area.width == 0 {
        return;
    }
    let track = (area.height - 2) as usize;
    let thumb = (track * visible).div_ceil(total).clamp(1, track);
    let max_off = total - visible;
    let top = ((track - thumb) * offset.min(max_off) + max_off / 2) / max_off.max(1);
    let x = area.right() - 1;
    for i in 0..thumb {
        let y = area.y + 1 + (top + i) as u16;
        if let Some(cell) = buf.cell_mut((x, y)) {
            cell.set_symbol("┃").set_style(style);
        }
    }
}

/// Writes a string at (x, y), clipped to `max_w` columns; returns the width used.
pub fn put(buf: &mut Buffer, x: u16, y: u16, s: &str, max_w: u16, style: Style) -> u16 {
    let (end, _) = buf.set_stringn(x, y, s, max_w as usize, style);
    end.saturating_sub(x)
}

/// The first candidate that fits in `room` columns.
pub fn first_fitting(candidates: &[String], room: usize) -> Option<String> {
    candidates.iter().find(|c| super::text::str_width(c) <= room).cloned()
}

/// Packs groups of spans into at most `max_lines` lines of `width` columns,
/// separated by `sep`; groups that do not fit on the last line are dropped.
pub fn pack_chips<'a>(chips: Vec<Vec<Span<'a>>>, width: usize, max_lines: usize, sep: Span<'a>) -> Vec<Line<'a>> {
    let sep_w = sep.width();
    let mut lines: Vec<(Vec<Span<'a>>, usize)> = vec![(Vec::new(), 0)];
    for chip in chips {
        let w: usize = chip.iter().map(Span::width).sum();
        let (line, used) = lines.last_mut().expect("one line");
        let extra = if line.is_empty() { 0 } else { sep_w };
        if *used + extra + w <= width {
            if extra > 0 {
                line.push(sep.clone());
            }
            line.extend(chip);
            *used += extra + w;
        } else if lines.len() < max_lines && w <= width {
            lines.push((chip, w));
        }
    }
    lines.into_iter().filter(|(l, _)| !l.is_empty()).map(|(l, _)| Line::from(l)).collect()
}
