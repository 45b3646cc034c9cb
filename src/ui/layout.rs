//! Where each panel goes. Pure function of the screen size and a little
//! state, shared by rendering and mouse hit-testing.

use ratatui::layout::{Constraint, Layout, Rect};

use super::app::{App, Focus};

/// Below this the panels collapse into tabs.
pub const WIDE_MIN_WIDTH: u16 = 120;
pub const WIDE_MIN_HEIGHT: u16 = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScreenLayout {
    pub compact: bool,
    pub header: Rect,
    /// Tab bar (compact layout only).
    pub tabs: Option<Rect>,
    pub bars: Option<Rect>,
    pub heatmap: Option<Rect>,
    pub tokens: Option<Rect>,
    /// Area of the output panes together (see [`pane_grid`]).
    pub panes: Option<Rect>,
    pub status: Rect,
    pub footer: Rect,
}

pub fn is_compact(area: Rect) -> bool {
    area.width < WIDE_MIN_WIDTH || area.height < WIDE_MIN_HEIGHT
}

pub fn compute(area: Rect, app: &App) -> ScreenLayout {
    let compact = is_compact(area);
    let header_h = if compact { 2 } else { super::widgets::header::height(app, area.width) };
    let tabs_h = if compact { 1 } else { 0 };
    let [header, tabs, body, status, footer] = Layout::vertical([
        Constraint::Length(header_h),
        Constraint::Length(tabs_h),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let mut out = ScreenLayout { compact, header, status, footer, ..Default::default() };
    if compact {
        out.tabs = Some(tabs);
        match app.focus {
            Focus::Budgets => out.bars = Some(body),
            Focus::Heatmap => out.heatmap = Some(body),
            Focus::Tokens => out.tokens = Some(body),
            Focus::Outputs => out.panes = Some(body),
        }
        return out;
    }
    let panes_h = (body.height * 36 / 100).max(8);
    let [top, panes] = Layout::vertical([Constraint::Fill(1), Constraint::Length(panes_h)]).areas(body);
    let bars_w = (area.width * 36 / 100).clamp(44, 84);
    let [bars, right] = Layout::horizontal([Constraint::Length(bars_w), Constraint::Fill(1)]).areas(top);
    // Heatmap: two layers per row (half blocks) + cursor and legend rows + borders.
    let want = (app.n_layers().max(16).div_ceil(2) + 4) as u16;
    let heat_h = want.min(right.height * 65 / 100).max(6.min(right.height));
    let [heatmap, tokens] = Layout::vertical([Constraint::Length(heat_h), Constraint::Fill(1)]).areas(right);
    out.bars = Some(bars);
    out.heatmap = Some(heatmap);
    out.tokens = Some(tokens);
    out.panes = Some(panes);
    out
}

/// Narrowest and lowest a pane may be drawn; below that only the selected
/// pane is shown, filling the area (a pane per "tab").
const PANE_MIN_W: u16 = 18;
const PANE_MIN_H: u16 = 5;

/// Where each pane goes: `(pane index, rect)`. One row of columns when each
/// gets at least `PANE_MIN_W` columns (26 in the compact layout), else
/// balanced rows (4 panes: 2×2; 5: 3+2); when even that leaves panes too
/// small, the selected pane alone.
pub fn pane_grid(area: Rect, app: &App) -> Vec<(usize, Rect)> {
    let n = app.panes.len();
    if n == 0 {
        return Vec::new();
    }
    let min_w = if is_compact_width(area.width) { 26 } else { PANE_MIN_W };
    let max_cols = ((area.width / min_w) as usize).clamp(1, n);
    let rows = n.div_ceil(max_cols);
    let cols = n.div_ceil(rows);
    if area.height / (rows as u16) < PANE_MIN_H || area.width / (cols as u16) < PANE_MIN_W {
        return vec![(app.pane.min(n - 1), area)];
    }
    let row_rects = Layout::vertical(vec![Constraint::Ratio(1, rows as u32); rows]).split(area);
    let mut out = Vec::with_capacity(n);
    for (r, row) in row_rects.iter().enumerate() {
        let first = r * cols;
        let here = cols.min(n - first);
        let cells = Layout::horizontal(vec![Constraint::Ratio(1, here as u32); here]).split(*row);
        out.extend(cells.iter().enumerate().map(|(c, rect)| (first + c, *rect)));
    }
    out
}

/// Panes in one row at 80 columns would be too narrow to read.
fn is_compact_width(width: u16) -> bool {
    width < WIDE_MIN_WIDTH
}

/// Tab labels as drawn, and their widths, for clicks on the tab bar.
pub fn tab_labels() -> [String; 4] {
    Focus::ALL.map(|f| format!(" {} {} ", f.index() + 1, f.title()))
}

/// The tab under column `x` of the tab bar.
pub fn tab_at(tabs: Rect, x: u16) -> Option<Focus> {
    let mut left = tabs.x;
    for (f, label) in Focus::ALL.iter().zip(tab_labels()) {
        let w = label.chars().count() as u16;
        if x >= left && x < left + w {
            return Some(*f);
        }
        left += w + 1; // divider
    }
    None
}
