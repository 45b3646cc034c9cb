//! Pure render functions, one file per panel. Each takes `&App`, a `Rect` and
//! the frame's buffer; geometry helpers are public so `update` can map mouse
//! positions with exactly the arithmetic the renderer uses.

pub mod bars;
pub mod footer;
pub mod header;
pub mod heatmap;
pub mod help;
pub mod menu;
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
/// separated by `sep`; on the last line the rightmost groups that do not fit
/// are dropped.
pub fn pack_chips<'a>(chips: Vec<Vec<Span<'a>>>, width: usize, max_lines: usize, sep: Span<'a>) -> Vec<Line<'a>> {
    pack_chip_forms(chips.into_iter().map(Chip::new).collect(), width, max_lines, sep)
}

/// A group of spans kept together on one line, with shorter forms to fall
/// back on when the lines run out of room.
pub struct Chip<'a> {
    forms: Vec<Form<'a>>,
    drop_rank: u8,
}

struct Form<'a> {
    spans: Vec<Span<'a>>,
    /// Order in which fallbacks are taken across chips: lowest first.
    rank: u8,
    /// May be cut (ending in "…") down to this many columns plus the ellipsis.
    cut_min: Option<usize>,
}

impl<'a> Chip<'a> {
    pub fn new(spans: Vec<Span<'a>>) -> Self {
        Chip { forms: vec![Form { spans, rank: 0, cut_min: None }], drop_rank: 100 }
    }

    /// Adds a shorter form, taken at `rank` (lower ranks are taken first).
    pub fn or(mut self, rank: u8, spans: Vec<Span<'a>>) -> Self {
        self.forms.push(Form { spans, rank, cut_min: None });
        self
    }

    /// Lets the last form added be cut down to `min` columns (plus "…").
    pub fn cut_to(mut self, min: usize) -> Self {
        if let Some(last) = self.forms.last_mut() {
            last.cut_min = Some(min);
        }
        self
    }

    /// Rank at which the chip is left out altogether.
    pub fn drop_at(mut self, rank: u8) -> Self {
        self.drop_rank = rank;
        self
    }

    fn width(&self, form: usize) -> usize {
        self.forms[form].spans.iter().map(Span::width).sum()
    }
}

/// Cuts spans to `width` columns, the last one ending in "…", keeping styles.
pub fn ellipsize<'a>(spans: &[Span<'a>], width: usize) -> Vec<Span<'a>> {
    let total: usize = spans.iter().map(Span::width).sum();
    if total <= width {
        return spans.to_vec();
    }
    let mut out = Vec::new();
    let mut used = 0;
    for s in spans {
        let w = s.width();
        if used + w < width {
            out.push(s.clone());
            used += w;
            continue;
        }
        out.push(Span::styled(super::text::truncate(&s.content, width - used), s.style));
        break;
    }
    out
}

/// Packs chips into at most `max_lines` lines of `width` columns, separated
/// by `sep`. Chips fill the lines in their full forms; what is left goes on
/// the last line, which is made to fit by cutting a chip that may be cut (if
/// that alone is enough), else by taking the fallback (a shorter form, or
/// leaving a chip out) of lowest rank, rightmost first, and trying again.
pub fn pack_chip_forms<'a>(chips: Vec<Chip<'a>>, width: usize, max_lines: usize, sep: Span<'a>) -> Vec<Line<'a>> {
    let sep_w = sep.width();
    let max_lines = max_lines.max(1);
    let mut lines: Vec<Vec<Chip<'a>>> = vec![Vec::new()];
    let mut used = 0;
    for chip in chips {
        let w = chip.width(0);
        let extra = if lines.last().is_some_and(|l| !l.is_empty()) { sep_w } else { 0 };
        if extra > 0 && used + extra + w > width && lines.len() < max_lines {
            lines.push(Vec::new());
            used = 0;
        }
        let extra = if lines.last().is_some_and(|l| !l.is_empty()) { sep_w } else { 0 };
        used += extra + w;
        lines.last_mut().expect("one line").push(chip);
    }
    let last = lines.pop().expect("one line");
    let mut out: Vec<Line<'a>> =
        lines.into_iter().map(|l| join(l.into_iter().map(|c| c.forms[0].spans.clone()), &sep)).collect();
    out.push(fit_line(last, width, &sep));
    out.retain(|l| !l.spans.is_empty());
    out
}

/// Chooses forms so the chips fit on one line (see [`pack_chip_forms`]).
fn fit_line<'a>(chips: Vec<Chip<'a>>, width: usize, sep: &Span<'a>) -> Line<'a> {
    // Current form of each chip; `forms.len()` means left out.
    let mut at = vec![0usize; chips.len()];
    loop {
        let shown: Vec<usize> = (0..chips.len()).filter(|&i| at[i] < chips[i].forms.len()).collect();
        let total: usize =
            shown.iter().map(|&i| chips[i].width(at[i])).sum::<usize>() + sep.width() * shown.len().saturating_sub(1);
        let spans = |i: usize| chips[i].forms[at[i]].spans.clone();
        if total <= width {
            return join(shown.into_iter().map(spans), sep);
        }
        let over = total - width;
        let cut = shown.iter().copied().find(|&i| {
            let f = &chips[i].forms[at[i]];
            f.cut_min.is_some_and(|m| chips[i].width(at[i]) > over + m)
        });
        if let Some(c) = cut {
            let parts = shown.into_iter().map(|i| {
                if i == c {
                    ellipsize(&spans(i), chips[i].width(at[i]) - over)
                } else {
                    spans(i)
                }
            });
            return join(parts, sep);
        }
        let next_rank = |i: usize| chips[i].forms.get(at[i] + 1).map_or(chips[i].drop_rank, |f| f.rank);
        let Some(step) = shown.iter().copied().rev().min_by_key(|&i| next_rank(i)) else {
            return Line::default();
        };
        at[step] += 1;
    }
}

fn join<'a>(chips: impl Iterator<Item = Vec<Span<'a>>>, sep: &Span<'a>) -> Line<'a> {
    let mut spans = Vec::new();
    for (k, c) in chips.enumerate() {
        if k > 0 {
            spans.push(sep.clone());
        }
        spans.extend(c);
    }
    Line::from(spans)
}
