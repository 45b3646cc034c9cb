//! Status line: progress of long jobs, then the latest message (or what the
//! engine is doing).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::session::protocol::Job;
use crate::ui::app::{App, Level};

fn job_name(job: Job) -> &'static str {
    match job {
        Job::LoadModel => "loading model",
        Job::Prefill => "prefill",
        Job::Calibrate => "calibrating",
    }
}

/// "▕████▌    ▏" of `width` cells.
pub fn gauge(done: usize, total: usize, width: usize) -> String {
    let eighths = (done.min(total) * width * 8).checked_div(total).unwrap_or(0);
    let mut s = String::from("▕");
    for c in 0..width {
        let e = eighths.saturating_sub(c * 8).min(8);
        s.push_str(["", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"][e]);
        if e == 0 {
            s.push(' ');
        }
    }
    s.push('▏');
    s
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let mut spans = vec![Span::raw(" ")];
    for p in &app.progress {
        spans.push(Span::styled(format!("{} ", job_name(p.job)), Style::default().fg(t.gauge)));
        if p.total > 0 {
            spans.push(Span::styled(gauge(p.done, p.total, 12), Style::default().fg(t.gauge)));
            spans.push(Span::styled(format!(" {}/{}  ", p.done, p.total), t.dim()));
        } else {
            spans.push(Span::styled("…  ", t.dim()));
        }
    }
    if let Some(m) = app.current_message() {
        let (tag, colour) = match m.level {
            Level::Info => ("", t.fg),
            Level::Warn => ("warning: ", t.warn),
            Level::Error => ("error: ", t.error),
        };
        if !tag.is_empty() {
            spans.push(Span::styled(tag, Style::default().fg(colour).add_modifier(Modifier::BOLD)));
        }
        spans.push(Span::styled(m.text.clone(), Style::default().fg(colour)));
    } else if app.progress.is_empty() {
        let text = if app.rerun_at.is_some() {
            "budgets changed: re-running shortly…".to_string()
        } else if app.streaming() {
            let n = app.panes.iter().map(|p| p.tokens.len()).max().unwrap_or(0);
            format!("generating: {n}/{} tokens", app.params.max_new_tokens)
        } else if app.run_id.is_some() {
            "ready: drag a bar or press ←/→ to change a layer's budget".to_string()
        } else {
            String::new()
        };
        spans.push(Span::styled(text, t.dim()));
    }
    Line::from(spans).render(area, buf);
}
