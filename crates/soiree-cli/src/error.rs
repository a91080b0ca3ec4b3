//! The command's errors and exit codes.

/// `Result` with [`Error`] as its default error type.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit code of a runtime failure.
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage error or a refusal (as clap uses for usage errors).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code when what was named does not exist.
pub(crate) const EXIT_NOT_FOUND: u8 = 3;

/// Why a command could not run (a benchmark whose checks fail is not an
/// error: it still reports its figures and the process exits with 1).
///
/// Messages never hold a store URL's password.
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

    /// No store was named.
    #[error(
        "no store: pass --store URL or set SOIREE_STORE (redis://, postgres://, sqlite://PATH)"
    )]
    NoStore,
    /// The store URL's scheme is not one soiree knows.
    #[error(
        "unsupported store url scheme {scheme:?}: use redis://, rediss://, postgres://, postgresql://, sqlite://PATH or sqlite:PATH"
    )]
    UnsupportedScheme {
        /// The scheme as given (`mysql`), or empty when the URL has none.
        scheme: String,
    },
    /// The store URL is a bare file path.
    #[error("store url {path:?} has no scheme: for a SQLite file, use --store {:?}", format!("sqlite:{path}"))]
    BarePath {
        /// The path as given.
        path: String,
    },
    /// The store URL has a known scheme but cannot be used.
    #[error("bad {scheme} store url: {reason}")]
    BadUrl {
        /// The URL's scheme.
        scheme: String,
        /// Why, without the URL's password.
        reason: String,
    },
    /// The SQLite file does not exist (inspection never creates one).
    #[error("sqlite database {path:?} does not exist")]
    NoSuchFile {
        /// The path as given.
        path: String,
    },
    /// The store's server could not be reached.
    #[error("cannot reach the {kind} server at {server}: {reason}")]
    Unreachable {
        /// `redis`, `postgres`.
        kind: &'static str,
        /// Host and port, never a password.
        server: String,
        /// What the connection attempt said, without the password.
        reason: String,
    },
    /// The store could not be opened, read or written.
    #[error("{kind} store: {reason}")]
    Store {
        /// `redis`, `postgres`, `sqlite`, `memory`.
        kind: String,
        /// What went wrong, without the URL's password.
        reason: String,
    },
    /// What the URL and options name is not there: no soiree store at that
    /// place (schema, prefix, file), or no such consumer group. Names what
    /// exists instead.
    #[error("{kind} store: {reason}")]
    Missing {
        /// `redis`, `postgres`, `sqlite`.
        kind: &'static str,
        /// What is missing and what exists, without the URL's password.
        reason: String,
    },
    /// The store holds nothing with this id.
    #[error("no {what} with id {id:?}")]
    NotFound {
        /// `event`, `dead letter`.
        what: &'static str,
        /// The id as given.
        id: String,
    },
    /// A destructive command was not confirmed, or its selection is empty.
    #[error("{0}")]
    Refused(String),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    /// The dashboard could not start or stopped on an error.
    #[error(transparent)]
    Dashboard(#[from] soiree_dashboard::Error),
}

impl Error {
    /// The process exit code: 2 for a request this build cannot satisfy or
    /// that was refused (as clap uses for usage errors), 3 when what was
    /// named does not exist, 1 otherwise.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::NotAvailable(_)
            | Self::MissingUrl { .. }
            | Self::NoStore
            | Self::UnsupportedScheme { .. }
            | Self::BarePath { .. }
            | Self::BadUrl { .. }
            | Self::Refused(_) => EXIT_USAGE,
            Self::NoSuchFile { .. } | Self::Missing { .. } | Self::NotFound { .. } => {
                EXIT_NOT_FOUND
            }
            Self::Runtime(_)
            | Self::Bus(_)
            | Self::Aborted { .. }
            | Self::Unreachable { .. }
            | Self::Store { .. }
            | Self::Output(_) => EXIT_FAILURE,
            Self::Dashboard(soiree_dashboard::Error::TokenRequired { .. }) => EXIT_USAGE,
            Self::Dashboard(_) => EXIT_FAILURE,
        }
    }

    /// An error of an [`Inspect`](soiree::Inspect) call on a store of this
    /// kind: `NotFound` stays one.
    pub(crate) fn from_store(kind: &str, err: soiree::Error) -> Self {
        match err {
            soiree::Error::NotFound { what, id } => Self::NotFound { what, id },
            other => Self::Store {
                kind: kind.to_owned(),
                reason: strip_prefix(&other.to_string()).to_owned(),
            },
        }
    }
}

/// `store error: x` → `x` (the kind already says it is the store).
fn strip_prefix(text: &str) -> &str {
    text.strip_prefix("store error: ").unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(Error::NoStore.exit_code(), 2);
        assert_eq!(Error::Refused("no".into()).exit_code(), 2);
        let not_found = Error::from_store(
            "memory",
            soiree::Error::NotFound {
                what: "event",
                id: "e1".into(),
            },
        );
        assert_eq!(not_found.exit_code(), 3);
        assert_eq!(not_found.to_string(), r#"no event with id "e1""#);
        let store = Error::from_store("redis", soiree::Error::store("boom"));
        assert_eq!(store.exit_code(), 1);
        assert_eq!(store.to_string(), "redis store: boom");
    }
}
