//! Progress of the long local commands (`replay`, `export-index`) on
//! stderr: a one-line bar redrawn a few times a second when stderr is a
//! terminal, a plain line every few seconds otherwise (a log file, CI), and
//! nothing at all in Lambda. Hand-rolled: one line of text does not need a
//! crate.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where a long command says how far it got.
pub trait Progress: Sync {
    /// `fraction` done (0 to 1) when known, and what has been done.
    fn update(&self, fraction: Option<f64>, text: &str);
    /// The last word, once the work is over.
    fn finish(&self, text: &str);
}

/// No progress shown (Lambda, tests).
pub struct Silent;

impl Progress for Silent {
    fn update(&self, _: Option<f64>, _: &str) {}
    fn finish(&self, _: &str) {}
}

/// Progress on stderr.
pub struct Stderr {
    terminal: bool,
    started: Instant,
    last: Mutex<Option<Instant>>,
}

impl Default for Stderr {
    fn default() -> Self {
        Self::new(std::io::stderr().is_terminal())
    }
}

impl Stderr {
    /// `terminal`: redraw one line in place; otherwise print lines.
    pub fn new(terminal: bool) -> Self {
        Self {
            terminal,
            started: Instant::now(),
            last: Mutex::new(None),
        }
    }

    fn every(&self) -> Duration {
        if self.terminal {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(10)
        }
    }
}

impl Progress for Stderr {
    fn update(&self, fraction: Option<f64>, text: &str) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < self.every()) {
            return;
        }
        *last = Some(now);
        let line = render(fraction, text, now.duration_since(self.started));
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            // Back to the start of the line, draw, clear what is left.
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    fn finish(&self, text: &str) {
        let elapsed = self.started.elapsed();
        let mut err = std::io::stderr().lock();
        let prefix = if self.terminal { "\r\x1b[K" } else { "" };
        let _ = writeln!(
            err,
            "{prefix}done in {:.1} s: {text}",
            elapsed.as_secs_f64()
        );
    }
}

/// `[#########...........]  45% text (12 s)`, or the text alone when the
/// fraction is not known.
pub fn render(fraction: Option<f64>, text: &str, elapsed: Duration) -> String {
    const WIDTH: usize = 24;
    let seconds = elapsed.as_secs();
    match fraction {
        Some(fraction) => {
            let fraction = fraction.clamp(0.0, 1.0);
            let filled = (fraction * WIDTH as f64).round() as usize;
            format!(
                "[{}{}] {:>3.0}% {text} ({seconds} s)",
                "#".repeat(filled),
                ".".repeat(WIDTH - filled),
                fraction * 100.0
            )
        }
        None => format!("{text} ({seconds} s)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_fraction_and_stays_in_bounds() {
        let at = Duration::from_secs(12);
        assert_eq!(
            render(Some(0.5), "3 objects", at),
            "[############............]  50% 3 objects (12 s)"
        );
        assert!(render(Some(1.7), "x", at).starts_with("[########################] 100%"));
        assert!(render(Some(-1.0), "x", at).starts_with("[........................]   0%"));
        assert_eq!(render(None, "7 read", at), "7 read (12 s)");
    }
}
