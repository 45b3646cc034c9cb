//! A single-line text editor for the prompt and path popups.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key did to the editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOutcome {
    /// Text or cursor changed (or nothing happened); keep editing.
    Editing,
    Submit,
    Cancel,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineEditor {
    chars: Vec<char>,
    /// Cursor position in chars, `0..=len`.
    cursor: usize,
    /// Keeps newlines (Alt-Enter, paste); otherwise they become spaces.
    multiline: bool,
}

impl LineEditor {
    pub fn new(text: &str) -> Self {
        let chars: Vec<char> = text.chars().collect();
        let cursor = chars.len();
        LineEditor { chars, cursor, multiline: false }
    }

    /// An editor that keeps newlines (for prompts): Alt-Enter inserts one.
    pub fn multiline(text: &str) -> Self {
        LineEditor { multiline: true, ..LineEditor::new(text) }
    }

    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    pub fn insert(&mut self, c: char) {
        self.chars.insert(self.cursor, c);
        self.cursor += 1;
    }

    pub fn insert_str(&mut self, s: &str) {
        for c in s.chars() {
            match c {
                '\r' => {}
                '\n' if !self.multiline => self.insert(' '),
                c => self.insert(c),
            }
        }
    }

    fn delete_word_back(&mut self) {
        let mut i = self.cursor;
        while i > 0 && self.chars[i - 1].is_whitespace() {
            i -= 1;
        }
        while i > 0 && !self.chars[i - 1].is_whitespace() {
            i -= 1;
        }
        self.chars.drain(i..self.cursor);
        self.cursor = i;
    }

    /// Applies one key. Enter submits, Esc cancels; the usual readline keys
    /// (Ctrl-A/E/U/K/W) work.
    pub fn handle_key(&mut self, key: &KeyEvent) -> EditOutcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Enter if self.multiline && key.modifiers.contains(KeyModifiers::ALT) => self.insert('\n'),
            KeyCode::Enter => return EditOutcome::Submit,
            KeyCode::Esc => return EditOutcome::Cancel,
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = self.chars.len(),
            KeyCode::Char('u') if ctrl => {
                self.chars.drain(..self.cursor);
                self.cursor = 0;
            }
            KeyCode::Char('k') if ctrl => self.chars.truncate(self.cursor),
            KeyCode::Char('w') if ctrl => self.delete_word_back(),
            KeyCode::Char(_) if ctrl => {}
            KeyCode::Char(c) => self.insert(c),
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.chars.remove(self.cursor);
            }
            KeyCode::Delete if self.cursor < self.chars.len() => {
                self.chars.remove(self.cursor);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.chars.len()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.chars.len(),
            _ => {}
        }
        EditOutcome::Editing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn edits() {
        let mut e = LineEditor::new("helo");
        e.handle_key(&key(KeyCode::Left));
        e.handle_key(&key(KeyCode::Char('l')));
        assert_eq!(e.text(), "hello");
        e.handle_key(&key(KeyCode::End));
        e.insert_str(" wo\r\nrld");
        assert_eq!(e.text(), "hello wo rld");
        let mut m = LineEditor::multiline("a");
        m.insert_str("\r\nb");
        m.handle_key(&KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT));
        assert_eq!(m.text(), "a\nb\n");
        e.handle_key(&KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL));
        assert_eq!(e.text(), "hello wo ");
        e.handle_key(&key(KeyCode::Home));
        e.handle_key(&key(KeyCode::Delete));
        assert_eq!(e.text(), "ello wo ");
        assert_eq!(e.handle_key(&key(KeyCode::Enter)), EditOutcome::Submit);
        assert_eq!(e.handle_key(&key(KeyCode::Esc)), EditOutcome::Cancel);
    }
}
