//! Progress on stderr: a bar on a terminal, plain lines otherwise. Results go
//! to stdout either way.
//!
//! On a terminal the bar shows the scenario running, the listener calls so
//! far (of the scenarios that count them, see [`watch`]) and the time spent;
//! it is redrawn by indicatif's own ticker from a counter the listeners
//! already keep, so nothing is added to the measured path. Phases that take
//! a while (a throwaway server starting) are announced with [`say`].

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// The bar being shown, if any: [`say`] prints above it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);
/// The listener-call counter of the scenario running, if it keeps one.
static WATCHED: Mutex<Option<Weak<AtomicU64>>> = Mutex::new(None);

/// Shows the calls counted in `counter` as the running scenario's progress.
pub(crate) fn watch(counter: &Arc<AtomicU64>) {
    *WATCHED.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::downgrade(counter));
}

/// The watched counter's value, while the scenario that keeps it runs.
fn watched() -> Option<u64> {
    let watched = WATCHED.lock().unwrap_or_else(PoisonError::into_inner);
    let counter = watched.as_ref()?.upgrade()?;
    Some(counter.load(Ordering::Relaxed))
}

/// Prints a phase or a note on stderr, above the bar if there is one.
pub(crate) fn say(message: &str) {
    match &*BAR.lock().unwrap_or_else(PoisonError::into_inner) {
        Some(bar) => bar.suspend(|| eprintln!("{message}")),
        None => eprintln!("{message}"),
    }
}

/// Shows which scenario is running.
#[derive(Debug)]
pub(crate) enum Progress {
    /// stderr is a terminal.
    Bar(ProgressBar),
    /// stderr is a file or pipe.
    Plain {
        /// Scenarios in this run.
        total: usize,
        /// The running scenario's name and start.
        running: Mutex<Option<(String, Instant)>>,
    },
}

impl Progress {
    /// Progress over `total` scenarios.
    pub(crate) fn new(total: usize) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::Plain {
                total,
                running: Mutex::new(None),
            };
        }
        let bar = ProgressBar::new(total as u64);
        let style = ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg} {elapsed} {calls}")
            .map(|style| {
                style.with_key(
                    "calls",
                    |_: &ProgressState, out: &mut dyn std::fmt::Write| {
                        if let Some(calls) = watched() {
                            let _ = write!(out, "({calls} listener calls)");
                        }
                    },
                )
            });
        if let Ok(style) = style {
            bar.set_style(style);
        }
        // A slow tick: the spinner's thread must not compete with the
        // benchmark for the machine's cores.
        bar.enable_steady_tick(Duration::from_millis(200));
        *BAR.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.clone());
        Self::Bar(bar)
    }

    /// Announces the scenario at `index` (from 0).
    pub(crate) fn start(&self, index: usize, name: &str) {
        *WATCHED.lock().unwrap_or_else(PoisonError::into_inner) = None;
        match self {
            Self::Bar(bar) => {
                bar.set_position(index as u64);
                bar.set_message(name.to_owned());
                bar.reset_elapsed();
            }
            Self::Plain { total, running } => {
                eprintln!("[{}/{total}] running {name}", index + 1);
                *running.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((name.to_owned(), Instant::now()));
            }
        }
    }

    /// Prints a result line on stdout, and on stderr (plain lines) how long
    /// the scenario took.
    pub(crate) fn output(&self, line: &str) {
        if let Self::Plain { running, .. } = self
            && let Some((name, start)) = running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        {
            eprintln!("{name} done in {:.1} s", start.elapsed().as_secs_f64());
        }
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
            *BAR.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    fn print(&self, print: impl FnOnce()) {
        match self {
            Self::Bar(bar) => bar.suspend(print),
            Self::Plain { .. } => print(),
        }
    }
}
