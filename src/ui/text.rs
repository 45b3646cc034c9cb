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

/// Wraps tokens into lines of at most `width` columns, breaking at spaces.
///
/// A word (a run of non-space characters, which may span several tokens:
/// "Vel" + "ford") moves to the next line whole when it does not fit, and is
/// broken only when it is longer than a line. The spaces where a line breaks
/// stay at the end of the line they follow, as far as they fit, so no
/// continuation line starts with a space; indentation after a newline is
/// kept. Wide (CJK) characters may break on either side. With
/// `show_newlines`, newlines/tabs are shown as ⏎/→ (token view); otherwise
/// they only shape the text (output panes).
pub fn wrap_items<'a>(items: impl IntoIterator<Item = &'a str>, width: usize, show_newlines: bool) -> Wrapped {
    let mut b = Builder { width: width.max(1), lines: vec![Vec::new()], line_w: 0, first_line: Vec::new() };
    // The characters of the current paragraph (up to a hard line break).
    let mut para: Vec<(usize, char)> = Vec::new();
    for (item, text) in items.into_iter().enumerate() {
        b.first_line.push(None);
        for c in display_chars(text, show_newlines) {
            match c {
                DisplayChar::Char(c) => para.push((item, c)),
                DisplayChar::Break => {
                    b.paragraph(&para);
                    para.clear();
                    b.new_line();
                }
            }
        }
    }
    b.paragraph(&para);
    // An item that shows nothing (a dropped space, a bare newline in the
    // output panes) starts where the next item that shows something does.
    let mut next = b.lines.len() - 1;
    let mut line_of_item: Vec<usize> = b
        .first_line
        .iter()
        .rev()
        .map(|l| {
            next = l.unwrap_or(next);
            next
        })
        .collect();
    line_of_item.reverse();
    Wrapped { lines: b.lines, line_of_item }
}

struct Builder {
    width: usize,
    lines: Vec<Vec<Seg>>,
    line_w: usize,
    /// Line of the first character shown of each item.
    first_line: Vec<Option<usize>>,
}

impl Builder {
    fn new_line(&mut self) {
        self.lines.push(Vec::new());
        self.line_w = 0;
    }

    /// Appends a character, starting a new line first if it does not fit.
    fn put(&mut self, item: usize, c: char) {
        let cw = char_width(c);
        if self.line_w + cw > self.width && self.line_w > 0 {
            self.new_line();
        }
        let n = self.lines.len() - 1;
        self.first_line[item].get_or_insert(n);
        let line = &mut self.lines[n];
        match line.last_mut() {
            Some(seg) if seg.item == item => seg.text.push(c),
            _ => line.push(Seg { item, text: c.to_string() }),
        }
        self.line_w += cw;
    }

    fn paragraph(&mut self, chars: &[(usize, char)]) {
        let is_space = |c: char| c == ' ';
        let mut i = 0;
        // Indentation is kept, up to a line.
        while i < chars.len() && is_space(chars[i].1) {
            if self.line_w < self.width {
                self.put(chars[i].0, chars[i].1);
            }
            i += 1;
        }
        while i < chars.len() {
            let start = i;
            if char_width(chars[i].1) > 1 {
                i += 1;
            } else {
                while i < chars.len() && !is_space(chars[i].1) && char_width(chars[i].1) <= 1 {
                    i += 1;
                }
            }
            let word = &chars[start..i];
            let w: usize = word.iter().map(|(_, c)| char_width(*c)).sum();
            if self.line_w > 0 && self.line_w + w > self.width && w <= self.width {
                self.new_line();
            }
            for &(item, c) in word {
                self.put(item, c);
            }
            // Spaces after a word end its line if the next word wraps; what
            // does not fit there is dropped.
            while i < chars.len() && is_space(chars[i].1) {
                if self.line_w < self.width {
                    self.put(chars[i].0, chars[i].1);
                }
                i += 1;
            }
        }
    }
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

    fn lines(w: &Wrapped) -> Vec<String> {
        w.lines.iter().map(|l| l.iter().map(|s| s.text.as_str()).collect()).collect()
    }

    #[test]
    fn wraps_at_spaces_and_drops_them_at_breaks() {
        let w = wrap_items(["Hello", " world", ",", " this", " is", " long"], 12, false);
        assert_eq!(lines(&w), vec!["Hello world,", "this is long"]);
        assert_eq!(w.line_of_item, vec![0, 0, 0, 1, 1, 1]);
        // A word made of several tokens moves whole.
        let w = wrap_items(["The", " code", " of", " Vel", "ford", " is", " 806"], 16, false);
        assert_eq!(lines(&w), vec!["The code of ", "Velford is 806"]);
        assert_eq!(w.line_of_item, vec![0, 0, 0, 0, 1, 1, 1]);
    }

    #[test]
    fn long_words_split_and_newlines_show() {
        let w = wrap_items(["abcdefghij", "x\ny"], 4, true);
        assert_eq!(lines(&w), vec!["abcd", "efgh", "ijx⏎", "y"]);
        assert_eq!(w.line_of_item, vec![0, 2]);
        // Indentation after a newline stays; a long word starts on the current line.
        let w = wrap_items(["a:\n", "  b", " cccccccc"], 5, false);
        assert_eq!(lines(&w), vec!["a:", "  b c", "ccccc", "cc"]);
    }

    #[test]
    fn wide_characters_break_between_them() {
        let w = wrap_items(["日本語", "の", "文"], 4, false);
        assert_eq!(lines(&w), vec!["日本", "語の", "文"]);
    }

    proptest::proptest! {
        #[test]
        fn wrapping_only_moves_spaces_at_breaks(
            toks in proptest::collection::vec("[a-c ]{0,7}|\n| ", 0..40),
            width in 1usize..20,
        ) {
            let w = wrap_items(toks.iter().map(String::as_str), width, true);
            let shown = lines(&w);
            let squash = |s: &str| s.chars().filter(|c| !matches!(c, ' ' | '\n' | '⏎' | '·')).collect::<String>();
            proptest::prop_assert_eq!(squash(&shown.concat()), squash(&toks.concat()));
            for (k, l) in shown.iter().enumerate() {
                proptest::prop_assert!(str_width(l) <= width, "{l:?} wider than {width}");
                let Some(prev) = k.checked_sub(1).map(|p| &shown[p]) else { continue };
                if prev.ends_with('⏎') {
                    continue; // a hard break: indentation may follow
                }
                proptest::prop_assert!(!l.starts_with(' '), "continuation line {l:?}");
                let first_word = l.split(' ').next().unwrap_or("");
                if prev.ends_with(' ') {
                    // Broke at a space: the next word did not fit.
                    proptest::prop_assert!(str_width(prev) + str_width(first_word) > width, "{prev:?} / {l:?}");
                } else {
                    // Broke inside a word (or where spaces were dropped): the line was full.
                    proptest::prop_assert_eq!(str_width(prev), width, "{:?} / {:?}", prev, l);
                }
            }
            proptest::prop_assert_eq!(w.line_of_item.len(), toks.len());
            proptest::prop_assert!(w.line_of_item.windows(2).all(|p| p[0] <= p[1]));
        }
    }

    #[test]
    fn digits() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(1234567), "1,234,567");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
