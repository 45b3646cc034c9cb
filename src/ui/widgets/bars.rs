//! Layer budget bars of the selected pane: one row per layer with its budget
//! as a bar over the prompt length (in the pane's colour), the uniform share
//! as a dotted marker, lock state and the layer's sensitivity when known.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{panel, put, scroll_marker, title};
use crate::ui::app::{App, Focus};
use crate::ui::text::group_digits;
use crate::ui::theme::Theme;

const EIGHTHS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
const LEVELS: [&str; 8] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];
/// Marks a local (sliding-window) layer next to its label.
pub const LOCAL_GLYPH: &str = "◦";
/// Fills a local layer's bar beyond its window: out of its reach.
const BEYOND_WINDOW: &str = "░";

/// Column layout of a bar row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarsGeom {
    pub inner: Rect,
    /// Layer rows that fit.
    pub rows: usize,
    pub digits: usize,
    pub bar_x: u16,
    pub bar_w: u16,
    pub value_x: u16,
    pub value_w: u16,
    pub sens_x: u16,
    pub sens_w: u16,
}

pub fn geometry(area: Rect, app: &App) -> BarsGeom {
    let inner = Rect::new(
        area.x.saturating_add(1),
        area.y.saturating_add(1),
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    );
    let digits = app.n_layers().saturating_sub(1).to_string().len().max(2);
    // "▶L07▣ "
    let label_w = (1 + 1 + digits + 2) as u16;
    let sens_w = match (app.sensitivity.is_some(), inner.width) {
        (false, _) => 0,
        (true, w) if w >= 56 => 9,
        (true, _) => 2,
    };
    let value_w = if inner.width >= 48 { 14 } else { 5 };
    let bar_w = inner.width.saturating_sub(label_w + value_w + sens_w).max(1);
    let bar_x = inner.x + label_w;
    BarsGeom {
        inner,
        rows: inner.height as usize,
        digits,
        bar_x,
        bar_w,
        value_x: bar_x + bar_w,
        value_w,
        sens_x: bar_x + bar_w + value_w,
        sens_w,
    }
}

impl BarsGeom {
    /// The layer drawn on screen row `y`.
    pub fn layer_at(&self, y: u16, scroll: usize, n_layers: usize) -> Option<usize> {
        if y < self.inner.y || y >= self.inner.bottom() {
            return None;
        }
        let layer = scroll + (y - self.inner.y) as usize;
        (layer < n_layers).then_some(layer)
    }

    /// Budget whose bar ends at the right edge of column `x`.
    pub fn target_at(&self, x: u16, prompt_len: usize) -> usize {
        let cells = (x as i64 - self.bar_x as i64 + 1).clamp(0, self.bar_w as i64) as usize;
        (cells * prompt_len + self.bar_w as usize / 2) / self.bar_w.max(1) as usize
    }
}

/// About three significant digits in at most 6 columns ("0.0123" → "0.012",
/// "0.00041" → "4.1e-4").
pub fn fmt_sens(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if a < 0.01 {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The uniform marker's cell. Over the filled part it is drawn in the panel
/// background colour, which contrasts with the fill; a bar ending inside the
/// marker's column is rounded to a whole cell there, so the marker never
/// gives way to the bar's end.
fn marker_cell(t: &Theme, fill: Color, filled: bool) -> (&'static str, Style) {
    if filled {
        ("┊", Style::default().fg(t.bg).bg(fill).add_modifier(Modifier::BOLD))
    } else {
        ("┊", Style::default().fg(t.uniform_marker).bg(t.bar_empty))
    }
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let focused = app.focus == Focus::Budgets;
    let b = app.split();
    let pane = app.selected_pane();
    let colour = t.pane(pane.colour);
    let head = Line::from(vec![
        title("Layer budgets", focused, t),
        Span::styled(format!("▶{} ", app.pane + 1), Style::default().fg(colour).add_modifier(Modifier::BOLD)),
    ]);
    let head_w = head.width();
    let mut block = panel(head, focused, t);
    if b.is_ready() {
        let pending = if app.rerun_at.is_some() { " · re-run pending" } else { "" };
        // The unpruned total: a local layer holds at most its window.
        let (held, all) = (group_digits(b.slots()), group_digits(b.bounds().hi_total()));
        let room = (area.width as usize).saturating_sub(head_w + 4);
        let options = [
            format!(" Σ {held} / {all} slots · {}{pending} ", b.label()),
            format!(" Σ {held} / {all} slots · {} ", b.label()),
            format!(" {} ", b.label()),
            format!(" Σ {held}/{all} "),
            format!(" Σ {held} "),
        ];
        if let Some(text) = super::first_fitting(&options, room) {
            block = block.title(Line::styled(text, t.dim()).right_aligned());
        }
        let mut legend = vec![
            Span::styled(" ┊", Style::default().fg(t.uniform_marker)),
            Span::styled(" uniform  ", t.dim()),
            Span::styled("▣", Style::default().fg(t.locked)),
            Span::styled(" locked ", t.dim()),
        ];
        if (0..b.n_layers).any(|l| b.is_local(l)) {
            legend.push(Span::styled(format!("{LOCAL_GLYPH}{BEYOND_WINDOW}"), t.dim()));
            legend.push(Span::styled(" local: window ", t.dim()));
        }
        if app.sensitivity.is_some() {
            legend.push(Span::styled(" ▂▆", Style::default().fg(t.sensitivity)));
            legend.push(Span::styled(" sensitivity ", t.dim()));
        }
        if pane.is_full() {
            legend.push(Span::styled(" full cache: nothing to edit ", t.dim()));
        }
        block = block.title_bottom(Line::from(legend));
    }
    let g = geometry(area, app);
    block.render(area, buf);
    if !b.is_ready() {
        let msg = if app.model.is_none() { "waiting for the model…" } else { "waiting for the prompt prefill…" };
        Paragraph::new(msg).style(t.dim()).render(g.inner, buf);
        return;
    }
    let n = b.n_layers;
    let len = b.prompt_len.max(1);
    let max_sens = app.sensitivity.as_ref().map(|s| s.iter().map(|x| x.mean).fold(0.0f64, f64::max)).unwrap_or(0.0);
    let uniform_col =
        b.uniform.first().map(|&u| ((u * g.bar_w as usize + len / 2) / len).clamp(1, g.bar_w as usize) - 1);

    for row in 0..g.rows {
        let layer = app.bars_scroll + row;
        if layer >= n {
            break;
        }
        let y = g.inner.y + row as u16;
        let selected = layer == app.selected;
        let locked = b.locked.get(layer).copied().unwrap_or(false);
        let label_style = if selected { t.selected().add_modifier(Modifier::BOLD) } else { t.dim() };
        let mut x = g.inner.x;
        x += put(buf, x, y, if selected { "▶" } else { " " }, 1, Style::default().fg(t.accent));
        x += put(buf, x, y, &format!("L{:0w$}", layer, w = g.digits), g.digits as u16 + 1, label_style);
        let lock = if locked { Style::default().fg(t.locked) } else { t.dim() };
        put(buf, x, y, if locked { "▣" } else { " " }, 1, lock);
        let local = b.is_local(layer);
        put(buf, x + 1, y, if local { LOCAL_GLYPH } else { " " }, 1, if local { t.dim() } else { lock });
        // Columns past a local layer's window: the bar can never reach them.
        let reach = b.ceilings.get(layer).map_or(g.bar_w as usize, |&c| (c * g.bar_w as usize + len / 2) / len);

        // The bar, in eighths of a cell.
        let v = b.layers[layer];
        let eighths = (v * g.bar_w as usize * 8 + len / 2) / len;
        let full = eighths / 8;
        let part = eighths % 8;
        let fill = if locked { t.locked } else { colour };
        for c in 0..g.bar_w as usize {
            let (sym, style) = if Some(c) == uniform_col {
                marker_cell(t, fill, c < full || (c == full && part >= 4))
            } else if c < full {
                ("█", Style::default().fg(fill).bg(t.bar_empty))
            } else if c == full && part > 0 {
                (EIGHTHS[part], Style::default().fg(fill).bg(t.bar_empty))
            } else if local && c >= reach {
                (BEYOND_WINDOW, t.dim().bg(t.bar_empty))
            } else {
                (" ", Style::default().bg(t.bar_empty))
            };
            if let Some(cell) = buf.cell_mut((g.bar_x + c as u16, y)) {
                cell.set_symbol(sym).set_style(style);
            }
        }

        let value = if g.value_w >= 14 {
            format!(" {:>6} {:>5.1}%", group_digits(v), 100.0 * v as f64 / len as f64)
        } else {
            format!(" {:>3.0}%", 100.0 * v as f64 / len as f64)
        };
        let vstyle = if selected { t.selected() } else { t.base() };
        put(buf, g.value_x, y, &value, g.value_w, vstyle);

        if let (Some(s), true) = (app.sensitivity.as_ref().and_then(|s| s.get(layer)), g.sens_w > 0) {
            let level = if max_sens > 0.0 { (s.mean.max(0.0) / max_sens * 7.0).round() as usize } else { 0 };
            let mut text = format!(" {}", LEVELS[level.min(7)]);
            if g.sens_w >= 9 {
                text.push(' ');
                text.push_str(&fmt_sens(s.mean));
            }
            put(buf, g.sens_x, y, &text, g.sens_w, Style::default().fg(t.sensitivity));
        }
    }
    scroll_marker(buf, area, app.bars_scroll, g.rows, n, Style::default().fg(t.accent));
}

#[cfg(test)]
mod tests {
    use crossterm::event::KeyCode;

    use super::*;
    use crate::prune::StrategyKind;
    use crate::ui::fake::{self, Harness, DEMO_PROMPT};
    use crate::ui::TuiOptions;

    #[test]
    fn uniform_marker_shows_on_every_row_wherever_the_bar_ends() {
        let opts = TuiOptions {
            initial_budget: 0.2,
            initial_strategy: StrategyKind::DepthKv,
            initial_sensitivity: Some(fake::sensitivity(24).iter().map(|s| s.mean).collect()),
            prompt: DEMO_PROMPT.to_string(),
            ..TuiOptions::default()
        };
        let mut h = Harness::new(&opts, (200, 50));
        h.load(24, DEMO_PROMPT);
        // Grow layer 20 (below its uniform share) across the marker, one step at a time.
        for _ in 0..20 {
            h.press(KeyCode::Down);
        }
        let mut seen = [false; 2];
        for step in 0..60 {
            let buf = h.draw();
            let g = geometry(h.app.layout().bars.unwrap(), &h.app);
            let b = h.app.split();
            let len = b.prompt_len;
            let col = ((b.uniform[0] * g.bar_w as usize + len / 2) / len).clamp(1, g.bar_w as usize) - 1;
            let x = g.bar_x + col as u16;
            for row in 0..g.rows.min(b.n_layers) {
                let layer = h.app.bars_scroll + row;
                let cell = &buf[(x, g.inner.y + row as u16)];
                assert_eq!(cell.symbol(), "┊", "step {step}, layer {layer}");
                let filled = cell.bg != h.app.theme.bar_empty;
                // Over the fill exactly when the bar covers at least half of the cell.
                let eighths = (b.layers[layer] * g.bar_w as usize * 8 + len / 2) / len;
                assert_eq!(filled, eighths >= 8 * col + 4, "step {step}, layer {layer}");
                if layer == 20 {
                    seen[usize::from(filled)] = true;
                }
            }
            h.press(KeyCode::Right);
        }
        assert_eq!(seen, [true, true], "layer 20's bar crossed the marker");
    }
}
