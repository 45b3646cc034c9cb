//! Layers × prompt positions. Positions are binned to the panel width; when
//! there are more layers than rows, each row shows two layers with half
//! blocks, and beyond that neighbouring layers share a half row (averaged).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{panel, put, title};
use crate::ui::app::{App, Focus, HeatMode};
use crate::ui::text::truncate;

const LABEL_W: u16 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeatGeom {
    pub inner: Rect,
    /// The coloured cells.
    pub map: Rect,
    /// Position bins (columns actually used).
    pub cols: usize,
    /// Two layer groups per text row.
    pub half: bool,
    /// Layer groups ("virtual rows"): layers are binned into this many
    /// contiguous groups, like positions into columns.
    pub groups: usize,
    pub n_layers: usize,
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
    let n = app.n_layers();
    let len = app.prompt_len();
    let cols = (map.width as usize).min(len);
    let rows = map_h as usize;
    let half = n > rows;
    let groups = if half { n.min(2 * rows) } else { n };
    HeatGeom {
        inner,
        map,
        cols,
        half,
        groups,
        n_layers: n,
        cursor_row: inner.y + map_h,
        legend_row: inner.y + map_h + 1,
    }
}

impl HeatGeom {
    /// Prompt positions in column `col`.
    pub fn bin(&self, col: usize, len: usize) -> std::ops::Range<usize> {
        let cols = self.cols.max(1);
        (col * len / cols)..((col + 1) * len / cols)
    }

    /// Column showing prompt position `pos`.
    pub fn col_of(&self, pos: usize, len: usize) -> usize {
        let cols = self.cols.max(1);
        let mut c = (pos * cols / len.max(1)).min(cols - 1);
        while c + 1 < cols && self.bin(c + 1, len).start <= pos {
            c += 1;
        }
        while c > 0 && self.bin(c, len).start > pos {
            c -= 1;
        }
        c
    }

    /// Layer groups (virtual rows) shown on text row `r`.
    fn groups_of_row(&self, r: usize) -> (usize, Option<usize>) {
        if self.half {
            (2 * r, Some(2 * r + 1))
        } else {
            (r, None)
        }
    }

    /// Layers in group `g`.
    pub fn layers_of_group(&self, g: usize) -> std::ops::Range<usize> {
        let (n, k) = (self.n_layers, self.groups.max(1));
        (g * n / k).min(n)..((g + 1) * n / k).min(n)
    }

    /// Text rows in use.
    pub fn text_rows(&self) -> usize {
        if self.half {
            self.groups.div_ceil(2)
        } else {
            self.groups
        }
    }

    /// Text row showing `layer`.
    pub fn row_of(&self, layer: usize) -> usize {
        let k = self.groups.max(1);
        let mut g = (layer * k / self.n_layers.max(1)).min(k - 1);
        while g + 1 < k && self.layers_of_group(g + 1).start <= layer {
            g += 1;
        }
        while g > 0 && self.layers_of_group(g).start > layer {
            g -= 1;
        }
        if self.half {
            g / 2
        } else {
            g
        }
    }

    /// (layer, first position) under a click.
    pub fn cell_at(&self, x: u16, y: u16, n_layers: usize, len: usize) -> Option<(usize, usize)> {
        if y < self.map.y || y >= self.map.bottom() || n_layers == 0 || len == 0 {
            return None;
        }
        let (g, _) = self.groups_of_row((y - self.map.y) as usize);
        if g >= self.groups {
            return None;
        }
        let layer = self.layers_of_group(g).start.min(n_layers - 1);
        let x = x.max(self.map.x);
        let col = ((x - self.map.x) as usize).min(self.cols.saturating_sub(1));
        Some((layer, self.bin(col, len).start))
    }
}

/// The value of one cell, in [0, 1]; `None` for "evicted" (keep modes).
fn cell_value(app: &App, layers: std::ops::Range<usize>, bin: std::ops::Range<usize>) -> Option<Option<f32>> {
    let data: &Vec<Vec<f32>> = match app.heat_mode {
        HeatMode::Attention => &app.attention,
        HeatMode::Keep => &app.selected_pane().share,
    };
    if data.is_empty() || layers.is_empty() || bin.is_empty() {
        return None;
    }
    let mut acc = 0f32;
    let mut count = 0usize;
    for l in layers {
        let row = data.get(l)?;
        let vals = row.get(bin.clone())?;
        let v = match app.heat_mode {
            // Attention peaks matter: one hot position should light its bin.
            HeatMode::Attention => vals.iter().cloned().fold(0f32, f32::max),
            _ => vals.iter().sum::<f32>() / vals.len() as f32,
        };
        acc += v;
        count += 1;
    }
    let v = acc / count.max(1) as f32;
    Some(if app.heat_mode != HeatMode::Attention && v <= 0.0 { None } else { Some(v) })
}

fn colour(app: &App, v: Option<Option<f32>>) -> Color {
    match v {
        None => app.theme.bg,
        Some(None) => app.theme.heat_evicted,
        Some(Some(v)) => app.theme.heat(v),
    }
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let focused = app.focus == Focus::Heatmap;
    let g = geometry(area, app);
    let len = app.prompt_len();
    let n = app.n_layers();
    let pane = app.selected_pane();
    let mut head = vec![title("Heatmap ·", focused, t)];
    match app.heat_mode {
        HeatMode::Keep => {
            let style = Style::default().fg(t.pane(pane.colour)).add_modifier(Modifier::BOLD);
            head.push(Span::styled(format!("keep ▶{} {} ", app.pane + 1, pane.names()[1]), style));
        }
        HeatMode::Attention => head.push(Span::styled("attention ", t.title(focused))),
    }
    let mut block = panel(Line::from(head), focused, t);
    if app.heat_mode != HeatMode::Attention && pane.occupancy_stale {
        block = block.title(Span::styled("(previous run) ", t.dim()));
    }
    if len > 0 && g.cols > 0 {
        let bin = g.bin(g.col_of(app.cursor, len), len);
        let per = len.div_ceil(g.cols);
        block = block.title(
            Line::styled(format!(" pos {}–{} · {} tok/col ", bin.start, bin.end.saturating_sub(1), per), t.dim())
                .right_aligned(),
        );
    }
    block.render(area, buf);

    let have_data = match app.heat_mode {
        HeatMode::Attention => !app.attention.is_empty(),
        HeatMode::Keep => !pane.share.is_empty(),
    };
    if n == 0 || len == 0 || !have_data {
        let msg = if len == 0 {
            "waiting for the prompt prefill…"
        } else if app.heat_mode == HeatMode::Attention {
            "no attention statistics for this prompt"
        } else {
            "waiting for the first run…"
        };
        Paragraph::new(msg).style(t.dim()).render(g.inner, buf);
        return;
    }

    let text_rows = g.text_rows();
    let sel_row = g.row_of(app.selected);
    let ceilings = app.prompt.as_ref().map_or(&[][..], |p| &p.kv_ceilings[..]);
    let is_local = |l: usize| ceilings.get(l).is_some_and(|&c| c < len);
    for r in 0..(g.map.height as usize).min(text_rows) {
        let y = g.map.y + r as u16;
        let (top, bottom) = g.groups_of_row(r);
        let top_layers = g.layers_of_group(top);
        let bottom_layers = bottom.map(|b| g.layers_of_group(b)).filter(|l| !l.is_empty());
        // Label: the selected layer on its row, else the row's first layer.
        let (label, style) = if r == sel_row {
            (format!("▶{:>2} ", app.selected), Style::default().fg(t.accent).add_modifier(Modifier::BOLD))
        } else {
            (format!(" {:>2} ", top_layers.start), t.dim())
        };
        put(buf, g.inner.x, y, &label, LABEL_W.min(g.inner.width), style);
        // A row that shows a local (sliding-window) layer is marked after its label.
        let row_layers = top_layers.clone().chain(bottom_layers.clone().unwrap_or(0..0));
        if LABEL_W >= 4 && g.inner.width >= LABEL_W && row_layers.into_iter().any(is_local) {
            put(buf, g.inner.x + LABEL_W - 1, y, super::bars::LOCAL_GLYPH, 1, t.dim());
        }
        for c in 0..g.cols {
            let bin = g.bin(c, len);
            let fg = colour(app, cell_value(app, top_layers.clone(), bin.clone()));
            let cell = buf.cell_mut((g.map.x + c as u16, y));
            let Some(cell) = cell else { continue };
            if g.half {
                let bg = match &bottom_layers {
                    Some(l) => colour(app, cell_value(app, l.clone(), bin)),
                    None => t.bg,
                };
                cell.set_symbol("▀").set_style(Style::default().fg(fg).bg(bg));
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
        if (0..n).any(is_local) {
            spans.push(Span::styled(format!("{} local ", super::bars::LOCAL_GLYPH), t.dim()));
        }
        if app.heat_mode != HeatMode::Attention {
            spans.push(Span::styled("  ", Style::default().bg(t.heat_evicted)));
            spans.push(Span::styled(" evicted  ", t.dim()));
        }
        spans.push(Span::styled("0 ", t.dim()));
        for i in 0..10 {
            spans.push(Span::styled(" ", Style::default().bg(t.heat(i as f32 / 9.0))));
        }
        let base: usize = spans.iter().map(Span::width).sum();
        let hint = format!("  [{}] source", app.keymap.short(crate::ui::keys::KeyAction::HeatmapMode));
        let options: Vec<String> = match app.heat_mode {
            HeatMode::Attention => vec![
                format!(" max  window attention (√, per layer){hint}"),
                " max  window attention (√, per layer)".into(),
                " max  attention".into(),
                " max".into(),
            ],
            _ => vec![
                format!(" 1  share of KV heads keeping the position{hint}"),
                " 1  share of KV heads keeping the position".into(),
                " 1  share of KV heads keeping".into(),
                " 1".into(),
            ],
        };
        let room = (g.inner.width as usize).saturating_sub(base);
        if let Some(desc) = super::first_fitting(&options, room) {
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
            n_layers,
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
                    for l in g.layers_of_group(k) {
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
}
