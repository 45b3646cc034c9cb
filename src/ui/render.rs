//! `render(&App, &mut Frame)`: lays out the screen and draws every panel.

use ratatui::widgets::{Block, Widget};
use ratatui::Frame;

use super::app::{App, Overlay};
use super::layout;
use super::widgets::{bars, footer, header, heatmap, help, menu, panes, popup, status, tabs, tokens};

pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    let mut cursor = None;
    {
        let buf = frame.buffer_mut();
        Block::new().style(app.theme.base()).render(area, buf);
        let l = layout::compute(area, app);
        header::render(app, l.header, buf);
        if let Some(r) = l.tabs {
            tabs::render(app, r, buf);
        }
        if let Some(r) = l.bars {
            bars::render(app, r, buf);
        }
        if let Some(r) = l.heatmap {
            heatmap::render(app, r, buf);
        }
        if let Some(r) = l.tokens {
            tokens::render(app, r, buf);
        }
        if let Some(r) = l.panes {
            panes::render(app, r, buf);
        }
        status::render(app, l.status, buf);
        footer::render(app, l.footer, buf);
        match &app.overlay {
            Overlay::None => {}
            Overlay::Help => help::render(app, area, buf),
            Overlay::Menu { cursor } => menu::render(app, *cursor, area, buf),
            Overlay::Editor { kind, editor } => cursor = popup::render(app, *kind, editor, area, buf),
        }
    }
    if let Some(p) = cursor {
        frame.set_cursor_position(p);
    }
}
