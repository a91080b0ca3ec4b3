//! The store's errors.

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the NATS store. Messages name the server (never its
/// credentials) and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL or an option is not usable.
    #[error("invalid nats store option {option}: {reason}")]
    InvalidOption {
        /// The option (`url`, `prefix`, `group`, …).
        option: &'static str,
        /// Why, and what is accepted.
        reason: String,
    },
    /// The server cannot be reached or refused the connection.
    #[error(
        "cannot connect to nats at {server}: {cause}; check that nats-server runs there with \
         JetStream enabled (-js) and that the credentials and TLS settings match"
    )]
    Connect {
        /// The servers, without credentials.
        server: String,
        /// The client's error, with any secret removed.
        cause: String,
    },
    /// A JetStream request failed.
    #[error("nats jetstream {operation} on {target} failed: {cause}")]
    JetStream {
        /// What was asked (`create stream`, `publish`, `ack`, …).
        operation: &'static str,
        /// The stream, consumer, bucket or subject.
        target: String,
        /// The server's or client's error.
        cause: String,
    },
    /// Opened with `create_missing(false)`, and the prefix's streams or the
    /// group's consumer do not exist.
    #[error("no {what} {name} on the nats servers: {hint}")]
    Missing {
        /// `stream` or `consumer group`.
        what: &'static str,
        /// Its name.
        name: String,
        /// What exists instead, and what to do.
        hint: String,
    },
    /// A credentials or certificate file cannot be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An event the store refused (a limit), or a stored entry that is not
    /// an event.
    #[error(transparent)]
    Event(#[from] soiree::Error),
}

impl Error {
    pub(crate) fn jetstream(
        operation: &'static str,
        target: impl Into<String>,
        cause: impl std::fmt::Display,
    ) -> Self {
        Self::JetStream {
            operation,
            target: target.into(),
            cause: cause.to_string(),
        }
    }
}

impl From<Error> for soiree::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Event(err) => err,
            other => soiree::Error::store(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_target_and_what_to_do() {
        let err = Error::Connect {
            server: "nats://127.0.0.1:4222".into(),
            cause: "connection refused".into(),
        };
        let text = err.to_string();
        assert!(
            text.contains("127.0.0.1:4222") && text.contains("-js"),
            "{text}"
        );
        let err = Error::jetstream("publish", "shop.order", "timed out");
        assert_eq!(
            err.to_string(),
            "nats jetstream publish on shop.order failed: timed out"
        );
        let store: soiree::Error = err.into();
        assert!(matches!(store, soiree::Error::Store(_)));
    }
}
