//! The command's errors and exit codes.

/// `Result` with [`Error`] as its default error type.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit code of a runtime failure.
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage error or a refusal (as clap uses for usage errors).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code when what was named does not exist.
pub(crate) const EXIT_NOT_FOUND: u8 = 3;

/// Why a command could not run.
///
/// Messages never hold a store URL's password. Each message includes what
/// it wraps, so no variant reports a `source()`: a reporter that walks the
/// chain (`anyhow`'s `{:#}`, tracing's error fields) says it once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// The tokio runtime could not be built.
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(std::io::Error),
    /// The bus refused a setup step.
    #[error("bus error: {0}")]
    Bus(soiree::Error),

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
    #[error("cannot reach the {kind} server at {server}: {}", once(reason))]
    Unreachable {
        /// `redis`, `postgres`, `nats`.
        kind: &'static str,
        /// Host and port, never a password.
        server: String,
        /// What the connection attempt said, without the password.
        reason: String,
    },
    /// The store could not be opened, read or written.
    #[error("{kind} store: {}", once(reason))]
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
        /// `redis`, `postgres`, `sqlite`, `nats`.
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
    /// A page cursor (`--after`) that the store did not issue.
    #[error(
        "bad --after cursor {cursor:?}: not one this store issued (pass the cursor a previous page printed)"
    )]
    BadCursor {
        /// The cursor as given.
        cursor: String,
    },
    /// The `--listen` address cannot be resolved.
    #[error("cannot resolve --listen {addr}: {reason}")]
    BadListen {
        /// The HOST:PORT given.
        addr: String,
        /// What the resolver said.
        reason: String,
    },
    /// A destructive command was not confirmed, or its selection is empty.
    #[error("{0}")]
    Refused(String),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    /// The dashboard could not start or stopped on an error.
    #[error("{0}")]
    Dashboard(soiree_dashboard::Error),
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

impl From<soiree_dashboard::Error> for Error {
    fn from(err: soiree_dashboard::Error) -> Self {
        Self::Dashboard(err)
    }
}

impl Error {
    /// The process exit code: 2 for a request this build cannot satisfy or
    /// that was refused (as clap uses for usage errors), 3 when what was
    /// named does not exist, 1 otherwise.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::NoStore
            | Self::UnsupportedScheme { .. }
            | Self::BarePath { .. }
            | Self::BadUrl { .. }
            | Self::BadCursor { .. }
            | Self::BadListen { .. }
            | Self::Refused(_) => EXIT_USAGE,
            Self::NoSuchFile { .. } | Self::Missing { .. } | Self::NotFound { .. } => {
                EXIT_NOT_FOUND
            }
            Self::Runtime(_)
            | Self::Bus(_)
            | Self::Unreachable { .. }
            | Self::Store { .. }
            | Self::Output(_) => EXIT_FAILURE,
            Self::Dashboard(
                soiree_dashboard::Error::TokenRequired { .. }
                | soiree_dashboard::Error::WeakToken { .. },
            ) => EXIT_USAGE,
            Self::Dashboard(_) => EXIT_FAILURE,
        }
    }

    /// An error of an [`Inspect`](soiree::Inspect) call on a store of this
    /// kind: `NotFound` stays one.
    pub(crate) fn from_store(kind: &str, err: soiree::Error) -> Self {
        if let Some(cursor) = invalid_cursor(&err) {
            return Self::BadCursor { cursor };
        }
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

/// The cursor of a store error saying that a page cursor is not one of its
/// own: SQL and Redis stores say so with their error type, the memory store
/// in words.
fn invalid_cursor(err: &soiree::Error) -> Option<String> {
    let soiree::Error::Store(source) = err else {
        return None;
    };
    if let Some(soiree_sql::Error::InvalidCursor(cursor)) = source.downcast_ref() {
        return Some(cursor.clone());
    }
    if let Some(soiree_redis::Error::InvalidCursor(cursor)) = source.downcast_ref() {
        return Some(cursor.clone());
    }
    let text = source.to_string();
    let quoted = text.strip_prefix("invalid cursor ")?;
    Some(quoted.trim_matches('"').to_owned())
}

/// What a store's or driver's error message says, once: the wrappers that
/// only repeat that it is a database or Redis error (each layer's message
/// includes its source's) and the server's source positions are left out.
/// `database error: error returned from database: (code: 1) no such table:
/// x` → `no such table: x`.
fn once(reason: &str) -> &str {
    const WRAPPERS: [&str; 5] = [
        "store error: ",
        "database error: ",
        "error returned from database: ",
        "redis error: ",
        "serialization error: ",
    ];
    let mut text = reason;
    loop {
        let before = text.len();
        for wrapper in WRAPPERS {
            text = text.strip_prefix(wrapper).unwrap_or(text);
        }
        // SQLite's result code, in front of its message.
        if let Some(rest) = text.strip_prefix("(code: ")
            && let Some((code, message)) = rest.split_once(") ")
            && code.bytes().all(|b| b.is_ascii_digit())
        {
            text = message;
        }
        if text.len() == before {
            break;
        }
    }
    // PostgreSQL's position in its own source (`… at line 948`).
    if let Some((message, line)) = text.rsplit_once(" at line ")
        && !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
    {
        text = message;
    }
    text
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

    #[test]
    fn no_error_reports_the_source_its_message_includes() {
        let addr: std::net::SocketAddr = "127.0.0.1:8686".parse().unwrap();
        let in_use = || std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        for err in [
            Error::from(in_use()),
            Error::from(soiree::Error::store("boom")),
            Error::from(soiree_dashboard::Error::Bind {
                addr,
                source: in_use(),
            }),
            Error::Output(in_use()),
        ] {
            let text = err.to_string();
            assert!(
                std::error::Error::source(&err).is_none(),
                "{text} reports its source again"
            );
            assert_eq!(text.matches("address in use").count().max(1), 1, "{text}");
        }
    }

    #[test]
    fn bad_cursors_are_usage_errors() {
        let sql = soiree::Error::from(soiree_sql::Error::InvalidCursor("abc".into()));
        let redis = soiree::Error::from(soiree_redis::Error::InvalidCursor("abc".into()));
        let memory = soiree::Error::store(r#"invalid cursor "abc""#);
        for err in [sql, redis, memory] {
            let err = Error::from_store("store", err);
            assert_eq!(err.exit_code(), 2, "{err}");
            assert!(
                err.to_string().starts_with(r#"bad --after cursor "abc": "#),
                "{err}"
            );
        }
    }

    #[test]
    fn a_message_that_includes_its_source_is_shown_once() {
        let sqlite = Error::Store {
            kind: "sqlite".into(),
            reason: "database error: error returned from database: (code: 1) no such table: soiree_cursors (not a soiree store)".into(),
        };
        assert_eq!(
            sqlite.to_string(),
            "sqlite store: no such table: soiree_cursors (not a soiree store)"
        );
        let postgres = Error::from_store(
            "postgres",
            soiree::Error::store(
                "database error: error returned from database: database \"x\" does not exist at line 948",
            ),
        );
        assert_eq!(
            postgres.to_string(),
            r#"postgres store: database "x" does not exist"#
        );
        let redis = Error::Store {
            kind: "redis".into(),
            reason: "redis error: DB index is out of range".into(),
        };
        assert_eq!(redis.to_string(), "redis store: DB index is out of range");
        // Nothing else is cut.
        assert_eq!(once("at line 3 of the payload"), "at line 3 of the payload");
        assert_eq!(once("(code: x) y"), "(code: x) y");
    }
}
