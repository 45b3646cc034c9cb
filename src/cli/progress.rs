//! A one-line progress bar on stderr for long CLI jobs.

use std::io::Write;
use std::time::Instant;

pub struct Bar {
    label: &'static str,
    start: Instant,
    quiet: bool,
}

impl Bar {
    pub fn new(label: &'static str, quiet: bool) -> Self {
        Self { label, start: Instant::now(), quiet }
    }

    /// Redraws the bar; always returns true (never cancels).
    pub fn update(&self, done: usize, total: usize) -> bool {
        if self.quiet {
            return true;
        }
        let width = 30;
        let filled = (done * width).checked_div(total).unwrap_or(width);
        let secs = self.start.elapsed().as_secs_f64();
        let eta = if done > 0 { secs / done as f64 * (total - done) as f64 } else { 0.0 };
        eprint!(
            "\r{} [{}{}] {done}/{total}  {secs:.0}s elapsed, ~{eta:.0}s left ",
            self.label,
            "#".repeat(filled),
            "-".repeat(width - filled)
        );
        if done >= total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
        true
    }
}
