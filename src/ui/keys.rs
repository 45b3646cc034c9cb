//! Key bindings: named actions, key specs ("ctrl-c", "shift-left", "+"), the
//! built-in defaults and user overrides from `keys.toml`.

use std::collections::BTreeMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::config::KeysFile;

/// Everything a key can be bound to. The snake_case name is what `keys.toml` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyAction {
    Quit,
    Help,
    FocusNext,
    FocusPrev,
    FocusBudgets,
    FocusHeatmap,
    FocusTokens,
    FocusOutputs,
    Up,
    Down,
    Left,
    Right,
    LeftCoarse,
    RightCoarse,
    PageUp,
    PageDown,
    First,
    Last,
    Lock,
    ResetUniform,
    ResetPyramid,
    ResetDepthKv,
    BudgetUp,
    BudgetDown,
    HeatmapMode,
    Calibrate,
    Export,
    Import,
    EditPrompt,
    Rerun,
    Cancel,
    VariantMenu,
    RemovePane,
    PrevPane,
    NextPane,
    CycleScorer,
    ToggleDecodeEvict,
}

/// Groups for the help overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyGroup {
    General,
    Navigate,
    Budget,
    Panes,
    Engine,
}

impl KeyGroup {
    /// Help order: Navigate + General fill one column, Budgets, Panes and
    /// Engine the other.
    pub const ALL: [KeyGroup; 5] =
        [KeyGroup::Navigate, KeyGroup::General, KeyGroup::Budget, KeyGroup::Panes, KeyGroup::Engine];
    pub fn title(self) -> &'static str {
        match self {
            KeyGroup::General => "General",
            KeyGroup::Navigate => "Navigate",
            KeyGroup::Budget => "Budgets",
            KeyGroup::Panes => "Panes",
            KeyGroup::Engine => "Engine & profiles",
        }
    }
}

impl KeyAction {
    pub const ALL: [KeyAction; 37] = [
        KeyAction::Quit,
        KeyAction::Help,
        KeyAction::FocusNext,
        KeyAction::FocusPrev,
        KeyAction::FocusBudgets,
        KeyAction::FocusHeatmap,
        KeyAction::FocusTokens,
        KeyAction::FocusOutputs,
        KeyAction::Up,
        KeyAction::Down,
        KeyAction::Left,
        KeyAction::Right,
        KeyAction::LeftCoarse,
        KeyAction::RightCoarse,
        KeyAction::PageUp,
        KeyAction::PageDown,
        KeyAction::First,
        KeyAction::Last,
        KeyAction::Lock,
        KeyAction::ResetUniform,
        KeyAction::ResetPyramid,
        KeyAction::ResetDepthKv,
        KeyAction::BudgetUp,
        KeyAction::BudgetDown,
        KeyAction::HeatmapMode,
        KeyAction::Calibrate,
        KeyAction::Export,
        KeyAction::Import,
        KeyAction::EditPrompt,
        KeyAction::Rerun,
        KeyAction::Cancel,
        KeyAction::VariantMenu,
        KeyAction::RemovePane,
        KeyAction::PrevPane,
        KeyAction::NextPane,
        KeyAction::CycleScorer,
        KeyAction::ToggleDecodeEvict,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KeyAction::Quit => "quit",
            KeyAction::Help => "help",
            KeyAction::FocusNext => "focus_next",
            KeyAction::FocusPrev => "focus_prev",
            KeyAction::FocusBudgets => "focus_budgets",
            KeyAction::FocusHeatmap => "focus_heatmap",
            KeyAction::FocusTokens => "focus_tokens",
            KeyAction::FocusOutputs => "focus_outputs",
            KeyAction::Up => "up",
            KeyAction::Down => "down",
            KeyAction::Left => "left",
            KeyAction::Right => "right",
            KeyAction::LeftCoarse => "left_coarse",
            KeyAction::RightCoarse => "right_coarse",
            KeyAction::PageUp => "page_up",
            KeyAction::PageDown => "page_down",
            KeyAction::First => "first",
            KeyAction::Last => "last",
            KeyAction::Lock => "lock",
            KeyAction::ResetUniform => "reset_uniform",
            KeyAction::ResetPyramid => "reset_pyramid",
            KeyAction::ResetDepthKv => "reset_depthkv",
            KeyAction::BudgetUp => "budget_up",
            KeyAction::BudgetDown => "budget_down",
            KeyAction::HeatmapMode => "heatmap_mode",
            KeyAction::Calibrate => "calibrate",
            KeyAction::Export => "export",
            KeyAction::Import => "import",
            KeyAction::EditPrompt => "edit_prompt",
            KeyAction::Rerun => "rerun",
            KeyAction::Cancel => "cancel",
            KeyAction::VariantMenu => "variant_menu",
            KeyAction::RemovePane => "remove_pane",
            KeyAction::PrevPane => "prev_pane",
            KeyAction::NextPane => "next_pane",
            KeyAction::CycleScorer => "cycle_scorer",
            KeyAction::ToggleDecodeEvict => "toggle_decode_evict",
        }
    }

    pub fn from_name(name: &str) -> Option<KeyAction> {
        let wanted = name.trim().to_ascii_lowercase().replace('-', "_");
        KeyAction::ALL.into_iter().find(|a| a.name() == wanted)
    }

    /// One line for the help overlay.
    pub fn description(self) -> &'static str {
        match self {
            KeyAction::Quit => "quit",
            KeyAction::Help => "this help",
            KeyAction::FocusNext => "next panel / tab",
            KeyAction::FocusPrev => "previous panel / tab",
            KeyAction::FocusBudgets => "layer budgets panel",
            KeyAction::FocusHeatmap => "heatmap panel",
            KeyAction::FocusTokens => "token view panel",
            KeyAction::FocusOutputs => "output panes",
            KeyAction::Up => "layer up / scroll up",
            KeyAction::Down => "layer down / scroll down",
            KeyAction::Left => "budget − / move left",
            KeyAction::Right => "budget + / move right",
            KeyAction::LeftCoarse => "less budget (coarse)",
            KeyAction::RightCoarse => "more budget (coarse)",
            KeyAction::PageUp => "page up",
            KeyAction::PageDown => "page down",
            KeyAction::First => "first layer / top",
            KeyAction::Last => "last layer / bottom",
            KeyAction::Lock => "lock / unlock layer",
            KeyAction::ResetUniform => "pane's split: uniform",
            KeyAction::ResetPyramid => "pane's split: pyramid",
            KeyAction::ResetDepthKv => "pane's split: DepthKV",
            KeyAction::BudgetUp => "raise global budget",
            KeyAction::BudgetDown => "lower global budget",
            KeyAction::HeatmapMode => "cycle the heatmap views",
            KeyAction::Calibrate => "calibrate sensitivity",
            KeyAction::Export => "export profile",
            KeyAction::Import => "import profile",
            KeyAction::EditPrompt => "edit prompt",
            KeyAction::Rerun => "re-run now",
            KeyAction::Cancel => "stop generation / close",
            KeyAction::VariantMenu => "variants menu (add…)",
            KeyAction::RemovePane => "remove selected pane",
            KeyAction::PrevPane => "select previous pane",
            KeyAction::NextPane => "select next pane",
            KeyAction::CycleScorer => "pane's token scorer",
            KeyAction::ToggleDecodeEvict => "pane's decode eviction",
        }
    }

    pub fn group(self) -> KeyGroup {
        use KeyAction::*;
        match self {
            Quit | Help => KeyGroup::General,
            FocusNext | FocusPrev | FocusBudgets | FocusHeatmap | FocusTokens | FocusOutputs | Up | Down | PageUp
            | PageDown | First | Last | HeatmapMode => KeyGroup::Navigate,
            Left | Right | LeftCoarse | RightCoarse | Lock | BudgetUp | BudgetDown => KeyGroup::Budget,
            VariantMenu | RemovePane | PrevPane | NextPane | ResetUniform | ResetPyramid | ResetDepthKv
            | CycleScorer | ToggleDecodeEvict => KeyGroup::Panes,
            Calibrate | Export | Import | EditPrompt | Rerun | Cancel => KeyGroup::Engine,
        }
    }

    fn default_keys(self) -> &'static [&'static str] {
        match self {
            KeyAction::Quit => &["q", "ctrl-c"],
            KeyAction::Help => &["?", "f1"],
            KeyAction::FocusNext => &["tab"],
            KeyAction::FocusPrev => &["backtab"],
            KeyAction::FocusBudgets => &["1"],
            KeyAction::FocusHeatmap => &["2"],
            KeyAction::FocusTokens => &["3"],
            KeyAction::FocusOutputs => &["4"],
            KeyAction::Up => &["up"],
            KeyAction::Down => &["down"],
            KeyAction::Left => &["left"],
            KeyAction::Right => &["right"],
            KeyAction::LeftCoarse => &["shift-left"],
            KeyAction::RightCoarse => &["shift-right"],
            KeyAction::PageUp => &["pageup"],
            KeyAction::PageDown => &["pagedown"],
            KeyAction::First => &["home"],
            KeyAction::Last => &["end"],
            KeyAction::Lock => &["l"],
            KeyAction::ResetUniform => &["u"],
            KeyAction::ResetPyramid => &["p"],
            KeyAction::ResetDepthKv => &["d"],
            KeyAction::BudgetUp => &["+", "="],
            KeyAction::BudgetDown => &["-", "_"],
            KeyAction::HeatmapMode => &["h"],
            KeyAction::Calibrate => &["c"],
            KeyAction::Export => &["e"],
            KeyAction::Import => &["i"],
            KeyAction::EditPrompt => &["o"],
            KeyAction::Rerun => &["r"],
            KeyAction::Cancel => &["esc"],
            KeyAction::VariantMenu => &["a"],
            KeyAction::RemovePane => &["x"],
            KeyAction::PrevPane => &["["],
            KeyAction::NextPane => &["]"],
            KeyAction::CycleScorer => &["s"],
            KeyAction::ToggleDecodeEvict => &["v"],
        }
    }
}

impl fmt::Display for KeyAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A key with its modifiers, normalised so that a typed `A` and `shift-a`
/// compare equal and the terminal's extra SHIFT on `?`/`+` does not matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySpec {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid key '{0}': expected e.g. \"q\", \"ctrl-c\", \"shift-left\", \"f5\", \"pageup\"")]
    BadKey(String),
    #[error("unknown action '{name}' in keys.toml; valid actions: {valid}")]
    UnknownAction { name: String, valid: String },
}

impl KeySpec {
    pub fn new(code: KeyCode, mods: KeyModifiers) -> Self {
        let mut mods = mods & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        let mut code = code;
        match code {
            KeyCode::Char(c) => {
                if mods.contains(KeyModifiers::SHIFT) && c.is_ascii_lowercase() {
                    code = KeyCode::Char(c.to_ascii_uppercase());
                }
                mods.remove(KeyModifiers::SHIFT);
            }
            KeyCode::BackTab => mods.remove(KeyModifiers::SHIFT),
            KeyCode::Tab if mods.contains(KeyModifiers::SHIFT) => {
                code = KeyCode::BackTab;
                mods.remove(KeyModifiers::SHIFT);
            }
            _ => {}
        }
        KeySpec { code, mods }
    }

    pub fn from_event(ev: &KeyEvent) -> Self {
        KeySpec::new(ev.code, ev.modifiers)
    }

    /// Parses "q", "ctrl-c", "Shift-Left", "alt-x", "f5", "space", "-", "ctrl--".
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::BadKey(text.to_string());
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut mods = KeyModifiers::NONE;
        loop {
            let lower = rest.to_ascii_lowercase();
            let (m, len) = if lower.starts_with("ctrl-") && rest.len() > 5 {
                (KeyModifiers::CONTROL, 5)
            } else if lower.starts_with("alt-") && rest.len() > 4 {
                (KeyModifiers::ALT, 4)
            } else if lower.starts_with("shift-") && rest.len() > 6 {
                (KeyModifiers::SHIFT, 6)
            } else {
                break;
            };
            mods |= m;
            rest = &rest[len..];
        }
        let lower = rest.to_ascii_lowercase();
        let code = match lower.as_str() {
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" | "pgup" => KeyCode::PageUp,
            "pagedown" | "pgdn" | "pgdown" => KeyCode::PageDown,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "enter" | "return" => KeyCode::Enter,
            "esc" | "escape" => KeyCode::Esc,
            "backspace" => KeyCode::Backspace,
            "delete" | "del" => KeyCode::Delete,
            "insert" | "ins" => KeyCode::Insert,
            "space" => KeyCode::Char(' '),
            "minus" => KeyCode::Char('-'),
            "plus" => KeyCode::Char('+'),
            _ => {
                let mut chars = rest.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => KeyCode::Char(c),
                    _ => {
                        let n = lower
                            .strip_prefix('f')
                            .and_then(|n| n.parse::<u8>().ok())
                            .filter(|n| (1..=24).contains(n))
                            .ok_or_else(bad)?;
                        KeyCode::F(n)
                    }
                }
            }
        };
        Ok(KeySpec::new(code, mods))
    }
}

impl fmt::Display for KeySpec {
    /// Short human form for hints and help: "Ctrl-C", "Shift-←", "PgUp", "q".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("Ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("Alt-")?;
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            f.write_str("Shift-")?;
        }
        match self.code {
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::BackTab => f.write_str("Shift-Tab"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Backspace => f.write_str("Bksp"),
            KeyCode::Delete => f.write_str("Del"),
            KeyCode::Insert => f.write_str("Ins"),
            KeyCode::F(n) => write!(f, "F{n}"),
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) if self.mods.contains(KeyModifiers::CONTROL) => {
                write!(f, "{}", c.to_ascii_uppercase())
            }
            KeyCode::Char(c) => write!(f, "{c}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Runtime key map: action → keys (in display order) and the reverse lookup.
#[derive(Debug, Clone)]
pub struct Keymap {
    bindings: BTreeMap<KeyAction, Vec<KeySpec>>,
}

impl Default for Keymap {
    fn default() -> Self {
        let bindings = KeyAction::ALL
            .into_iter()
            .map(|a| {
                let keys =
                    a.default_keys().iter().map(|k| KeySpec::parse(k).expect("built-in key specs parse")).collect();
                (a, keys)
            })
            .collect();
        Keymap { bindings }
    }
}

impl Keymap {
    /// Defaults with the user's overrides applied: an action listed in the
    /// file gets exactly the keys given (an empty list unbinds it), and those
    /// keys are taken away from whatever action had them before.
    pub fn with_overrides(file: &KeysFile) -> Result<Keymap, KeyError> {
        let mut map = Keymap::default();
        for (name, keys) in &file.bindings {
            let action = KeyAction::from_name(name).ok_or_else(|| KeyError::UnknownAction {
                name: name.clone(),
                valid: KeyAction::ALL.map(KeyAction::name).join(", "),
            })?;
            let specs = keys.as_slice().iter().map(|k| KeySpec::parse(k)).collect::<Result<Vec<_>, _>>()?;
            for list in map.bindings.values_mut() {
                list.retain(|k| !specs.contains(k));
            }
            map.bindings.insert(action, specs);
        }
        Ok(map)
    }

    pub fn action_for(&self, ev: &KeyEvent) -> Option<KeyAction> {
        let spec = KeySpec::from_event(ev);
        self.bindings.iter().find(|(_, keys)| keys.contains(&spec)).map(|(a, _)| *a)
    }

    pub fn keys(&self, action: KeyAction) -> &[KeySpec] {
        self.bindings.get(&action).map(Vec::as_slice).unwrap_or(&[])
    }

    /// "q/Ctrl-C" style label, or "—" when unbound.
    pub fn label(&self, action: KeyAction) -> String {
        let keys = self.keys(action);
        if keys.is_empty() {
            "—".to_string()
        } else {
            keys.iter().map(ToString::to_string).collect::<Vec<_>>().join("/")
        }
    }

    /// The first key only, for the compact footer.
    pub fn short(&self, action: KeyAction) -> String {
        self.keys(action).first().map(ToString::to_string).unwrap_or_else(|| "—".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEventKind;

    fn ev(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new_with_kind(code, mods, KeyEventKind::Press)
    }

    #[test]
    fn parses_and_matches() {
        let map = Keymap::default();
        assert_eq!(map.action_for(&ev(KeyCode::Char('c'), KeyModifiers::CONTROL)), Some(KeyAction::Quit));
        assert_eq!(map.action_for(&ev(KeyCode::Left, KeyModifiers::SHIFT)), Some(KeyAction::LeftCoarse));
        // Terminals report '?' and '+' with SHIFT held.
        assert_eq!(map.action_for(&ev(KeyCode::Char('?'), KeyModifiers::SHIFT)), Some(KeyAction::Help));
        assert_eq!(map.action_for(&ev(KeyCode::Char('+'), KeyModifiers::SHIFT)), Some(KeyAction::BudgetUp));
        assert_eq!(map.action_for(&ev(KeyCode::BackTab, KeyModifiers::SHIFT)), Some(KeyAction::FocusPrev));
        assert_eq!(KeySpec::parse("ctrl--").unwrap().code, KeyCode::Char('-'));
        assert_eq!(KeySpec::parse("F5").unwrap().code, KeyCode::F(5));
        assert!(KeySpec::parse("f99").is_err());
        assert!(KeySpec::parse("banana").is_err());
        assert_eq!(KeySpec::parse("shift-a").unwrap(), KeySpec::parse("A").unwrap());
    }

    #[test]
    fn every_default_action_is_bound_once() {
        let map = Keymap::default();
        let mut seen = std::collections::HashSet::new();
        for a in KeyAction::ALL {
            assert!(!map.keys(a).is_empty(), "{a} unbound");
            for k in map.keys(a) {
                assert!(seen.insert(*k), "{k} bound twice");
            }
        }
    }

    #[test]
    fn overrides_steal_keys() {
        let file: KeysFile = toml::from_str("[bindings]\nlock = [\"space\"]\nquit = \"x\"\nhelp = \"l\"\n").unwrap();
        let map = Keymap::with_overrides(&file).unwrap();
        assert_eq!(map.action_for(&ev(KeyCode::Char(' '), KeyModifiers::NONE)), Some(KeyAction::Lock));
        assert_eq!(map.action_for(&ev(KeyCode::Char('l'), KeyModifiers::NONE)), Some(KeyAction::Help));
        assert_eq!(map.action_for(&ev(KeyCode::Char('q'), KeyModifiers::NONE)), None);
        assert_eq!(map.action_for(&ev(KeyCode::Char('x'), KeyModifiers::NONE)), Some(KeyAction::Quit));
        let bad: KeysFile = toml::from_str("[bindings]\nfly = \"x\"\n").unwrap();
        let err = Keymap::with_overrides(&bad).unwrap_err().to_string();
        assert!(err.contains("unknown action 'fly'"), "{err}");
    }
}
