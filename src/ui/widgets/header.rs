//! Top line(s): model, device, dtype, prompt size, global budget as fraction,
//! token slots and KV MiB held vs full, strategy and profile.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::ui::app::App;
use crate::ui::text::{group_digits, mib};

/// Groups of spans that are kept together when the header wraps.
fn chips(app: &App) -> Vec<Vec<Span<'static>>> {
    let t = &app.theme;
    let v = Style::default().fg(t.fg).add_modifier(Modifier::BOLD);
    let d = t.dim();
    let mut out = Vec::new();
    out.push(vec![Span::styled("depthkv", Style::default().fg(t.accent).add_modifier(Modifier::BOLD))]);
    match &app.model {
        Some(m) => {
            out.push(vec![Span::styled(m.name.clone(), v), Span::styled(format!(" · {} · {}", m.device, m.dtype), d)])
        }
        None => out.push(vec![Span::styled("loading model…", d)]),
    }
    let len = app.prompt_len();
    if app.awaiting_prefill || app.prompt.is_none() {
        out.push(vec![Span::styled("prompt …", d)]);
    } else {
        out.push(vec![Span::styled("prompt ", d), Span::styled(group_digits(len), v), Span::styled(" tok", d)]);
    }
    let b = &app.budgets;
    let frac = if b.is_ready() { b.effective_fraction() } else { b.global };
    let mut budget = vec![Span::styled("budget ", d), Span::styled(format!("{:.1}%", frac * 100.0), v)];
    if b.is_ready() && (frac - b.global).abs() > 0.0005 {
        budget.push(Span::styled(format!(" (asked {:.1}%)", b.global * 100.0), d));
    }
    if b.is_ready() {
        budget.push(Span::styled(" · ", d));
        budget.push(Span::styled(group_digits(b.custom_slots()), v));
        budget.push(Span::styled(" slots", d));
        if let Some(m) = &app.model {
            let per = m.kv_bytes_per_token_layer;
            budget.push(Span::styled(" · KV ", d));
            budget.push(Span::styled(mib(b.custom_slots() * per), v));
            budget.push(Span::styled(format!("/{} MiB", mib(b.prompt_len * b.n_layers * per)), d));
        }
    }
    out.push(budget);
    let mut strat = vec![Span::styled("split ", d), Span::styled(b.label(), Style::default().fg(t.accent))];
    if let Some(p) = &app.profile_name {
        strat.push(Span::styled(" · profile ", d));
        strat.push(Span::styled(p.clone(), Style::default().fg(t.accent)));
    }
    out.push(strat);
    if let Some(id) = app.run_id {
        out.push(vec![Span::styled(format!("run #{id}"), d)]);
    }
    out
}

fn pack(app: &App, width: u16, max_lines: usize) -> Vec<Line<'static>> {
    let sep = Span::styled(" │ ", Style::default().fg(app.theme.border));
    super::pack_chips(chips(app), width as usize, max_lines, sep)
}

/// Lines the header needs at this width (1 or 2).
pub fn height(app: &App, width: u16) -> u16 {
    pack(app, width, 2).len().clamp(1, 2) as u16
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    for (r, line) in pack(app, area.width.saturating_sub(1), area.height as usize).into_iter().enumerate() {
        let line = Line::from([vec![Span::raw(" ")], line.spans].concat());
        line.render(Rect::new(area.x, area.y + r as u16, area.width, 1), buf);
    }
}
