//! The prompt as the selected layer sees it: kept tokens in full colour,
//! tokens some KV heads dropped in the "partial" colour, tokens every head
//! dropped dimmed and struck through (the legend on the bottom border says
//! so). The cursor is the heatmap column.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{first_fitting, panel, scroll_marker, title};
use crate::ui::app::{App, Focus};
use crate::ui::text::{str_width, wrap_items, Wrapped};

fn inner(area: Rect) -> Rect {
    Rect::new(
        area.x.saturating_add(1),
        area.y.saturating_add(1),
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    )
}

pub fn text_rows(area: Rect) -> usize {
    inner(area).height as usize
}

/// The prompt wrapped to the panel width.
pub fn wrap(area: Rect, app: &App) -> Wrapped {
    let Some(p) = &app.prompt else {
        return Wrapped::default();
    };
    wrap_items(p.pieces.iter().map(String::as_str), inner(area).width as usize, true)
}

/// Prompt position under a click.
pub fn position_at(area: Rect, app: &App, x: u16, y: u16) -> Option<usize> {
    let i = inner(area);
    if !i.contains(ratatui::layout::Position::new(x, y)) {
        return None;
    }
    let w = wrap(area, app);
    let line = w.lines.get(app.token_scroll + (y - i.y) as usize)?;
    let mut col = i.x;
    for seg in line {
        let sw = str_width(&seg.text) as u16;
        if x < col + sw {
            return Some(seg.item);
        }
        col += sw;
    }
    line.last().map(|s| s.item)
}

/// Title candidates, longest first: the layer's budget (slots per KV head,
/// from the occupancy the view shows) and how many positions at least one
/// head keeps, which is more when heads select differently.
fn titles(app: &App) -> Vec<String> {
    let layer = app.selected;
    let len = app.prompt_len();
    let state = app.selected_pane();
    let pane = format!("#{} {}", app.pane + 1, state.names()[1]);
    let mut out = Vec::new();
    if let (Some(occ), Some(share)) = (&state.occupancy, state.share.get(layer)) {
        let heads = occ.kept.get(layer).map(|h| h.iter().map(Vec::len)).into_iter().flatten();
        let (lo, hi) = heads.fold((usize::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
        let any = share.iter().filter(|v| **v > 0.0).count();
        if hi > 0 {
            let budget = if lo == hi { format!("{hi}/{len}") } else { format!("{lo}–{hi}/{len}") };
            let pct = 100.0 * hi as f64 / len.max(1) as f64;
            out.push(format!(
                "Tokens · layer {layer} · {pane} · budget {budget} ({pct:.1}%) per head · {any} positions kept by any head"
            ));
            out.push(format!(
                "Tokens · layer {layer} · {pane} · budget {budget} ({pct:.1}%) per head · {any} by any head"
            ));
            out.push(format!("Tokens · layer {layer} · budget {budget} ({pct:.1}%) per head · {any} by any head"));
            out.push(format!("Tokens · L{layer} · {budget} per head · {any} by any head"));
            out.push(format!("Tokens · L{layer} · {budget} per head"));
        }
    }
    out.push(format!("Tokens · layer {layer}"));
    out.push(format!("Tokens · L{layer}"));
    out
}

/// The legend of the token styles, as wide as fits.
fn legend(app: &App, room: usize) -> Option<Line<'static>> {
    let s = styles(app);
    let sep = || Span::styled(" · ", app.theme.dim());
    let options = [["kept by every head", "by some heads", "by none (evicted)"], ["all heads", "some", "evicted"]];
    options.into_iter().find_map(|[all, some, none]| {
        let line = Line::from(vec![
            Span::raw(" "),
            Span::styled(all, s.kept),
            sep(),
            Span::styled(some, s.partial),
            sep(),
            Span::styled(none, s.evicted),
            Span::raw(" "),
        ]);
        (line.width() <= room).then_some(line)
    })
}

struct Styles {
    kept: Style,
    partial: Style,
    evicted: Style,
}

fn styles(app: &App) -> Styles {
    let t = &app.theme;
    Styles {
        kept: Style::default().fg(t.fg),
        partial: Style::default().fg(t.partial),
        evicted: Style::default().fg(t.evicted).add_modifier(Modifier::CROSSED_OUT | Modifier::DIM),
    }
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let focused = app.focus == Focus::Tokens;
    let share = app.selected_pane().share.get(app.selected);
    let len = app.prompt_len();
    let pos = (len > 0).then(|| format!(" pos {}/{} ", app.cursor, len));
    let pos_w = pos.as_deref().map_or(0, str_width);
    // Borders, the title's own padding and a gap before the position.
    let room = (area.width as usize).saturating_sub(2 + 2 + pos_w + usize::from(pos_w > 0));
    let head = first_fitting(&titles(app), room).unwrap_or_default();
    let mut block = panel(title(head, focused, t), focused, t);
    if let Some(pos) = pos {
        block = block.title(Line::styled(pos, t.dim()).right_aligned());
    }
    if share.is_some() {
        if let Some(l) = legend(app, (area.width as usize).saturating_sub(4)) {
            block = block.title_bottom(l);
        }
    }
    block.render(area, buf);
    let i = inner(area);
    let Some(_) = &app.prompt else {
        Paragraph::new("waiting for the prompt prefill…").style(t.dim()).render(i, buf);
        return;
    };
    let w = wrap(area, app);
    let rows = i.height as usize;
    let scroll = app.token_scroll.min(w.lines.len().saturating_sub(rows));
    let Styles { kept, partial, evicted } = styles(app);
    for (r, line) in w.lines.iter().skip(scroll).take(rows).enumerate() {
        let spans: Vec<Span> = line
            .iter()
            .map(|seg| {
                let style = if seg.item == app.cursor {
                    t.cursor().add_modifier(Modifier::BOLD)
                } else {
                    match share.and_then(|s| s.get(seg.item)) {
                        None => kept,
                        Some(v) if *v >= 0.999 => kept,
                        Some(v) if *v > 0.0 => partial,
                        Some(_) => evicted,
                    }
                };
                Span::styled(seg.text.clone(), style)
            })
            .collect();
        Line::from(spans).render(Rect::new(i.x, i.y + r as u16, i.width, 1), buf);
    }
    scroll_marker(buf, area, scroll, rows, w.lines.len(), Style::default().fg(t.accent));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::protocol::Event;
    use crate::ui::fake::{self, Harness, DEMO_PROMPT};
    use crate::ui::TuiOptions;

    #[test]
    fn title_gives_the_per_head_budget_and_the_positions_any_head_keeps() {
        let opts = TuiOptions { initial_budget: 0.2, prompt: DEMO_PROMPT.to_string(), ..TuiOptions::default() };
        let mut h = Harness::new(&opts, (200, 50));
        let snap = h.load(12, DEMO_PROMPT);
        let run = h.engine.last_run().unwrap();
        let id = h.app.selected_pane().id;
        let custom = run.layers(id).unwrap();
        let occ = fake::occupancy(&snap, &custom);
        h.emit(Event::Occupancy { run_id: run.run_id, variant: id, occupancy: occ });
        let len = snap.pieces.len();
        let any = h.app.selected_pane().share[0].iter().filter(|v| **v > 0.0).count();
        assert!(any > custom[0], "the fake's heads select differently");
        let pct = 100.0 * custom[0] as f64 / len as f64;
        assert_eq!(
            titles(&h.app)[0],
            format!(
                "Tokens · layer 0 · #3 uniform·snapkv · budget {}/{len} ({pct:.1}%) per head · {any} positions kept by any head",
                custom[0]
            )
        );
    }
}
