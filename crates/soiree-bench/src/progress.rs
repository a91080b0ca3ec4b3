//! Progress on stderr: a bar on a terminal, plain lines otherwise. Results go
//! to stdout either way.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Shows which scenario is running.
#[derive(Debug)]
pub(crate) enum Progress {
    /// stderr is a terminal.
    Bar(ProgressBar),
    /// stderr is a file or pipe.
    Plain {
        /// Scenarios in this run.
        total: usize,
    },
}

impl Progress {
    /// Progress over `total` scenarios.
    pub(crate) fn new(total: usize) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::Plain { total };
        }
        let bar = ProgressBar::new(total as u64);
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg} {elapsed}") {
            bar.set_style(style);
        }
        // A slow tick: the spinner's thread must not compete with the
        // benchmark for the machine's cores.
        bar.enable_steady_tick(Duration::from_millis(200));
        Self::Bar(bar)
    }

    /// Announces the scenario at `index` (from 0).
    pub(crate) fn start(&self, index: usize, name: &str) {
        match self {
            Self::Bar(bar) => {
                bar.set_position(index as u64);
                bar.set_message(name.to_owned());
            }
            Self::Plain { total } => eprintln!("[{}/{total}] running {name}", index + 1),
        }
    }

    /// Prints a result line on stdout.
    pub(crate) fn output(&self, line: &str) {
        self.print(|| println!("{line}"));
    }

    /// Prints a message on stderr.
    pub(crate) fn warn(&self, message: &str) {
        self.print(|| eprintln!("{message}"));
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }

    fn print(&self, print: impl FnOnce()) {
        match self {
            Self::Bar(bar) => bar.suspend(print),
            Self::Plain { .. } => print(),
        }
    }
}
