//! The crate's error type.

use std::sync::Arc;

/// `Result` with this crate's [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the SQL stores.
///
/// Through the [`soiree`] store traits these become [`soiree::Error::Store`]
/// (or [`soiree::Error::Serialization`] for rows that cannot be decoded).
/// No message ever contains a database password, nor a database source
/// position. Each message says everything once: it includes its cause, and
/// no variant reports a [`source`](std::error::Error::source), so a reporter
/// that walks the chain prints nothing twice.
///
/// # Examples
///
/// ```
/// let err = soiree_sql::Error::InvalidConfig("lease_timeout must be positive".into());
/// assert_eq!(err.to_string(), "invalid configuration: lease_timeout must be positive");
/// let core: soiree::Error = err.into();
/// assert!(matches!(core, soiree::Error::Store(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database returned an error, or the connection failed. The
    /// message is the database's own (its SQLSTATE, detail and hint on
    /// PostgreSQL), without the server's source position.
    #[error("database error: {}", describe(.0))]
    Database(sqlx::Error),
    /// No connection could be made to the PostgreSQL server when the store
    /// was built (refused, unreachable, timed out, TLS refused). Names the
    /// server (host and port, never a password) and the system's reason.
    #[error(
        "cannot connect to postgres at {server}: {reason}; check that the server runs and accepts connections there"
    )]
    Connect {
        /// The server's address.
        server: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The SQLite database file could not be opened or created. Names the
    /// file and what to do.
    #[error("cannot open sqlite database {path}: {reason}")]
    Open {
        /// The database file.
        path: String,
        /// Why, and what to do.
        reason: String,
    },
    /// The store's migrations could not be applied.
    #[error("migration failed: {}", describe_migrate(.0))]
    Migrate(sqlx::migrate::MigrateError),
    /// Another process held the lock of the schema's migrations for longer
    /// than `build` waits (10 minutes): it is still migrating, or stuck.
    #[error(
        "schema {schema} has been migrated by another process for more than {waited_s} s; \
         retry once it is done, or look for a stuck migration in pg_stat_activity"
    )]
    MigrationLocked {
        /// The schema.
        schema: String,
        /// How long `build` waited, in seconds.
        waited_s: u64,
    },
    /// A builder option or URL was rejected.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An event or row could not be encoded or decoded.
    #[error("serialization error: {0}")]
    Serialization(serde_json::Error),
    /// A topic given to `emit_in` is not a valid concrete topic.
    #[error("invalid topic name {topic:?}: {reason}")]
    InvalidTopic {
        /// The topic as given.
        topic: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A table, column or schema name given for mutation triggers is not a
    /// plain SQL identifier (letters, digits and `_`, not starting with a
    /// digit, at most 63 bytes): refused before any SQL is built.
    #[error("invalid identifier {name:?}: {reason}")]
    InvalidIdentifier {
        /// The name as given.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The event was rejected by soiree before anything was written: a
    /// payload with no JSON form, an event whose own topic differs from the
    /// one emitted, or an event past one of the [`soiree::limits`]
    /// ([`soiree::Error::LimitExceeded`], [`soiree::Error::InvalidEventId`]).
    /// Through the store traits it becomes that error itself.
    #[error("invalid event: {0}")]
    Event(soiree::Error),
    /// A text value contains a NUL character, which the databases refuse.
    #[error("{0} contains a NUL character")]
    NulCharacter(&'static str),
    /// A receipt given to `ack` was not issued by a SQL store.
    #[error("invalid receipt {0:?}")]
    InvalidReceipt(String),
    /// Receipts of a lease this consumer no longer holds (it expired and was
    /// claimed again, or was already acknowledged): their events were not
    /// acknowledged by this call and are delivered again. Becomes
    /// [`soiree::Error::LeasesLost`], which the bus does not try again.
    #[error("stale lease: {receipts} receipts of expired or reassigned leases were refused")]
    StaleLease {
        /// How many receipts were refused.
        receipts: usize,
    },
    /// Nothing matched: no dead letter of the group has this event id.
    #[error("not found: {0}")]
    NotFound(String),
    /// A page cursor given to the history was not issued by this store.
    #[error("invalid page cursor {0:?}")]
    InvalidCursor(String),
    /// The store's background writer stopped (its runtime is shutting down).
    #[error("the store's background writer stopped")]
    WriterStopped,
    /// Results accepted earlier were still not written after this long (the
    /// database is unreachable); the acknowledgement waiting for them failed.
    #[error("results were not written within {0:?}")]
    FlushTimeout(std::time::Duration),
    /// The database holds no soiree store where the builder looked (its
    /// tables do not exist): the wrong database, schema or file, or one
    /// whose application has not applied the store's migrations. A store
    /// built with [`read_only`](crate::SqliteStoreBuilder::read_only) or
    /// `create_missing(false)` creates nothing, so it says so instead.
    #[error("{location} holds no soiree store ({reason})")]
    NotAStore {
        /// Where the builder looked: `host:port/database (schema s)`, a file.
        location: String,
        /// What is missing, and what exists instead when the store can tell.
        reason: String,
    },
    /// The consumer group has no cursor in the store (no consumer of it ever
    /// started), and the builder was told not to create it.
    #[error("no consumer group {group:?}; groups: {}", list_or_none(.groups))]
    NoSuchGroup {
        /// The group asked for.
        group: String,
        /// The groups the store has (at most 100).
        groups: Vec<String>,
    },
    /// A write refused for lack of a privilege: the role, ACL user or file
    /// lets this store read but not do `operation`.
    #[error("{operation} needs {needs}; {lacking}")]
    PermissionDenied {
        /// What was attempted: `replay`, `purge dead letters`.
        operation: &'static str,
        /// The privileges the operation needs.
        needs: String,
        /// Which of them are lacking, as the database tells.
        lacking: String,
    },
    /// A batched write that this call was part of failed; the error is
    /// this call's own (a batch failing for good is split until each item
    /// fails alone).
    #[error("batched write failed: {0}")]
    Batch(Arc<Error>),
    /// A settling call settled the other deliveries but not these: listener
    /// results of theirs kept failing for a transient reason and were given
    /// up, so they are delivered again after their lease (results before
    /// ack, see [`soiree::EventQueue::ack`]). Through the store traits it
    /// becomes [`soiree::Error::ResultsNotSaved`].
    #[error(
        "{deliveries} deliveries not settled: listener results of theirs could not be saved (delivered again)"
    )]
    ResultsNotSaved {
        /// How many deliveries were not settled.
        deliveries: usize,
    },
    /// A transactional listener's lease was taken over before it could
    /// commit (its lease or retry claim expired, was claimed again by
    /// another consumer, or was split): its transaction was rolled back,
    /// nothing of it committed, and the delivery's new owner runs it.
    #[error(
        "lease taken over: listener {listener} could not commit its work on event {event_id} \
         (the lease expired or another consumer claimed it); its transaction was rolled back \
         and the new owner delivers the event; raise lease_timeout or max_handler_time if the \
         listener is slow"
    )]
    LeaseLost {
        /// The listener.
        listener: String,
        /// The event's `soiree.event_id`.
        event_id: String,
    },
    /// A listener that records its runs in the database got an event it
    /// cannot record: a transactional listener ([`SqlStore::on_tx`]) ran
    /// outside a delivery of its store's queue (no receipt, or no event
    /// id), or an [`Inbox`] got an event without an id.
    ///
    /// [`SqlStore::on_tx`]: crate::SqlStore::on_tx
    /// [`Inbox`]: crate::Inbox
    #[error(
        "listener {listener} cannot record its run: the event {reason}; transactional listeners \
         run only on deliveries of a bus built with their store, the inbox only on events with \
         an id"
    )]
    NotDelivered {
        /// The listener.
        listener: String,
        /// What the event lacks, in words (`has no event id`).
        reason: &'static str,
    },
    /// A transactional listener was registered on a bus whose store is not
    /// the store it was registered through ([`SqlStore::on_tx`]): its
    /// fence, success record and acknowledgement need the deliveries of
    /// this very store.
    ///
    /// [`SqlStore::on_tx`]: crate::SqlStore::on_tx
    #[error(
        "transactional listener {listener} not registered: the bus's store is {bus_store}, not \
         this store ({store}); register it through the store the bus was built with (or a clone \
         of it)"
    )]
    NotThisStore {
        /// The listener.
        listener: String,
        /// This store: its location (no credentials) and group.
        store: String,
        /// What the bus runs on instead, in words.
        bus_store: String,
    },
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(err)
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate(err)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Self::Serialization(err)
    }
}

/// A sqlx error in words, once: a database's error is rebuilt from its
/// parts, because sqlx's text of a PostgreSQL error ends with the server's
/// source line (`… at line 948`), which tells the reader nothing.
fn describe(err: &sqlx::Error) -> String {
    let sqlx::Error::Database(db) = err else {
        return err.to_string();
    };
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let mut text = format!("{} (SQLSTATE {})", pg.message(), pg.code());
        if let Some(detail) = pg.detail() {
            text.push_str("; ");
            text.push_str(detail);
        }
        if let Some(hint) = pg.hint() {
            text.push_str("; hint: ");
            text.push_str(hint);
        }
        return text;
    }
    db.message().to_owned()
}

/// A migration error in words, with any database error rebuilt by
/// [`describe`].
fn describe_migrate(err: &sqlx::migrate::MigrateError) -> String {
    use sqlx::migrate::MigrateError;
    match err {
        MigrateError::Execute(err) => format!("while executing migrations: {}", describe(err)),
        MigrateError::ExecuteMigration(err, version) => {
            format!("while executing migration {version}: {}", describe(err))
        }
        other => other.to_string(),
    }
}

impl Error {
    /// Whether retrying the same write can never succeed: the database
    /// refused the data itself (a constraint, a value too large to index,
    /// an invalid encoding or value), not the connection. Writes failing
    /// this way are split to find the offending item rather than retried.
    pub(crate) fn is_permanent(&self) -> bool {
        match self {
            Error::Database(sqlx::Error::Database(db)) => refuses_data(db.as_ref()),
            Error::Database(sqlx::Error::Encode(_))
            | Error::Serialization(_)
            | Error::NulCharacter(_)
            | Error::InvalidTopic { .. }
            | Error::Event(_) => true,
            Error::Batch(inner) => inner.is_permanent(),
            _ => false,
        }
    }
}

impl soiree::kit::BatchError for Error {
    fn is_permanent(&self) -> bool {
        Error::is_permanent(self)
    }
}

impl From<soiree::kit::WriteError<Error>> for Error {
    fn from(err: soiree::kit::WriteError<Error>) -> Self {
        use soiree::kit::WriteError;
        match err {
            WriteError::Failed(err) => Error::Batch(err),
            WriteError::Timeout(limit) => Error::FlushTimeout(limit),
            // `Stopped`, and whatever the kit adds later.
            _ => Error::WriterStopped,
        }
    }
}

/// Whether a database error is about the data written: SQLSTATE classes 22
/// (data exception), 23 (integrity constraint) and 54 (program limit, such
/// as an index row too large) on PostgreSQL; `SQLITE_TOOBIG`,
/// `SQLITE_CONSTRAINT`, `SQLITE_MISMATCH` and `SQLITE_RANGE` on SQLite.
fn refuses_data(db: &dyn sqlx::error::DatabaseError) -> bool {
    if !matches!(db.kind(), sqlx::error::ErrorKind::Other) {
        // Unique, foreign key, not-null and check violations.
        return true;
    }
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return matches!(pg.code().get(..2), Some("22" | "23" | "54"));
    }
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let primary = db
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            .map(|code| code & 0xff);
        return matches!(primary, Some(18 | 19 | 20 | 25));
    }
    false
}

/// `a, b, c`, or `none` for an empty list.
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
            Error::ResultsNotSaved { deliveries } => soiree::Error::ResultsNotSaved { deliveries },
            Error::StaleLease { receipts } => soiree::Error::LeasesLost {
                deliveries: receipts,
            },
            other => soiree::Error::store(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// One value of every variant (a new variant fails to compile here
    /// until it is added: the match below is exhaustive within the crate).
    fn one_of_each() -> Vec<Error> {
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let all = vec![
            Error::Database(sqlx::Error::Io(io)),
            Error::Database(sqlx::Error::PoolTimedOut),
            Error::Connect {
                server: "127.0.0.1:1".into(),
                reason: "Connection refused (os error 111)".into(),
            },
            Error::Open {
                path: "/x/db.sqlite".into(),
                reason: "directory /x does not exist".into(),
            },
            Error::Migrate(sqlx::migrate::MigrateError::Execute(
                sqlx::Error::PoolClosed,
            )),
            Error::InvalidConfig("bad".into()),
            Error::Serialization(json),
            Error::InvalidTopic {
                topic: "a..b".into(),
                reason: "empty segment",
            },
            Error::InvalidIdentifier {
                name: "a-b".into(),
                reason: "not an identifier",
            },
            Error::Event(soiree::Error::store(std::io::Error::other("inner"))),
            Error::NulCharacter("topic"),
            Error::InvalidReceipt("r".into()),
            Error::StaleLease { receipts: 2 },
            Error::NotFound("evt".into()),
            Error::InvalidCursor("c".into()),
            Error::WriterStopped,
            Error::FlushTimeout(std::time::Duration::from_secs(1)),
            Error::Batch(Arc::new(Error::WriterStopped)),
            Error::ResultsNotSaved { deliveries: 1 },
            Error::LeaseLost {
                listener: "billing".into(),
                event_id: "evt".into(),
            },
            Error::NotDelivered {
                listener: "billing".into(),
                reason: "has no receipt",
            },
            Error::NotThisStore {
                listener: "billing".into(),
                store: "shop.db, group default".into(),
                bus_store: "no store".into(),
            },
            Error::MigrationLocked {
                schema: "s".into(),
                waited_s: 600,
            },
            Error::NotAStore {
                location: "127.0.0.1:5432/db".into(),
                reason: "no soiree_cursors table".into(),
            },
            Error::NoSuchGroup {
                group: "typo".into(),
                groups: vec!["soiree".into()],
            },
            Error::PermissionDenied {
                operation: "replay",
                needs: "INSERT on soiree_retries".into(),
                lacking: "role lacks INSERT".into(),
            },
        ];
        for err in &all {
            match err {
                Error::Database(_)
                | Error::Connect { .. }
                | Error::Open { .. }
                | Error::Migrate(_)
                | Error::InvalidConfig(_)
                | Error::Serialization(_)
                | Error::InvalidTopic { .. }
                | Error::InvalidIdentifier { .. }
                | Error::Event(_)
                | Error::NulCharacter(_)
                | Error::InvalidReceipt(_)
                | Error::StaleLease { .. }
                | Error::NotFound(_)
                | Error::InvalidCursor(_)
                | Error::WriterStopped
                | Error::FlushTimeout(_)
                | Error::Batch(_)
                | Error::ResultsNotSaved { .. }
                | Error::LeaseLost { .. }
                | Error::NotDelivered { .. }
                | Error::NotThisStore { .. }
                | Error::MigrationLocked { .. }
                | Error::NotAStore { .. }
                | Error::NoSuchGroup { .. }
                | Error::PermissionDenied { .. } => {}
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

    #[test]
    fn messages_are_lowercase() {
        for err in one_of_each() {
            let text = err.to_string();
            let first = text.chars().next().unwrap();
            assert!(!first.is_uppercase(), "{text}");
        }
    }
}
