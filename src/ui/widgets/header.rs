//! Top line(s): model, device, dtype, prompt size, the global budget as a
//! fraction with the token slots and KV MiB it holds vs full (every pruned
//! pane holds the same), the selected pane and the profile loaded last.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::Chip;
use crate::ui::app::App;
use crate::ui::text::{group_digits, mib};

/// Groups of spans kept together when the header wraps. When the last line
/// is short of room, fallbacks are taken in rank order: the slot count (the
/// budget says the same), the run id, device and dtype, the KV memory, the
/// profile name (cut first, then left out), the model name (cut).
fn chips(app: &App) -> Vec<Chip<'static>> {
    let t = &app.theme;
    let v = Style::default().fg(t.fg).add_modifier(Modifier::BOLD);
    let d = t.dim();
    let accent = Style::default().fg(t.accent);
    let mut out = Vec::new();
    out.push(Chip::new(vec![Span::styled("depthkv", accent.add_modifier(Modifier::BOLD))]).drop_at(255));
    match &app.model {
        Some(m) => {
            let name = Span::styled(m.name.clone(), v);
            out.push(
                Chip::new(vec![name.clone(), Span::styled(format!(" · {} · {}", m.device, m.dtype), d)])
                    .or(30, vec![name.clone(), Span::styled(format!(" · {}", m.device), d)])
                    .or(60, vec![name])
                    .cut_to(12)
                    .drop_at(200),
            )
        }
        None => out.push(Chip::new(vec![Span::styled("loading model…", d)]).drop_at(200)),
    }
    let len = app.prompt_len();
    let prompt = if app.awaiting_prefill || app.prompt.is_none() {
        vec![Span::styled("prompt …", d)]
    } else {
        vec![Span::styled("prompt ", d), Span::styled(group_digits(len), v), Span::styled(" tok", d)]
    };
    out.push(Chip::new(prompt).drop_at(150));
    let b = app.split();
    let frac = if b.is_ready() { b.effective_fraction() } else { b.global };
    let mut budget = vec![Span::styled("budget ", d), Span::styled(format!("{:.1}%", frac * 100.0), v)];
    if b.is_ready() && (frac - b.global).abs() > 0.0005 {
        budget.push(Span::styled(format!(" (asked {:.1}%)", b.global * 100.0), d));
    }
    let slots = vec![Span::styled(" · ", d), Span::styled(group_digits(b.total()), v), Span::styled(" slots", d)];
    let kv = app.model.as_ref().map(|m| {
        let per = m.kv_bytes_per_token_layer;
        vec![
            Span::styled(" · KV ", d),
            Span::styled(mib(b.total() * per), v),
            Span::styled(format!("/{} MiB", mib(b.bounds().hi_total() * per)), d),
        ]
    });
    let chip = match (b.is_ready(), kv) {
        (false, _) => Chip::new(budget),
        (true, None) => Chip::new([budget.clone(), slots].concat()).or(10, budget),
        (true, Some(kv)) => {
            Chip::new([budget.clone(), slots, kv.clone()].concat()).or(10, [budget.clone(), kv].concat()).or(50, budget)
        }
    };
    out.push(chip.drop_at(220));
    let pane = app.selected_pane();
    let name = Style::default().fg(t.pane(pane.colour));
    let split = vec![
        Span::styled(format!("pane {}/{} ", app.pane + 1, app.panes.len()), d),
        Span::styled(pane.names()[0].clone(), name),
    ];
    let chip = match &app.profile_name {
        Some(p) => {
            let prefix = [split.clone(), vec![Span::styled(" · profile ", d)]].concat();
            let min = prefix.iter().map(Span::width).sum::<usize>() + 4;
            Chip::new([prefix, vec![Span::styled(p.clone(), accent)]].concat()).cut_to(min).or(70, split)
        }
        None => Chip::new(split),
    };
    out.push(chip.drop_at(210));
    if let Some(id) = app.run_id {
        out.push(Chip::new(vec![Span::styled(format!("run #{id}"), d)]).drop_at(20));
    }
    out
}

fn pack(app: &App, width: u16, max_lines: usize) -> Vec<Line<'static>> {
    let sep = Span::styled(" │ ", Style::default().fg(app.theme.border));
    super::pack_chip_forms(chips(app), width as usize, max_lines, sep)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fake::{Harness, DEMO_PROMPT};
    use crate::ui::text::str_width;
    use crate::ui::TuiOptions;

    fn text(lines: &[Line]) -> Vec<String> {
        lines.iter().map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect()).collect()
    }

    #[test]
    fn narrow_header_cuts_the_profile_name_instead_of_dropping_the_split() {
        let opts = TuiOptions {
            profile_name: Some("sample profile (SmolLM2-135M)".into()),
            prompt: DEMO_PROMPT.to_string(),
            ..TuiOptions::default()
        };
        let mut h = Harness::new(&opts, (80, 24));
        h.load(24, DEMO_PROMPT);
        let wide = text(&pack(&h.app, 199, 2));
        assert!(
            wide.concat().contains("pane 3/3 uniform · snapkv · profile sample profile (SmolLM2-135M)"),
            "{wide:?}"
        );
        let narrow = text(&pack(&h.app, 79, 2));
        assert_eq!(narrow.len(), 2);
        assert!(narrow.iter().all(|l| str_width(l) <= 79), "{narrow:?}");
        // The slot count and the run id go first (the budget percentage says
        // the same; the panes show the run's state), then the name is cut.
        assert_eq!(narrow[1], "budget 25.0% · KV 0.83/3.30 MiB │ pane 3/3 uniform · snapkv · profile sample p…");
        // Narrower still: the pane stays, the profile goes.
        let narrower = text(&pack(&h.app, 60, 2));
        assert!(narrower.concat().contains("pane 3/3 uniform · snapkv"), "{narrower:?}");
    }
}
