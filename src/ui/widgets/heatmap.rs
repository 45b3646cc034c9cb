//! Rows × positions. Positions are binned to the panel width. Rows are
//! layers (keep, attention views): when there are more layers than rows,
//! each row shows two layers with half blocks, and beyond that neighbouring
//! layers share a half row (averaged). In the heads and decode views rows
//! are the selected layer's KV heads or decode reports (time running down,
//! neighbouring reports averaged when they outnumber the rows); the data
//! comes from `ui::heat`.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{panel, put, title};
use crate::ui::app::{App, Focus, HeatMode};
use crate::ui::heat;
use crate::ui::text::truncate;

const LABEL_W: u16 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeatGeom {
    pub inner: Rect,
    /// The coloured cells.
    pub map: Rect,
    /// Position bins (columns actually used).
    pub cols: usize,
    /// Two item groups per text row.
    pub half: bool,
    /// Item groups ("virtual rows"): items (layers, heads, decode reports)
    /// are binned into this many contiguous groups, like positions into columns.
    pub groups: usize,
    pub items: usize,
    /// Text rows per group (heads and decode views with room to spare).
    pub stretch: usize,
    /// Positions across (the prompt, or prompt and generated tokens).
    pub len: usize,
    /// Decode view: `(prompt_len, prompt_cols)`. The prompt fills the first
    /// `prompt_cols` columns and the generated tokens the rest (at least a
    /// quarter of them), so a few dozen tokens after a long prompt still get
    /// columns of their own.
    pub split: Option<(usize, usize)>,
    pub cursor_row: u16,
    pub legend_row: u16,
}

pub fn geometry(area: Rect, app: &App) -> HeatGeom {
    let inner = Rect::new(
        area.x.saturating_add(1),
        area.y.saturating_add(1),
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    );
    let map_h = inner.height.saturating_sub(2).max(1);
    let map = Rect::new(inner.x + LABEL_W.min(inner.width), inner.y, inner.width.saturating_sub(LABEL_W), map_h);
    let n = heat::items(app);
    let len = heat::domain(app);
    let mut cols = (map.width as usize).min(len);
    let prompt_len = app.prompt_len();
    let generated = len.saturating_sub(prompt_len);
    let mut split = None;
    if app.heat_mode == HeatMode::Decode && generated > 0 && prompt_len > 0 && cols >= 4 {
        let gen_cols = generated.min((cols / 4).max(cols * generated / len)).max(1);
        let prompt_cols = (cols - gen_cols).min(prompt_len);
        cols = prompt_cols + gen_cols;
        split = Some((prompt_len, prompt_cols));
    }
    let rows = map_h as usize;
    let half = app.heat_mode.rows_are_layers() && n > rows;
    let groups = if half { n.min(2 * rows) } else { n.min(rows) };
    let stretch = if app.heat_mode.rows_are_layers() || n == 0 { 1 } else { (rows / n).max(1) };
    HeatGeom {
        inner,
        map,
        cols,
        half,
        groups,
        items: n,
        stretch,
        len,
        split,
        cursor_row: inner.y + map_h,
        legend_row: inner.y + map_h + 1,
    }
}

impl HeatGeom {
    /// Positions in column `col` (of `len` across).
    pub fn bin(&self, col: usize, len: usize) -> std::ops::Range<usize> {
        let cols = self.cols.max(1);
        match self.split {
            Some((p, pc)) if p < len && pc < cols => {
                if col < pc {
                    (col * p / pc)..((col + 1) * p / pc)
                } else {
                    let (c, k, g) = (col - pc, cols - pc, len - p);
                    (p + c * g / k)..(p + (c + 1) * g / k)
                }
            }
            _ => (col * len / cols)..((col + 1) * len / cols),
        }
    }

    /// Column showing position `pos`: the last whose bin starts at or
    /// before it (bins are contiguous and in order).
    pub fn col_of(&self, pos: usize, len: usize) -> usize {
        let (mut lo, mut hi) = (0, self.cols.max(1) - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.bin(mid, len).start <= pos {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// Item groups (virtual rows) shown on text row `r`.
    fn groups_of_row(&self, r: usize) -> (usize, Option<usize>) {
        if self.half {
            (2 * r, Some(2 * r + 1))
        } else {
            (r / self.stretch.max(1), None)
        }
    }

    /// Items in group `g`.
    pub fn items_of_group(&self, g: usize) -> std::ops::Range<usize> {
        let (n, k) = (self.items, self.groups.max(1));
        (g * n / k).min(n)..((g + 1) * n / k).min(n)
    }

    /// Text rows in use.
    pub fn text_rows(&self) -> usize {
        if self.half {
            self.groups.div_ceil(2)
        } else {
            self.groups * self.stretch.max(1)
        }
    }

    /// Text row showing `item`.
    pub fn row_of(&self, item: usize) -> usize {
        let k = self.groups.max(1);
        let mut g = (item * k / self.items.max(1)).min(k - 1);
        while g + 1 < k && self.items_of_group(g + 1).start <= item {
            g += 1;
        }
        while g > 0 && self.items_of_group(g).start > item {
            g -= 1;
        }
        if self.half {
            g / 2
        } else {
            g * self.stretch.max(1)
        }
    }

    /// (item, first position) under a click.
    pub fn cell_at(&self, x: u16, y: u16) -> Option<(usize, usize)> {
        if y < self.map.y || y >= self.map.bottom() || self.items == 0 || self.len == 0 {
            return None;
        }
        let (g, _) = self.groups_of_row((y - self.map.y) as usize);
        if g >= self.groups {
            return None;
        }
        let item = self.items_of_group(g).start.min(self.items - 1);
        let x = x.max(self.map.x);
        let col = ((x - self.map.x) as usize).min(self.cols.saturating_sub(1));
        Some((item, self.bin(col, self.len).start))
    }
}

/// The value of one cell, in [0, 1]; `Some(None)` for "evicted" (every view
/// but attention); `None` where no row of the group has reached the bin
/// (positions not generated yet).
fn cell_value(
    mode: HeatMode,
    data: &[Vec<f32>],
    items: std::ops::Range<usize>,
    bin: std::ops::Range<usize>,
) -> Option<Option<f32>> {
    if data.is_empty() || items.is_empty() || bin.is_empty() {
        return None;
    }
    let mut acc = 0f32;
    let mut count = 0usize;
    for i in items {
        let row = data.get(i)?;
        let Some(vals) = row.get(bin.start.min(row.len())..bin.end.min(row.len())).filter(|v| !v.is_empty()) else {
            continue;
        };
        let v = match mode {
            // Attention peaks matter: one hot position should light its bin.
            HeatMode::Attention => vals.iter().cloned().fold(0f32, f32::max),
            _ => vals.iter().sum::<f32>() / vals.len() as f32,
        };
        acc += v;
        count += 1;
    }
    if count == 0 {
        return None;
    }
    let v = acc / count as f32;
    Some(if mode != HeatMode::Attention && v <= 0.0 { None } else { Some(v) })
}

fn colour(app: &App, v: Option<Option<f32>>) -> Color {
    match v {
        None => app.theme.bg,
        Some(None) => app.theme.heat_evicted,
        Some(Some(v)) => app.theme.heat(v),
    }
}

/// The view's name and what it shows, for the title: "keep ▶3 uniform · snapkv".
fn heading(app: &App) -> String {
    let pane = app.selected_pane();
    let who = format!("▶{} {}", app.pane + 1, pane.names()[1]);
    match app.heat_mode {
        HeatMode::Keep => format!("keep {who} "),
        HeatMode::Attention => "attention ".into(),
        HeatMode::Heads => format!("heads {who} · layer {} ", app.selected),
        HeatMode::Decode => format!("decode {who} · layer {} ", app.selected),
    }
}

/// What an empty view is waiting for.
fn waiting(app: &App, len: usize) -> &'static str {
    let pane = app.selected_pane();
    match app.heat_mode {
        _ if len == 0 => "waiting for the prompt prefill…",
        HeatMode::Attention => "no attention statistics for this prompt",
        HeatMode::Decode if pane.occupancy.is_some() => "no tokens decoded yet…",
        _ => "waiting for the first run…",
    }
}

/// The label of text row `r`, and its style.
fn row_label(app: &App, g: &HeatGeom, r: usize, sel_row: Option<usize>) -> (String, Style) {
    let t = &app.theme;
    let (top, _) = g.groups_of_row(r);
    let first = g.items_of_group(top).start;
    match app.heat_mode {
        // A stretched group is labelled on its first row only.
        _ if !r.is_multiple_of(g.stretch.max(1)) => (String::new(), t.dim()),
        _ if sel_row == Some(r) => {
            (format!("▶{:>2} ", app.selected), Style::default().fg(t.accent).add_modifier(Modifier::BOLD))
        }
        HeatMode::Heads => (format!(" h{first:<2}"), t.dim()),
        HeatMode::Decode => {
            let step = app.selected_pane().decode.get(first).map_or(0, |d| d.step);
            (format!("{step:>3} "), t.dim())
        }
        _ => (format!(" {first:>2} "), t.dim()),
    }
}

/// Legend texts after the colour ramp, longest first.
fn legend_options(app: &App, hint: &str) -> Vec<String> {
    let pane = app.selected_pane();
    match app.heat_mode {
        HeatMode::Attention => vec![
            format!(" max  window attention (√, per layer){hint}"),
            " max  window attention (√, per layer)".into(),
            " max  attention".into(),
            " max".into(),
        ],
        HeatMode::Keep => vec![
            format!(" 1  share of KV heads keeping the position{hint}"),
            " 1  share of KV heads keeping the position".into(),
            " 1  share of KV heads keeping".into(),
            " 1".into(),
        ],
        HeatMode::Heads => {
            let counts = pane.occupancy.as_ref().map_or_else(Vec::new, |o| heat::head_counts(o, app.selected));
            let counts: Vec<String> = counts.iter().map(usize::to_string).collect();
            let counts = counts.join("/");
            vec![
                format!(" 1  kept by the head · kept {counts}{hint}"),
                format!(" 1  kept by the head · kept {counts}"),
                format!(" 1  kept {counts}"),
                " 1".into(),
            ]
        }
        HeatMode::Decode => {
            let gen = pane.decode.last().map_or(0.0, |d| heat::generated_share(d, app.selected, app.prompt_len()));
            let gen = format!("{:.0}% generated", gen * 100.0);
            vec![
                format!(" 1  share of heads holding · rows: steps · ▏prompt end · {gen}{hint}"),
                format!(" 1  share of heads holding · ▏prompt end · {gen}"),
                format!(" 1  held · ▏prompt end · {gen}"),
                format!(" 1  {gen}"),
                " 1".into(),
            ]
        }
    }
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let focused = app.focus == Focus::Heatmap;
    let g = geometry(area, app);
    let (len, prompt_len) = (g.len, app.prompt_len());
    let pane = app.selected_pane();
    let mode = app.heat_mode;
    let head_style = if mode == HeatMode::Attention {
        t.title(focused)
    } else {
        Style::default().fg(t.pane(pane.colour)).add_modifier(Modifier::BOLD)
    };
    let head = vec![title("Heatmap ·", focused, t), Span::styled(heading(app), head_style)];
    let mut block = panel(Line::from(head), focused, t);
    if mode != HeatMode::Attention && pane.occupancy_stale {
        block = block.title(Span::styled("(previous run) ", t.dim()));
    }
    if len > 0 && g.cols > 0 {
        let bin = g.bin(g.col_of(app.cursor, len), len);
        let per = match g.split {
            Some((p, pc)) => p.div_ceil(pc.max(1)),
            None => len.div_ceil(g.cols),
        };
        block = block.title(
            Line::styled(format!(" pos {}–{} · {} tok/col ", bin.start, bin.end.saturating_sub(1), per), t.dim())
                .right_aligned(),
        );
    }
    block.render(area, buf);

    let data = heat::rows(app);
    if g.items == 0 || len == 0 || data.is_empty() {
        Paragraph::new(waiting(app, len)).style(t.dim()).render(g.inner, buf);
        return;
    }

    let text_rows = g.text_rows();
    let sel_row = mode.rows_are_layers().then(|| g.row_of(app.selected));
    let ceilings = app.prompt.as_ref().map_or(&[][..], |p| &p.kv_ceilings[..]);
    let is_local = |l: usize| ceilings.get(l).is_some_and(|&c| c < prompt_len);
    // The decode view marks the first generated position's column.
    let prompt_end = (mode == HeatMode::Decode && prompt_len < len).then(|| g.col_of(prompt_len, len));
    for r in 0..(g.map.height as usize).min(text_rows) {
        let y = g.map.y + r as u16;
        let (top, bottom) = g.groups_of_row(r);
        let top_items = g.items_of_group(top);
        let bottom_items = bottom.map(|b| g.items_of_group(b)).filter(|l| !l.is_empty());
        let (label, style) = row_label(app, &g, r, sel_row);
        put(buf, g.inner.x, y, &label, LABEL_W.min(g.inner.width), style);
        // A row that shows a local (sliding-window) layer is marked after its label.
        let row_layers: Vec<usize> = if mode.rows_are_layers() {
            top_items.clone().chain(bottom_items.clone().unwrap_or(0..0)).collect()
        } else {
            vec![app.selected]
        };
        if LABEL_W >= 4 && g.inner.width >= LABEL_W && row_layers.into_iter().any(is_local) {
            put(buf, g.inner.x + LABEL_W - 1, y, super::bars::LOCAL_GLYPH, 1, t.dim());
        }
        for c in 0..g.cols {
            let bin = g.bin(c, len);
            let fg = colour(app, cell_value(mode, &data, top_items.clone(), bin.clone()));
            let cell = buf.cell_mut((g.map.x + c as u16, y));
            let Some(cell) = cell else { continue };
            if g.half {
                let bg = match &bottom_items {
                    Some(l) => colour(app, cell_value(mode, &data, l.clone(), bin)),
                    None => t.bg,
                };
                cell.set_symbol("▀").set_style(Style::default().fg(fg).bg(bg));
            } else if prompt_end == Some(c) {
                cell.set_symbol("▏").set_style(Style::default().fg(t.accent).bg(fg));
            } else {
                cell.set_symbol(" ").set_style(Style::default().bg(fg));
            }
        }
    }

    // Column cursor.
    let col = g.col_of(app.cursor, len);
    if g.cursor_row < g.inner.bottom() {
        put(buf, g.map.x + col as u16, g.cursor_row, "▲", 1, Style::default().fg(t.accent));
        if let Some(piece) = app.prompt.as_ref().and_then(|p| p.pieces.get(app.cursor)) {
            let shown: String = piece.chars().map(|c| if c.is_control() { '·' } else { c }).collect();
            let info = format!(" {}: {:?}", app.cursor, truncate(&shown, 16));
            let w = crate::ui::text::str_width(&info) as u16;
            let room_right = g.map.right().saturating_sub(g.map.x + col as u16 + 1);
            let x = if room_right >= w {
                g.map.x + col as u16 + 1
            } else {
                (g.map.x + col as u16).saturating_sub(w).max(g.map.x)
            };
            put(buf, x, g.cursor_row, &info, w.min(g.map.width), t.dim());
        }
    }

    // Legend.
    if g.legend_row < g.inner.bottom() {
        let mut spans = vec![Span::raw(" ")];
        if (0..app.n_layers()).any(is_local) {
            spans.push(Span::styled(format!("{} local ", super::bars::LOCAL_GLYPH), t.dim()));
        }
        if mode != HeatMode::Attention {
            spans.push(Span::styled("  ", Style::default().bg(t.heat_evicted)));
            spans.push(Span::styled(" evicted  ", t.dim()));
        }
        spans.push(Span::styled("0 ", t.dim()));
        for i in 0..10 {
            spans.push(Span::styled(" ", Style::default().bg(t.heat(i as f32 / 9.0))));
        }
        let base: usize = spans.iter().map(Span::width).sum();
        let hint = format!("  [{}] source", app.keymap.short(crate::ui::keys::KeyAction::HeatmapMode));
        let room = (g.inner.width as usize).saturating_sub(base);
        if let Some(desc) = super::first_fitting(&legend_options(app, &hint), room) {
            spans.push(Span::styled(desc, t.dim()));
        }
        Line::from(spans).render(Rect::new(g.inner.x, g.legend_row, g.inner.width, 1), buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(n_layers: usize, rows: u16, cols: usize) -> HeatGeom {
        let half = n_layers > rows as usize;
        HeatGeom {
            inner: Rect::new(0, 0, 80, rows + 2),
            map: Rect::new(4, 0, 76, rows),
            cols,
            half,
            groups: if half { n_layers.min(2 * rows as usize) } else { n_layers },
            items: n_layers,
            stretch: 1,
            len: 0,
            split: None,
            cursor_row: rows,
            legend_row: rows + 1,
        }
    }

    #[test]
    fn every_layer_and_position_is_drawn_exactly_once() {
        for n in [1, 7, 16, 24, 30, 32, 80] {
            for rows in [4u16, 11, 15, 16, 40] {
                let g = geom(n, rows, 50);
                let mut seen = vec![0; n];
                for k in 0..g.groups {
                    for l in g.items_of_group(k) {
                        seen[l] += 1;
                        assert_eq!(g.row_of(l), if g.half { k / 2 } else { k });
                    }
                }
                assert!(seen.iter().all(|&c| c == 1), "n={n} rows={rows}");
                assert!(g.text_rows() <= rows as usize, "n={n} rows={rows}");
            }
        }
        for len in [50, 51, 282, 4000] {
            let g = geom(24, 12, 50);
            let mut next = 0;
            for c in 0..g.cols {
                let b = g.bin(c, len);
                assert_eq!(b.start, next);
                assert!(!b.is_empty());
                for p in b.clone() {
                    assert_eq!(g.col_of(p, len), c);
                }
                next = b.end;
            }
            assert_eq!(next, len);
        }
    }

    #[test]
    fn stretched_rows_cover_each_item_once_within_the_panel() {
        for n in [1, 2, 3, 7, 16] {
            for rows in [4u16, 11, 17] {
                let stretch = (rows as usize / n).max(1);
                let g = HeatGeom { half: false, groups: n.min(rows as usize), stretch, ..geom(n, rows, 50) };
                assert!(g.text_rows() <= rows as usize, "n={n} rows={rows}");
                let mut first_rows = vec![None; g.groups];
                for r in 0..g.text_rows() {
                    let (k, other) = g.groups_of_row(r);
                    assert!(k < g.groups && other.is_none(), "n={n} rows={rows} r={r}");
                    first_rows[k].get_or_insert(r);
                }
                for (k, first) in first_rows.iter().enumerate() {
                    for item in g.items_of_group(k) {
                        assert_eq!(Some(g.row_of(item)), *first, "n={n} rows={rows} item={item}");
                    }
                }
            }
        }
    }

    #[test]
    fn split_columns_cover_prompt_and_generated_positions_once() {
        for (p, len, cols, pc) in [(3000, 3064, 76, 57), (282, 310, 120, 92), (40, 47, 10, 7), (5, 9, 6, 4)] {
            let g = HeatGeom { split: Some((p, pc)), ..geom(24, 12, cols) };
            let mut next = 0;
            for c in 0..cols {
                let b = g.bin(c, len);
                assert_eq!(b.start, next, "p={p} len={len} col={c}");
                assert!(!b.is_empty(), "p={p} len={len} col={c}");
                assert_eq!(b.end <= p, c < pc, "prompt and generated positions never share a column");
                for pos in b.clone() {
                    assert_eq!(g.col_of(pos, len), c);
                }
                next = b.end;
            }
            assert_eq!(next, len);
        }
    }
}
