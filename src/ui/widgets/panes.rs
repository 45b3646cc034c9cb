//! The output panes streaming side by side, one per variant. The first
//! token where a pruned pane leaves the full-cache continuation is
//! highlighted; quality metrics appear at the bottom once a pane is done, and
//! the run's state (streaming / done / cached / stopped) on the bottom border.
//! The selected pane (whose split the bars edit) is marked `▶` and framed
//! in its colour.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Widget};

use super::put;
use crate::ui::app::{App, Focus, PaneState};
use crate::ui::layout::pane_grid;
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
fn text_rows(app: &App, pane: usize, col: Rect) -> usize {
    let i = inner(col);
    i.height.saturating_sub(metric_lines(app, pane, i.width).len() as u16) as usize
}

fn wrap_pane(app: &App, pane: usize, col: Rect) -> Wrapped {
    let toks = &app.panes[pane].tokens;
    wrap_items(toks.iter().map(|(_, s)| s.as_str()), inner(col).width as usize, false)
}

/// How far back the panes can scroll (lines of the longest pane beyond the view).
pub fn max_scroll(area: Rect, app: &App) -> usize {
    pane_grid(area, app)
        .into_iter()
        .map(|(p, c)| wrap_pane(app, p, c).lines.len().saturating_sub(text_rows(app, p, c)))
        .max()
        .unwrap_or(0)
}

/// Index of the first generated token where pane `pane` differs from the
/// full continuation (`None` for full panes, or while they agree).
pub fn first_diff(app: &App, pane: usize) -> Option<usize> {
    let p = app.panes.get(pane)?;
    if p.is_full() {
        return None;
    }
    app.full_tokens().iter().zip(&p.tokens).position(|(a, b)| a.0 != b.0)
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    for (pane, col) in pane_grid(area, app) {
        render_pane(app, pane, col, buf);
    }
}

/// The title: marker and number, variant name, divergence, KV share, in the
/// longest form that fits.
fn title(app: &App, pane: usize, room: usize) -> Line<'static> {
    let t = &app.theme;
    let state = &app.panes[pane];
    let colour = t.pane(state.colour);
    let selected = pane == app.pane;
    let marker = if selected { "▶" } else { " " };
    let names = state.names();
    let name_style = Style::default().fg(colour).add_modifier(Modifier::BOLD);
    let name = |k: usize| Span::styled(format!("{marker}{} {} ", pane + 1, names[k]), name_style);
    let full_slots = state.split.bounds().hi_total();
    let share = 100.0 * state.slots as f64 / full_slots.max(1) as f64;
    let badge_style = Style::default().fg(t.diverge_fg).bg(t.diverge_bg).add_modifier(Modifier::BOLD);
    let diff = first_diff(app, pane);
    // Divergence badge and KV share, long and short forms.
    let badge: Option<[Span; 2]> = match diff {
        Some(i) => Some([format!("≠ @{i}"), format!("≠@{i}")].map(|s| Span::styled(s, badge_style))),
        None if !state.is_full() && state.metrics.is_some() && !state.tokens.is_empty() => {
            Some(["= full", "=full"].map(|s| Span::styled(s, Style::default().fg(t.ok))))
        }
        None => None,
    };
    let kv: Option<[Span; 2]> =
        app.run_id.map(|_| [format!("{share:.0}% KV"), format!("{share:.0}%")].map(|s| Span::styled(s, t.dim())));
    // (name form, badge form, KV form): long forms first; the KV share goes
    // before the badge, the long name before both.
    let candidates = [
        (0, Some(0), Some(0)),
        (0, Some(0), Some(1)),
        (0, Some(1), Some(1)),
        (1, Some(0), Some(1)),
        (1, Some(1), Some(1)),
        (1, Some(1), None),
        (1, None, None),
    ];
    let spans = candidates
        .iter()
        .map(|&(n, b, k)| {
            let badge = b.and_then(|b| badge.as_ref().map(|f| f[b].clone()));
            let kv = k.and_then(|k| kv.as_ref().map(|f| f[k].clone()));
            let mut spans = vec![name(n)];
            for s in badge.into_iter().chain(kv) {
                spans.extend([s, Span::raw(" ")]);
            }
            spans
        })
        .find(|spans| spans.iter().map(Span::width).sum::<usize>() <= room)
        .unwrap_or_else(|| vec![name(1)]);
    Line::from(spans)
}

fn render_pane(app: &App, pane: usize, col: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let focused = app.focus == Focus::Outputs;
    let state = &app.panes[pane];
    let selected = pane == app.pane;
    let border = if selected { Style::default().fg(t.pane(state.colour)) } else { t.border(focused) };
    let mut block = Block::bordered()
        .border_type(if focused && selected { BorderType::Thick } else { BorderType::Rounded })
        .border_style(border)
        .title(title(app, pane, col.width.saturating_sub(2) as usize))
        .style(t.base());
    // The run's state on the bottom border, where it always has room.
    let status = if app.run_id.is_none() {
        None
    } else if let Some(m) = &state.metrics {
        Some(if m.cached { " done · cached " } else { " done " })
    } else if app.run_stopped {
        Some(" stopped ")
    } else {
        Some(" streaming… ")
    };
    if let Some(s) = status.filter(|s| str_width(s) + 2 <= col.width as usize) {
        block = block.title_bottom(Line::styled(s, t.dim()).right_aligned());
    }
    block.render(col, buf);

    let i = inner(col);
    if i.height == 0 || i.width == 0 {
        return;
    }
    let rows = text_rows(app, pane, col);
    if state.tokens.is_empty() {
        let msg = match (app.run_id, app.awaiting_prefill) {
            (_, true) => "prefilling…",
            (None, false) => "waiting for a run…",
            (Some(_), false) if app.run_stopped => "stopped",
            (Some(_), false) => "…",
        };
        if rows > 0 {
            put(buf, i.x, i.y, msg, i.width, t.dim());
        }
    } else {
        let w = wrap_pane(app, pane, col);
        let diff = first_diff(app, pane);
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

    let mut lines = metric_lines(app, pane, i.width);
    lines.truncate(i.height as usize);
    let top = i.bottom().saturating_sub(lines.len() as u16);
    for (k, line) in lines.into_iter().enumerate() {
        line.render(Rect::new(i.x, top + k as u16, i.width, 1), buf);
    }
}

/// Decoding speed: the session's figure once done, else measured live.
fn tokens_per_second(app: &App, state: &PaneState) -> Option<f64> {
    let n = state.tokens.len();
    match (&state.metrics, app.run_started) {
        (Some(m), _) => Some(m.tokens_per_second),
        (None, Some(t0)) => {
            let dt = app.clock.saturating_duration_since(t0).as_secs_f64();
            (dt > 0.05 && n > 0).then(|| n as f64 / dt)
        }
        _ => None,
    }
}

/// The metrics footer of a pane, packed into one line, or two when narrow
/// and tall enough.
fn metric_lines(app: &App, pane: usize, width: u16) -> Vec<Line<'static>> {
    let t = &app.theme;
    let state = &app.panes[pane];
    let n = state.tokens.len();
    let bytes = match &state.metrics {
        Some(m) => Some(m.kv_bytes),
        None => app.model.as_ref().filter(|_| app.run_id.is_some()).map(|m| state.slots * m.kv_bytes_per_token_layer),
    };
    let v = Style::default().fg(t.fg).add_modifier(Modifier::BOLD);
    let d = t.dim();
    let mut chips: Vec<Vec<Span<'static>>> = Vec::new();
    if !state.is_full() {
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
    if let Some(tps) = tokens_per_second(app, state) {
        chips.push(vec![Span::styled(format!("{tps:.1}"), v), Span::styled(" tok/s", d)]);
    }
    if let Some(b) = bytes {
        chips.push(vec![Span::styled("KV ", d), Span::styled(mib(b), v), Span::styled(" MiB", d)]);
    }
    super::pack_chips(chips, width as usize, 2, Span::styled(" · ", d))
}
