//! The benchmark's errors and exit codes.

/// `Result` with [`Error`] as its default error type.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit code of a runtime failure (and of a check that failed).
const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage error (as clap uses for its own).
const EXIT_USAGE: u8 = 2;

/// Why the benchmark could not run (a scenario whose checks fail is not an
/// error: it still reports its figures and the process exits with 1).
///
/// Each message includes what it wraps, so no variant reports a `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// The scenario is a known one that this build cannot run yet.
    #[error("scenario {0:?} is not available in this build of soiree-bench")]
    NotAvailable(String),
    /// The scenario needs a server that no option named.
    #[error("scenario {scenario:?} needs a server: pass --{option} URL")]
    MissingUrl {
        /// The scenario requested.
        scenario: &'static str,
        /// The option that names the server.
        option: &'static str,
    },
    /// The tokio runtime could not be built, or a process or pipe failed.
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(std::io::Error),
    /// The bus refused a setup step.
    #[error("bus error: {0}")]
    Bus(soiree::Error),
    /// A scenario's task panicked or was cancelled.
    #[error("scenario {scenario:?} did not finish: {reason}")]
    Aborted {
        /// The scenario that was running.
        scenario: &'static str,
        /// The panic message or cancellation.
        reason: String,
    },
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Self::Runtime(err)
    }
}

impl From<soiree::Error> for Error {
    fn from(err: soiree::Error) -> Self {
        Self::Bus(err)
    }
}

impl Error {
    /// The process exit code: 2 for a request this build cannot satisfy (as
    /// clap uses for usage errors), 1 otherwise.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::NotAvailable(_) | Self::MissingUrl { .. } => EXIT_USAGE,
            Self::Runtime(_) | Self::Bus(_) | Self::Aborted { .. } => EXIT_FAILURE,
        }
    }
}
