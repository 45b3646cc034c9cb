//! Wrapping token streams into lines, keeping track of which token each piece
//! of a line belongs to (for per-token styling and hit-testing).

use ratatui::text::Span;

/// A run of characters from one token on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    pub item: usize,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wrapped {
    pub lines: Vec<Vec<Seg>>,
    /// Line on which each item starts.
    pub line_of_item: Vec<usize>,
}

/// Display width of one char (0 for combining marks, 2 for wide CJK).
pub fn char_width(c: char) -> usize {
    let mut buf = [0u8; 4];
    Span::raw(&*c.encode_utf8(&mut buf)).width()
}

pub fn str_width(s: &str) -> usize {
    Span::raw(s).width()
}

/// How a token is shown: control characters made visible or turned into
/// layout, empty tokens as a middle dot so they can still be selected.
fn display_chars(text: &str, show_newlines: bool) -> Vec<DisplayChar> {
    let mut out = Vec::new();
    if text.is_empty() && show_newlines {
        out.push(DisplayChar::Char('·'));
    }
    for c in text.chars() {
        match c {
            '\n' => {
                if show_newlines {
                    out.push(DisplayChar::Char('⏎'));
                }
                out.push(DisplayChar::Break);
            }
            '\r' => {}
            '\t' => {
                if show_newlines {
                    out.push(DisplayChar::Char('→'));
                } else {
                    out.extend([DisplayChar::Char(' '); 4]);
                }
            }
            c if c.is_control() => out.push(DisplayChar::Char('·')),
            c => out.push(DisplayChar::Char(c)),
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum DisplayChar {
    Char(char),
    Break,
}

/// Wraps tokens into lines of at most `width` columns. A token that fits on a
/// line of its own is not split across lines; longer tokens are. With
/// `show_newlines`, newlines/tabs are shown as ⏎/→ (token view); otherwise
/// they only shape the text (output panes).
pub fn wrap_items<'a>(items: impl IntoIterator<Item = &'a str>, width: usize, show_newlines: bool) -> Wrapped {
    let width = width.max(1);
    let mut w = Wrapped { lines: vec![Vec::new()], line_of_item: Vec::new() };
    let mut line_w = 0usize;
    for (item, text) in items.into_iter().enumerate() {
        let chars = display_chars(text, show_newlines);
        // Width up to the first break: keep short tokens whole.
        let head: usize = chars
            .iter()
            .take_while(|c| matches!(c, DisplayChar::Char(_)))
            .map(|c| match c {
                DisplayChar::Char(c) => char_width(*c),
                DisplayChar::Break => 0,
            })
            .sum();
        if line_w > 0 && line_w + head > width && head <= width {
            w.lines.push(Vec::new());
            line_w = 0;
        }
        w.line_of_item.push(w.lines.len() - 1);
        for c in chars {
            match c {
                DisplayChar::Break => {
                    w.lines.push(Vec::new());
                    line_w = 0;
                }
                DisplayChar::Char(c) => {
                    let cw = char_width(c);
                    if line_w + cw > width && line_w > 0 {
                        w.lines.push(Vec::new());
                        line_w = 0;
                    }
                    let line = w.lines.last_mut().expect("at least one line");
                    match line.last_mut() {
                        Some(seg) if seg.item == item => seg.text.push(c),
                        _ => line.push(Seg { item, text: c.to_string() }),
                    }
                    line_w += cw;
                }
            }
        }
    }
    w
}

/// Thousands separators: 12345 → "12,345".
pub fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes as MiB with one decimal (two below 10 MiB).
pub fn mib(bytes: usize) -> String {
    let m = bytes as f64 / (1024.0 * 1024.0);
    if m < 10.0 {
        format!("{m:.2}")
    } else {
        format!("{m:.1}")
    }
}

/// Truncates to `width` columns, ending with "…" when cut.
pub fn truncate(s: &str, width: usize) -> String {
    if str_width(s) <= width {
        return s.to_string();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = char_width(c);
        if w + cw + 1 > width {
            break;
        }
        out.push(c);
        w += cw;
    }
    if width > 0 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_token_boundaries() {
        let w = wrap_items(["Hello", " world", ",", " this", " is", " long"], 12, false);
        let lines: Vec<String> = w.lines.iter().map(|l| l.iter().map(|s| s.text.as_str()).collect()).collect();
        assert_eq!(lines, vec!["Hello world,", " this is", " long"]);
        assert_eq!(w.line_of_item, vec![0, 0, 0, 1, 1, 2]);
    }

    #[test]
    fn long_tokens_split_and_newlines_show() {
        let w = wrap_items(["abcdefghij", "x\ny"], 4, true);
        let lines: Vec<String> = w.lines.iter().map(|l| l.iter().map(|s| s.text.as_str()).collect()).collect();
        assert_eq!(lines, vec!["abcd", "efgh", "ijx⏎", "y"]);
        assert_eq!(w.line_of_item, vec![0, 2]);
    }

    #[test]
    fn digits() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(1234567), "1,234,567");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
