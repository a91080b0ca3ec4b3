//! The command's errors.

/// `Result` with [`Error`] as its default error type.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a command could not run (a benchmark whose checks fail is not an
/// error: it still reports its figures and the process exits with 1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// The scenario is a known one that this build cannot run yet.
    #[error("scenario {0:?} is not available in this build of soiree")]
    NotAvailable(String),
    /// The scenario needs a server that no option named.
    #[error("scenario {scenario:?} needs a server: pass --{option} URL")]
    MissingUrl {
        /// The scenario requested.
        scenario: &'static str,
        /// The option that names the server.
        option: &'static str,
    },
    /// The tokio runtime could not be built.
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// The bus refused a setup step.
    #[error("bus error: {0}")]
    Bus(#[from] soiree::Error),
    /// A scenario's task panicked or was cancelled.
    #[error("scenario {scenario:?} did not finish: {reason}")]
    Aborted {
        /// The scenario that was running.
        scenario: &'static str,
        /// The panic message or cancellation.
        reason: String,
    },
}

impl Error {
    /// The process exit code: 2 for a request this build cannot satisfy (as
    /// clap uses for usage errors), 1 otherwise.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::NotAvailable(_) | Self::MissingUrl { .. } => 2,
            Self::Runtime(_) | Self::Bus(_) | Self::Aborted { .. } => 1,
        }
    }
}
