//! The variants menu (`a`): what can be added and what the selected pane
//! can change, as data the popup draws and `update` acts on.

use super::app::App;
use super::pane::{MAX_PANES, MIN_PANES};

/// A kind of pane the menu adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddKind {
    Full,
    Uniform,
    Pyramid,
    DepthKv,
    /// A copy of the selected pane's split, to edit by hand.
    Manual,
    /// A profile file (opens the import path editor).
    Profile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuItem {
    Add(AddKind),
    Scorer,
    DecodeEvict,
    Precision,
    Heads,
    Remove,
}

impl MenuItem {
    /// Changing the pane keeps the menu open, so the change can be seen.
    pub fn keeps_menu_open(self) -> bool {
        matches!(self, MenuItem::Scorer | MenuItem::DecodeEvict | MenuItem::Precision | MenuItem::Heads)
    }
}

/// One line of the menu.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub item: MenuItem,
    pub key: char,
    pub label: String,
    /// Why the entry cannot be used now.
    pub disabled: Option<&'static str>,
}

/// A line of the menu: a heading or an entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Heading(String),
    Entry(Entry),
}

/// The menu's lines, top to bottom.
pub fn lines(app: &App) -> Vec<Line> {
    let n = app.panes.len();
    let full_room = (n >= MAX_PANES).then_some("6 panes at most: remove one first");
    let pane = app.selected_pane();
    let pruned = (pane.is_full()).then_some("the full pane keeps every token");
    let no_sens = app.sensitivity.is_none().then_some("needs sensitivity: calibrate (c) or import a profile");
    let add = |kind, key, label: &str, extra: Option<&'static str>| {
        Line::Entry(Entry { item: MenuItem::Add(kind), key, label: label.to_string(), disabled: full_room.or(extra) })
    };
    let names = pane.names();
    let mut out = vec![
        Line::Heading(format!("Add a pane ({n} of {MIN_PANES}–{MAX_PANES})")),
        add(AddKind::Full, 'f', "full cache (the reference)", None),
        add(AddKind::Uniform, 'u', "uniform split", None),
        add(AddKind::Pyramid, 'p', "pyramid split (PyramidKV)", None),
        add(AddKind::DepthKv, 'd', "DepthKV split (sensitivity)", no_sens),
        add(AddKind::Manual, 'm', "manual: copy of the selected split", None),
        add(AddKind::Profile, 'i', "imported profile…", None),
        Line::Heading(format!("Selected pane #{}: {}", app.pane + 1, names[0])),
    ];
    out.push(Line::Entry(Entry {
        item: MenuItem::Scorer,
        key: 's',
        label: format!("token scorer: {} (next)", pane.scorer),
        disabled: pruned,
    }));
    out.push(Line::Entry(Entry {
        item: MenuItem::DecodeEvict,
        key: 'v',
        label: format!("decode-phase eviction: {}", if pane.decode_evict { "on" } else { "off" }),
        disabled: pruned,
    }));
    out.push(Line::Entry(Entry {
        item: MenuItem::Precision,
        key: 'k',
        label: format!("KV storage: {} (next)", pane.precision),
        disabled: pruned,
    }));
    let heads = match pane.heads {
        crate::prune::HeadSplit::Even => "even (next: ada)".to_string(),
        crate::prune::HeadSplit::Ada { safeguard } => format!("ada, safeguard {safeguard} (next: even)"),
    };
    out.push(Line::Entry(Entry {
        item: MenuItem::Heads,
        key: 'h',
        label: format!("KV head split: {heads}"),
        disabled: pruned,
    }));
    out.push(Line::Entry(Entry {
        item: MenuItem::Remove,
        key: 'x',
        label: "remove this pane".to_string(),
        disabled: (n <= MIN_PANES).then_some("2 panes at least"),
    }));
    out
}

/// The entries only, in order (what the cursor moves over).
pub fn entries(app: &App) -> Vec<Entry> {
    lines(app)
        .into_iter()
        .filter_map(|l| match l {
            Line::Entry(e) => Some(e),
            Line::Heading(_) => None,
        })
        .collect()
}
