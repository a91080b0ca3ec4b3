//! The crate's error type.

use std::time::Duration;

/// `Result` with this crate's [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the Redis store.
///
/// Through the [`soiree`] store traits these become [`soiree::Error::Store`]
/// (or [`soiree::Error::Serialization`] for entries that cannot be decoded).
/// Each message says everything once: it includes its cause, and no variant
/// reports a [`source`](std::error::Error::source), so a reporter that walks
/// the chain prints nothing twice.
///
/// # Examples
///
/// ```
/// let err = soiree_redis::Error::NotFound("evt-1".into());
/// let core: soiree::Error = err.into();
/// assert!(matches!(core, soiree::Error::Store(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis returned an error, or the connection failed.
    #[error("redis error: {0}")]
    Redis(redis::RedisError),
    /// Redis refused the credentials (wrong password, unknown or disabled
    /// ACL user), or wants some and got none. The message never holds the
    /// password.
    #[error("redis refused the credentials: {0}")]
    Auth(redis::RedisError),
    /// No connection could be made to the server (refused, unreachable,
    /// timed out). Names the server (host and port, never a password).
    #[error(
        "cannot connect to redis at {server}: {cause}; check that the server runs and accepts connections there"
    )]
    Connect {
        /// The server's address.
        server: String,
        /// What the connection attempt said (in the message, not a
        /// `source()`).
        cause: redis::RedisError,
    },
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis did not answer a write (an append, a result, an
    /// acknowledgement) within the store's `response_timeout` after it was
    /// handed over: the server hangs, is overloaded, or the connection is
    /// being re-established. Names the server (host and port, never a
    /// password). A write that was sent may still take effect.
    #[error(
        "redis at {server} did not answer within {after:?}; {}",
        if *sent { "the write was sent and may still take effect" } else { "the write was not sent" }
    )]
    Unanswered {
        /// The server's address.
        server: String,
        /// The write timeout (the store's `response_timeout`).
        after: Duration,
        /// Whether the write went out before it was given up.
        sent: bool,
    },
    /// A builder option was rejected.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An entry or value could not be encoded or decoded.
    #[error("serialization error: {0}")]
    Serialization(serde_json::Error),
    /// Redis answered with a reply of an unexpected shape.
    #[error("unexpected reply from redis: {0}")]
    UnexpectedReply(String),
    /// A page cursor (or dead-letter id) is not a stream entry id.
    #[error("invalid cursor {0:?}: expected a stream entry id such as 1700000000000-0")]
    InvalidCursor(String),
    /// There is no soiree store under the prefix (its events stream does
    /// not exist, or is not a stream), and the builder was told not to
    /// create one.
    #[error("no soiree store under prefix {prefix:?}: {reason}")]
    NotAStore {
        /// The prefix asked for.
        prefix: String,
        /// What is missing, and which prefixes hold a store instead.
        reason: String,
    },
    /// The consumer group does not exist on the events stream, and the
    /// builder was told not to create it.
    #[error("no consumer group {group:?}; groups: {}", list_or_none(.groups))]
    NoSuchGroup {
        /// The group asked for.
        group: String,
        /// The groups of the events stream.
        groups: Vec<String>,
    },
    /// Redis refused a command for lack of an ACL permission (`NOPERM`).
    #[error("{operation} needs {needs}; {lacking}")]
    PermissionDenied {
        /// What was attempted: `replay`, `purge dead letters`.
        operation: &'static str,
        /// The commands and keys the operation needs.
        needs: String,
        /// What Redis refused.
        lacking: String,
    },
    /// No stored event has the given event id.
    #[error("event not found: {0:?}")]
    NotFound(String),
    /// The event was refused before anything was written: it is past one
    /// of the [`soiree::limits`] ([`soiree::Error::LimitExceeded`],
    /// [`soiree::Error::InvalidTopicName`], [`soiree::Error::InvalidEventId`]).
    /// Through the store traits it becomes that error itself.
    #[error("invalid event: {0}")]
    Event(soiree::Error),
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Self::Serialization(err)
    }
}

impl From<redis::RedisError> for Error {
    fn from(err: redis::RedisError) -> Self {
        let auth = err.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(err.code(), Some("NOAUTH" | "WRONGPASS"));
        if auth {
            Self::Auth(err)
        } else {
            Self::Redis(err)
        }
    }
}

impl Error {
    /// The Redis error code (`NOGROUP`, `BUSYGROUP`, …), if Redis sent one.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            Self::Redis(err) => err.code(),
            _ => None,
        }
    }

    /// Whether Redis refused the command itself, for good: an error reply
    /// (`WRONGTYPE`, `NOPERM`, …) other than those that mean "not now"
    /// (`OOM`, `LOADING`, `BUSY`, `TRYAGAIN`, `MASTERDOWN`, `READONLY`,
    /// `CLUSTERDOWN`). No reply at all (the connection, a timeout) is not.
    pub(crate) fn refused_for_good(&self) -> bool {
        !matches!(
            self.code(),
            None | Some(
                "OOM" | "LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN" | "READONLY" | "CLUSTERDOWN"
            )
        )
    }
}

/// `"a", "b"`, or `none` for an empty list.
fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names
            .iter()
            .map(|name| format!("{name:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl From<Error> for soiree::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Serialization(err) => soiree::Error::serialization(err),
            Error::Event(err) => err,
            other => soiree::Error::store(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// One value of every variant (the match keeps the list complete).
    fn one_of_each() -> Vec<Error> {
        let refused = || {
            redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ))
        };
        let all = vec![
            Error::Redis(refused()),
            Error::Auth(refused()),
            Error::Connect {
                server: "127.0.0.1:1".into(),
                cause: refused(),
            },
            Error::Timeout(Duration::from_secs(1)),
            Error::Unanswered {
                server: "127.0.0.1:1".into(),
                after: Duration::from_secs(1),
                sent: true,
            },
            Error::InvalidConfig("bad".into()),
            Error::Serialization(serde_json::from_str::<u8>("x").unwrap_err()),
            Error::UnexpectedReply("x".into()),
            Error::InvalidCursor("x".into()),
            Error::NotFound("x".into()),
            Error::NotAStore {
                prefix: "typo".into(),
                reason: "no events stream".into(),
            },
            Error::NoSuchGroup {
                group: "typo".into(),
                groups: vec!["soiree".into()],
            },
            Error::PermissionDenied {
                operation: "replay",
                needs: "+xadd".into(),
                lacking: "NOPERM".into(),
            },
            Error::Event(soiree::Error::store(std::io::Error::other("inner"))),
        ];
        for err in &all {
            match err {
                Error::Redis(_)
                | Error::Auth(_)
                | Error::Connect { .. }
                | Error::Timeout(_)
                | Error::Unanswered { .. }
                | Error::InvalidConfig(_)
                | Error::Serialization(_)
                | Error::UnexpectedReply(_)
                | Error::InvalidCursor(_)
                | Error::NotFound(_)
                | Error::NotAStore { .. }
                | Error::NoSuchGroup { .. }
                | Error::PermissionDenied { .. }
                | Error::Event(_) => {}
            }
        }
        all
    }

    #[test]
    fn no_message_repeats_its_source() {
        for err in one_of_each() {
            let mut current: &dyn std::error::Error = &err;
            let mut depth = 0;
            while let Some(source) = current.source() {
                let (text, cause) = (current.to_string(), source.to_string());
                assert!(
                    !text.contains(&cause),
                    "{err:?}: {text:?} repeats its source {cause:?}"
                );
                current = source;
                depth += 1;
                assert!(depth < 16, "{err:?}: source chain too long");
            }
            // The crate's rule: the message holds the cause, no source.
            assert!(err.source().is_none(), "{err:?} reports a source");
        }
    }
}
