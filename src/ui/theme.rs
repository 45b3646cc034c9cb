//! Runtime theme and `--theme NAME|PATH` resolution.
//!
//! Built-in themes (`themes/*.toml`) are embedded in the binary. A theme of the
//! same name in `<config dir>/themes/` overrides the built-in (and extends it
//! unless it says otherwise); a PATH loads that file directly.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};

use super::config::ThemeFile;

pub const BUILTIN: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("high-contrast", include_str!("../../themes/high-contrast.toml")),
];

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("unknown theme '{name}': built-in themes are {builtins}; user themes are read from {dir}")]
    Unknown { name: String, builtins: String, dir: String },
    #[error("theme file could not be read: {0}")]
    Read(crate::userio::BoundedReadError),
    #[error("theme file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("theme '{theme}': {field} = \"{value}\" is not a colour (use a name like \"dark-gray\", \"#rrggbb\", an ANSI index 0-255 or \"reset\")")]
    BadColor { theme: String, field: String, value: String },
    #[error("theme '{theme}' does not set {field} and extends nothing")]
    Missing { theme: String, field: String },
    #[error("theme '{theme}': heatmap.ramp needs at least two colours")]
    ShortRamp { theme: String },
    #[error("theme '{0}' extends itself (cycle through 'extends')")]
    Cycle(String),
}

macro_rules! theme_struct {
    ($($field:ident),* $(,)?) => {
        /// Colours the widgets draw with.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Theme {
            pub name: String,
            $(pub $field: Color,)*
            pub heat_evicted: Color,
            pub heat_ramp: Vec<Color>,
        }

        impl Theme {
            fn build(name: &str, base: Option<&Theme>, file: &ThemeFile) -> Result<Theme, ThemeError> {
                let ui = &file.ui;
                $(
                    let $field = pick(name, concat!("ui.", stringify!($field)), ui.$field.as_deref(), base.map(|b| b.$field))?;
                )*
                let heat_evicted = pick(name, "heatmap.evicted", file.heatmap.evicted.as_deref(), base.map(|b| b.heat_evicted))?;
                let heat_ramp = match (&file.heatmap.ramp, base) {
                    (Some(stops), _) => {
                        if stops.len() < 2 {
                            return Err(ThemeError::ShortRamp { theme: name.to_string() });
                        }
                        stops
                            .iter()
                            .enumerate()
                            .map(|(i, s)| parse_color(name, &format!("heatmap.ramp[{i}]"), s))
                            .collect::<Result<Vec<_>, _>>()?
                    }
                    (None, Some(b)) => b.heat_ramp.clone(),
                    (None, None) => {
                        return Err(ThemeError::Missing { theme: name.to_string(), field: "heatmap.ramp".into() })
                    }
                };
                Ok(Theme { name: name.to_string(), $($field,)* heat_evicted, heat_ramp })
            }
        }
    };
}

theme_struct!(
    bg,
    fg,
    dim,
    accent,
    title,
    border,
    border_focus,
    selection_bg,
    selection_fg,
    bar_fill,
    bar_empty,
    uniform_marker,
    locked,
    sensitivity,
    ok,
    warn,
    error,
    diverge_fg,
    diverge_bg,
    evicted,
    partial,
    cursor_fg,
    cursor_bg,
    gauge,
    pane_1,
    pane_2,
    pane_3,
    pane_4,
    pane_5,
    pane_6,
);

fn parse_color(theme: &str, field: &str, value: &str) -> Result<Color, ThemeError> {
    Color::from_str(value.trim()).map_err(|_| ThemeError::BadColor {
        theme: theme.to_string(),
        field: field.to_string(),
        value: value.to_string(),
    })
}

fn pick(theme: &str, field: &str, value: Option<&str>, base: Option<Color>) -> Result<Color, ThemeError> {
    match (value, base) {
        (Some(v), _) => parse_color(theme, field, v),
        (None, Some(c)) => Ok(c),
        (None, None) => Err(ThemeError::Missing { theme: theme.to_string(), field: field.to_string() }),
    }
}

fn parse_file(text: &str, origin: &str) -> Result<ThemeFile, ThemeError> {
    toml::from_str(text).map_err(|e| ThemeError::Parse { path: origin.to_string(), message: e.to_string() })
}

fn builtin_text(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

fn builtin_names() -> String {
    BUILTIN.map(|(n, _)| n).join(", ")
}

impl Default for Theme {
    fn default() -> Self {
        Theme::builtin("dark").expect("built-in dark theme is valid")
    }
}

impl Theme {
    /// A built-in theme by name.
    pub fn builtin(name: &str) -> Result<Theme, ThemeError> {
        let text = builtin_text(name).ok_or_else(|| ThemeError::Unknown {
            name: name.to_string(),
            builtins: builtin_names(),
            dir: "<config dir>/themes".into(),
        })?;
        let file = parse_file(text, &format!("built-in theme '{name}'"))?;
        Theme::build(name, None, &file)
    }

    /// Resolves `--theme NAME|PATH`: a path (contains a separator or ends in
    /// `.toml`) is loaded directly; a name is looked up in
    /// `<config_dir>/themes/NAME.toml` first, then among the built-ins.
    pub fn resolve(arg: &str, config_dir: Option<&Path>) -> Result<Theme, ThemeError> {
        let arg = arg.trim();
        let looks_like_path = arg.contains('/') || arg.contains('\\') || arg.ends_with(".toml");
        if looks_like_path {
            let path = PathBuf::from(arg);
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| arg.to_string());
            return Theme::load_file(&path, &stem, config_dir, &mut vec![]);
        }
        Theme::resolve_named(arg, config_dir, &mut vec![])
    }

    fn resolve_named(name: &str, config_dir: Option<&Path>, visiting: &mut Vec<String>) -> Result<Theme, ThemeError> {
        if let Some(dir) = config_dir {
            let path = dir.join("themes").join(format!("{name}.toml"));
            if path.is_file() && !visiting.iter().any(|v| v == name) {
                return Theme::load_file(&path, name, config_dir, visiting);
            }
        }
        if builtin_text(name).is_some() {
            return Theme::builtin(name);
        }
        if visiting.iter().any(|v| v == name) {
            return Err(ThemeError::Cycle(name.to_string()));
        }
        Err(ThemeError::Unknown {
            name: name.to_string(),
            builtins: builtin_names(),
            dir: config_dir
                .map(|d| d.join("themes").display().to_string())
                .unwrap_or_else(|| "<no config dir on this platform>".into()),
        })
    }

    fn load_file(
        path: &Path,
        default_name: &str,
        config_dir: Option<&Path>,
        visiting: &mut Vec<String>,
    ) -> Result<Theme, ThemeError> {
        let text = crate::userio::read_bounded(path, crate::userio::MAX_CONFIG_BYTES).map_err(ThemeError::Read)?;
        Theme::from_text(&text, &path.display().to_string(), default_name, config_dir, visiting)
    }

    /// A theme from TOML text with no config folder: `extends` may name a
    /// built-in only. What user theme files go through, minus the file.
    pub fn from_toml(text: &str, name: &str) -> Result<Theme, ThemeError> {
        Theme::from_text(text, name, name, None, &mut Vec::new())
    }

    fn from_text(
        text: &str,
        origin: &str,
        default_name: &str,
        config_dir: Option<&Path>,
        visiting: &mut Vec<String>,
    ) -> Result<Theme, ThemeError> {
        let file = parse_file(text, origin)?;
        let name = file.name.clone().unwrap_or_else(|| default_name.to_string());
        if visiting.len() > 8 {
            return Err(ThemeError::Cycle(name));
        }
        // A user theme extends the built-in of its own name, or dark.
        let extends = file.extends.clone().unwrap_or_else(|| {
            if builtin_text(default_name).is_some() {
                default_name.to_string()
            } else {
                "dark".to_string()
            }
        });
        visiting.push(default_name.to_string());
        let base = if extends == default_name {
            Theme::builtin(&extends).map_err(|_| ThemeError::Cycle(name.clone()))?
        } else {
            Theme::resolve_named(&extends, config_dir, visiting)?
        };
        visiting.pop();
        Theme::build(&name, Some(&base), &file)
    }

    /// Heatmap colour for a value in [0, 1]; `None` (or exactly 0 in keep
    /// mode, decided by the caller) uses `heat_evicted`.
    pub fn heat(&self, v: f32) -> Color {
        let v = if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.0 };
        let n = self.heat_ramp.len();
        if n == 1 {
            return self.heat_ramp[0];
        }
        let x = v * (n - 1) as f32;
        let i = (x.floor() as usize).min(n - 2);
        let t = x - i as f32;
        match (self.heat_ramp[i], self.heat_ramp[i + 1]) {
            (Color::Rgb(r0, g0, b0), Color::Rgb(r1, g1, b1)) => {
                let mix = |a: u8, b: u8| (a as f32 + (b as f32 - a as f32) * t).round() as u8;
                Color::Rgb(mix(r0, r1), mix(g0, g1), mix(b0, b1))
            }
            (a, b) => {
                if t < 0.5 {
                    a
                } else {
                    b
                }
            }
        }
    }

    pub fn base(&self) -> Style {
        Style::default().fg(self.fg).bg(self.bg)
    }
    pub fn dim(&self) -> Style {
        Style::default().fg(self.dim)
    }
    pub fn border(&self, focused: bool) -> Style {
        Style::default().fg(if focused { self.border_focus } else { self.border })
    }
    pub fn title(&self, focused: bool) -> Style {
        let s = Style::default().fg(if focused { self.border_focus } else { self.title });
        if focused {
            s.add_modifier(Modifier::BOLD)
        } else {
            s
        }
    }
    pub fn selected(&self) -> Style {
        Style::default().fg(self.selection_fg).bg(self.selection_bg)
    }
    pub fn cursor(&self) -> Style {
        Style::default().fg(self.cursor_fg).bg(self.cursor_bg)
    }
    pub fn key(&self) -> Style {
        Style::default().fg(self.accent).add_modifier(Modifier::BOLD)
    }

    /// Colour of the pane in colour slot `slot` (six, then around again).
    pub fn pane(&self, slot: usize) -> Color {
        [self.pane_1, self.pane_2, self.pane_3, self.pane_4, self.pane_5, self.pane_6][slot % 6]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_complete() {
        for (name, _) in BUILTIN {
            let t = Theme::builtin(name).unwrap();
            assert!(t.heat_ramp.len() >= 2);
            assert!(t.heat_ramp.iter().all(|c| matches!(c, Color::Rgb(..))), "{name}: ramp must be RGB");
        }
    }

    fn rgb(c: Color) -> [f32; 3] {
        match c {
            Color::Rgb(r, g, b) => [r, g, b].map(f32::from),
            other => panic!("{other:?} is not RGB"),
        }
    }

    fn distance(a: Color, b: Color) -> f32 {
        let (a, b) = (rgb(a), rgb(b));
        (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f32>().sqrt()
    }

    #[test]
    fn evicted_cells_are_dark_and_stand_apart() {
        for (name, _) in BUILTIN {
            let t = Theme::builtin(name).unwrap();
            let e = t.heat_evicted;
            let [r, g, b] = rgb(e);
            assert!(0.2126 * r + 0.7152 * g + 0.0722 * b < 0.3 * 255.0, "{name}: evicted {e:?} is not dark");
            // The legend swatch sits on the panel background; cells sit next to ramp colours.
            assert!(distance(e, t.bg) >= 45.0, "{name}: evicted {e:?} too close to the background");
            for c in &t.heat_ramp {
                assert!(distance(e, *c) >= 45.0, "{name}: evicted {e:?} too close to ramp colour {c:?}");
            }
        }
    }

    #[test]
    fn six_pane_colours_stand_apart_and_off_the_background() {
        for (name, _) in BUILTIN {
            let t = Theme::builtin(name).unwrap();
            let colours: Vec<Color> = (0..6).map(|i| t.pane(i)).collect();
            for (i, a) in colours.iter().enumerate() {
                assert!(distance(*a, t.bg) >= 100.0, "{name}: pane {} {a:?} too close to the background", i + 1);
                for (j, b) in colours.iter().enumerate().skip(i + 1) {
                    assert!(distance(*a, *b) >= 60.0, "{name}: panes {} and {} too alike", i + 1, j + 1);
                }
            }
        }
    }

    #[test]
    fn heat_interpolates_endpoints() {
        let t = Theme::builtin("high-contrast").unwrap();
        assert_eq!(t.heat(0.0), t.heat_ramp[0]);
        assert_eq!(t.heat(1.0), *t.heat_ramp.last().unwrap());
        assert_eq!(t.heat(f32::NAN), t.heat_ramp[0]);
    }

    #[test]
    fn resolution_order_and_errors() {
        let dir = std::env::temp_dir().join(format!("depthkv-theme-test-{}", std::process::id()));
        let themes = dir.join("themes");
        std::fs::create_dir_all(&themes).unwrap();
        std::fs::write(themes.join("dark.toml"), "[ui]\naccent = \"#010203\"\n").unwrap();
        std::fs::write(themes.join("mine.toml"), "extends = \"light\"\n[ui]\nfg = \"red\"\n").unwrap();
        std::fs::write(themes.join("broken.toml"), "[ui]\nfg = \"not-a-colour\"\n").unwrap();
        std::fs::write(themes.join("loop.toml"), "extends = \"loop2\"\n").unwrap();
        std::fs::write(themes.join("loop2.toml"), "extends = \"loop\"\n").unwrap();

        let dark = Theme::resolve("dark", Some(&dir)).unwrap();
        assert_eq!(dark.accent, Color::Rgb(1, 2, 3));
        assert_eq!(dark.fg, Theme::builtin("dark").unwrap().fg);

        let mine = Theme::resolve("mine", Some(&dir)).unwrap();
        assert_eq!(mine.fg, Color::Red);
        assert_eq!(mine.bg, Theme::builtin("light").unwrap().bg);

        let by_path = Theme::resolve(themes.join("mine.toml").to_str().unwrap(), None).unwrap();
        assert_eq!(by_path.fg, Color::Red);

        let err = Theme::resolve("broken", Some(&dir)).unwrap_err().to_string();
        assert!(err.contains("ui.fg") && err.contains("not-a-colour"), "{err}");
        let err = Theme::resolve("nope", Some(&dir)).unwrap_err().to_string();
        assert!(err.contains("unknown theme 'nope'") && err.contains("high-contrast"), "{err}");
        let err = Theme::resolve("/no/such/theme.toml", None).unwrap_err().to_string();
        assert!(err.contains("could not be read"), "{err}");
        assert!(Theme::resolve("loop", Some(&dir)).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
