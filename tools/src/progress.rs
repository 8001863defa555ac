//! A one-line progress bar on stderr for long runs.

use std::io::Write;
use std::time::Instant;

/// Progress over `total` items; redraws on every `inc`. Silent when stderr is not a terminal
/// unless `FMR_PROGRESS=1`.
pub struct Progress {
    label: String,
    total: usize,
    done: usize,
    start: Instant,
    enabled: bool,
}

impl Progress {
    pub fn new(label: &str, total: usize) -> Progress {
        let enabled = std::env::var_os("FMR_PROGRESS").is_some()
            || std::io::IsTerminal::is_terminal(&std::io::stderr());
        Progress {
            label: label.to_string(),
            total,
            done: 0,
            start: Instant::now(),
            enabled,
        }
    }

    /// Prints `text` as a line of its own on stdout, clearing the bar first (the next `inc`
    /// redraws it below).
    pub fn line(&mut self, text: &str) {
        if self.enabled {
            eprint!("\r\x1b[K");
            let _ = std::io::stderr().flush();
        }
        println!("{text}");
    }

    /// Marks one more item done; `note` is shown after the bar.
    pub fn inc(&mut self, note: &str) {
        self.done += 1;
        if !self.enabled {
            return;
        }
        let width = 30;
        let filled = width * self.done / self.total.max(1);
        let elapsed = self.start.elapsed().as_secs_f64();
        let eta = elapsed / self.done as f64 * (self.total - self.done.min(self.total)) as f64;
        eprint!(
            "\r{} [{}{}] {}/{} {:.0}s eta {:.0}s {}   ",
            self.label,
            "#".repeat(filled),
            "-".repeat(width - filled),
            self.done,
            self.total,
            elapsed,
            eta,
            note
        );
        let _ = std::io::stderr().flush();
        if self.done == self.total {
            eprintln!();
        }
    }
}
