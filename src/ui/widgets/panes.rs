//! The three output panes (Full / Uniform / Custom) streaming side by side.
//! The first token where a pruned pane leaves the full-cache continuation is
//! highlighted; quality metrics appear at the bottom once a pane is done, and
//! the run's state (streaming / done / stopped) on the bottom border.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::{panel, put};
use crate::ui::app::Pane;
use crate::ui::app::{App, Focus};
use crate::ui::layout::pane_columns;
use crate::ui::text::{mib, str_width, wrap_items, Wrapped};

fn inner(area: Rect) -> Rect {
    Rect::new(
        area.x.saturating_add(1),
        area.y.saturating_add(1),
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    )
}

/// Text rows of one pane (the metrics take the last one or two inner rows).
fn text_rows(app: &App, pane: Pane, col: Rect) -> usize {
    let i = inner(col);
    i.height.saturating_sub(metric_lines(app, pane, i.width).len() as u16) as usize
}

fn wrap_pane(app: &App, pane: Pane, col: Rect) -> Wrapped {
    let toks = &app.panes[pane.index()].tokens;
    wrap_items(toks.iter().map(|(_, s)| s.as_str()), inner(col).width as usize, false)
}

/// How far back the panes can scroll (lines of the longest pane beyond the view).
pub fn max_scroll(area: Rect, app: &App) -> usize {
    let cols = pane_columns(area);
    Pane::ALL
        .iter()
        .zip(cols)
        .map(|(p, c)| wrap_pane(app, *p, c).lines.len().saturating_sub(text_rows(app, *p, c)))
        .max()
        .unwrap_or(0)
}

/// Index of the first generated token that differs from the Full pane.
pub fn first_diff(app: &App, pane: Pane) -> Option<usize> {
    if pane == Pane::Full {
        return None;
    }
    let full = &app.panes[Pane::Full.index()].tokens;
    let mine = &app.panes[pane.index()].tokens;
    full.iter().zip(mine).position(|(a, b)| a.0 != b.0)
}

fn pane_colour(app: &App, pane: Pane) -> Color {
    match pane {
        Pane::Full => app.theme.pane_full,
        Pane::Uniform => app.theme.pane_uniform,
        Pane::Custom => app.theme.pane_custom,
    }
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    for (pane, col) in Pane::ALL.into_iter().zip(pane_columns(area)) {
        render_pane(app, pane, col, buf);
    }
}

fn render_pane(app: &App, pane: Pane, col: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let focused = app.focus == Focus::Outputs;
    let state = &app.panes[pane.index()];
    let full_slots = app.run_slots[0].max(1);
    let share = 100.0 * app.run_slots[pane.index()] as f64 / full_slots as f64;
    let diff = first_diff(app, pane);
    let name =
        Span::styled(format!(" {pane:?} "), Style::default().fg(pane_colour(app, pane)).add_modifier(Modifier::BOLD));
    let badge_style = Style::default().fg(t.diverge_fg).bg(t.diverge_bg).add_modifier(Modifier::BOLD);
    // Divergence badge and KV share, long and short forms.
    let badge: Option<[Span; 2]> = match diff {
        Some(i) => Some([format!("≠ @{i}"), format!("≠@{i}")].map(|s| Span::styled(s, badge_style))),
        None if pane != Pane::Full && state.metrics.is_some() && !state.tokens.is_empty() => {
            Some(["= full", "=full"].map(|s| Span::styled(s, Style::default().fg(t.ok))))
        }
        None => None,
    };
    let kv: Option<[Span; 2]> =
        app.run_id.map(|_| [format!("{share:.0}% KV"), format!("{share:.0}%")].map(|s| Span::styled(s, t.dim())));
    // The longest title that fits: name, then divergence, then KV share.
    let room = col.width.saturating_sub(2) as usize;
    // (badge form, KV form): long forms first, the KV share goes before the badge.
    let candidates = [(0, Some(0)), (0, Some(1)), (1, Some(1)), (0, None), (1, None)];
    let head = candidates
        .iter()
        .map(|&(b, k)| {
            let badge = badge.as_ref().map(|f| f[b].clone());
            let kv = k.and_then(|k| kv.as_ref().map(|f| f[k].clone()));
            let mut spans = vec![name.clone()];
            for s in badge.into_iter().chain(kv) {
                spans.extend([s, Span::raw(" ")]);
            }
            spans
        })
        .find(|spans| spans.iter().map(Span::width).sum::<usize>() <= room)
        .unwrap_or_else(|| vec![name.clone()]);
    let mut block = panel(Line::from(head), focused, t);
    // The run's state on the bottom border, where it always has room.
    let status = if app.run_id.is_none() {
        None
    } else if state.metrics.is_some() {
        Some("done")
    } else if app.run_stopped {
        Some("stopped")
    } else {
        Some("streaming…")
    };
    if let Some(s) = status.map(|s| format!(" {s} ")).filter(|s| str_width(s) + 2 <= col.width as usize) {
        block = block.title_bottom(Line::styled(s, t.dim()).right_aligned());
    }
    block.render(col, buf);

    let i = inner(col);
    if i.height == 0 || i.width == 0 {
        return;
    }
    let rows = text_rows(app, pane, col);
    let w = wrap_pane(app, pane, col);
    if state.tokens.is_empty() {
        let msg = match (app.run_id, app.awaiting_prefill) {
            (_, true) => "prefilling…",
            (None, false) => "waiting for a run…",
            (Some(_), false) if app.run_stopped => "stopped",
            (Some(_), false) => "…",
        };
        put(buf, i.x, i.y, msg, i.width, t.dim());
    } else {
        let start = w.lines.len().saturating_sub(rows + app.pane_scroll);
        let normal = Style::default().fg(t.fg);
        let hot = Style::default().fg(t.diverge_fg).bg(t.diverge_bg).add_modifier(Modifier::BOLD);
        for (r, line) in w.lines.iter().skip(start).take(rows).enumerate() {
            let spans: Vec<Span> = line
                .iter()
                .map(|s| Span::styled(s.text.clone(), if Some(s.item) == diff { hot } else { normal }))
                .collect();
            Line::from(spans).render(Rect::new(i.x, i.y + r as u16, i.width, 1), buf);
        }
    }

    let lines = metric_lines(app, pane, i.width);
    let top = i.bottom().saturating_sub(lines.len() as u16);
    for (k, line) in lines.into_iter().enumerate() {
        line.render(Rect::new(i.x, top + k as u16, i.width, 1), buf);
    }
}

/// The metrics footer of a pane, packed into one line, or two when narrow.
fn metric_lines(app: &App, pane: Pane, width: u16) -> Vec<Line<'static>> {
    let t = &app.theme;
    let state = &app.panes[pane.index()];
    let n = state.tokens.len();
    let tps = match (&state.metrics, app.run_started) {
        (Some(m), _) => Some(m.tokens_per_second),
        (None, Some(t0)) => {
            let dt = app.clock.saturating_duration_since(t0).as_secs_f64();
            (dt > 0.05 && n > 0).then(|| n as f64 / dt)
        }
        _ => None,
    };
    let bytes = match &state.metrics {
        Some(m) => Some(m.kv_bytes),
        None => app
            .model
            .as_ref()
            .filter(|_| app.run_id.is_some())
            .map(|m| app.run_slots[pane.index()] * m.kv_bytes_per_token_layer),
    };
    let v = Style::default().fg(t.fg).add_modifier(Modifier::BOLD);
    let d = t.dim();
    let mut chips: Vec<Vec<Span<'static>>> = Vec::new();
    if pane != Pane::Full {
        match &state.metrics {
            Some(m) => {
                chips.push(vec![Span::styled("KL ", d), Span::styled(format!("{:.3}", m.kl_to_full), v)]);
                chips.push(vec![
                    Span::styled("top-1 ", d),
                    Span::styled(format!("{:.0}%", 100.0 * m.top1_agreement), v),
                ]);
            }
            None => chips.push(vec![Span::styled("KL …", d)]),
        }
    } else if n > 0 {
        chips.push(vec![Span::styled(format!("{n}"), v), Span::styled(" tok", d)]);
    }
    if let Some(tps) = tps {
        chips.push(vec![Span::styled(format!("{tps:.1}"), v), Span::styled(" tok/s", d)]);
    }
    if let Some(b) = bytes {
        chips.push(vec![Span::styled("KV ", d), Span::styled(mib(b), v), Span::styled(" MiB", d)]);
    }
    super::pack_chips(chips, width as usize, 2, Span::styled(" · ", d))
}
