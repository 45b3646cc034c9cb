//! Making user text safe to print on a terminal.
//!
//! A profile's notes, a model name from GGUF metadata or a prompt id can hold
//! escape sequences (`ESC [ 2 J` clears the screen, `ESC ] 0 ; … BEL` retitles
//! the window). Printed raw, the terminal obeys them. These helpers replace
//! every control character (C0, DEL and C1) with a visible `\u{..}` escape,
//! so the text is shown, never executed.

use std::borrow::Cow;
use std::fmt::Write;

/// `s` with every control character, newlines and tabs included, written as a
/// visible escape (`\u{1b}`). For one-line fields.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    escape_controls(s, |_| false)
}

/// Like [`sanitize`] but keeps newlines and tabs, for multi-line text.
pub fn sanitize_multiline(s: &str) -> Cow<'_, str> {
    escape_controls(s, |c| c == '\n' || c == '\t')
}

fn escape_controls(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let bad = |c: char| c.is_control() && !keep(c);
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        assert!(matches!(sanitize("SmolLM2 135M – ünïcode"), Cow::Borrowed("SmolLM2 135M – ünïcode")));
    }

    #[test]
    fn escapes_csi_osc_and_c1() {
        assert_eq!(sanitize("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(sanitize("\u{1b}]0;pwned\u{7}"), "\\u{1b}]0;pwned\\u{7}");
        assert_eq!(sanitize("x\u{9b}31my"), "x\\u{9b}31my");
        assert_eq!(sanitize("del\u{7f}"), "del\\u{7f}");
        assert_eq!(sanitize("two\nlines\r"), "two\\u{a}lines\\u{d}");
    }

    #[test]
    fn multiline_keeps_newlines_and_tabs_only() {
        assert_eq!(sanitize_multiline("a\n\tb\r\u{1b}c"), "a\n\tb\\u{d}\\u{1b}c");
    }

    #[test]
    fn output_never_holds_a_control_character() {
        let all: String = (0u32..0x200).filter_map(char::from_u32).collect();
        assert!(!sanitize(&all).chars().any(char::is_control));
        assert!(!sanitize_multiline(&all).chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
    }
}
