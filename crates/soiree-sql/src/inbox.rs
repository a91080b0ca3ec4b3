//! The inbox: effectively-once database side effects for listeners on any
//! store (Redis, NATS, or a SQL store of another database). The listener
//! records `(group, listener, event id)` in its own transaction on the
//! application's database before its writes; a redelivery finds the row and
//! skips the work.

use std::marker::PhantomData;

use soiree::EventContext;

use crate::topic::no_nul;
use crate::{Error, Result};

/// The inbox table's statement, on both databases.
const CREATE: &str = "CREATE TABLE IF NOT EXISTS soiree_inbox ( \
     group_name TEXT NOT NULL, \
     listener TEXT NOT NULL, \
     event_id TEXT NOT NULL, \
     received_at BIGINT NOT NULL, \
     PRIMARY KEY (group_name, listener, event_id))";

/// Records the receipt once; a concurrent duplicate waits for the first
/// one's transaction (PostgreSQL: the key's lock; SQLite: the write lock).
const RECEIVE: &str = "INSERT INTO soiree_inbox (group_name, listener, event_id, received_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";

/// An inbox in the application's database (`DB` is `sqlx::Postgres` or
/// `sqlx::Sqlite`): it makes a listener's writes to that database
/// effectively once whichever store carries the events (Redis, NATS, a
/// SQL store elsewhere). In the listener, begin a transaction on your
/// database, call [`receive`](Self::receive) first, do your writes only
/// when it returns `true`, and commit: the inbox row and the writes commit
/// together, so a redelivered event (after a crash, an expired lease, a
/// failed acknowledgement) finds the row and skips them.
///
/// The table is `soiree_inbox` (in the connection's search path on
/// PostgreSQL), keyed by consumer group, listener id and event id; create it
/// with [`create_table`](Self::create_table) or your own migrations. Rows
/// are never deleted by the inbox: delete old ones by `received_at` (Unix
/// milliseconds) once redeliveries of their events can no longer happen.
///
/// # Examples
///
/// ```no_run
/// use soiree::EventBus;
/// use soiree_sql::{Inbox, sqlx::{self, Postgres}};
///
/// # #[allow(dead_code)]
/// # async fn demo(bus: EventBus, pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// let inbox = Inbox::<Postgres>::new("billing")?;
/// inbox.create_table(&mut *pool.acquire().await?).await?;
/// bus.on_named("invoice", "order.paid", move |ctx| {
///     let (pool, inbox) = (pool.clone(), inbox.clone());
///     async move {
///         let mut tx = pool.begin().await?;
///         if !inbox.receive(&mut tx, &ctx).await? {
///             return Ok(()); // done by an earlier delivery
///         }
///         sqlx::query("INSERT INTO invoices (event_id) VALUES ($1)")
///             .bind(ctx.event_id())
///             .execute(&mut *tx)
///             .await?;
///         tx.commit().await?;
///         Ok(())
///     }
/// })?;
/// # Ok(()) }
/// ```
pub struct Inbox<DB> {
    group: String,
    _db: PhantomData<fn() -> DB>,
}

impl<DB> Clone for Inbox<DB> {
    fn clone(&self) -> Self {
        Self {
            group: self.group.clone(),
            _db: PhantomData,
        }
    }
}

impl<DB> std::fmt::Debug for Inbox<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").field("group", &self.group).finish()
    }
}

impl<DB> Inbox<DB> {
    /// An inbox for the consumer group `group` (the bus's group on its
    /// store: successes count per group, as the stores' own dedup does).
    ///
    /// # Errors
    ///
    /// [`Error::NulCharacter`] for a group with a NUL, [`Error::Event`] for
    /// one longer than an event id may be.
    pub fn new(group: impl Into<String>) -> Result<Self> {
        let group = group.into();
        checked("the inbox group", &group)?;
        Ok(Self {
            group,
            _db: PhantomData,
        })
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// `(listener id, event id)` of the listener's run, checked.
    fn key(ctx: &EventContext) -> Result<(String, String)> {
        let listener = ctx.listener_id().as_str().to_owned();
        let Some(event_id) = ctx.event_id() else {
            return Err(Error::NotDelivered {
                listener,
                reason: "has no event id",
            });
        };
        checked("the listener id", &listener)?;
        checked("the event id", &event_id)?;
        Ok((listener, event_id))
    }
}

/// No NUL (the databases refuse it) and no longer than an event id (it is
/// part of an index key).
fn checked(what: &'static str, text: &str) -> Result<()> {
    no_nul(what, text)?;
    if text.len() > soiree::limits::MAX_EVENT_ID_LEN {
        return Err(Error::Event(soiree::Error::LimitExceeded {
            what,
            limit: soiree::limits::MAX_EVENT_ID_LEN,
            actual: text.len(),
        }));
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The inbox's operations on one database's connection type.
macro_rules! inbox_on {
    ($feature:literal, $db:ty, $conn:ty) => {
        #[cfg(feature = $feature)]
        impl Inbox<$db> {
            /// Creates the `soiree_inbox` table when it does not exist.
            ///
            /// # Errors
            ///
            /// [`Error::Database`] when the statement fails.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe: the statement is one.
            pub async fn create_table(&self, conn: &mut $conn) -> Result<()> {
                sqlx::query(CREATE).execute(conn).await?;
                Ok(())
            }

            /// Records this run of the listener in the transaction `conn`:
            /// `true` when it is the first (do the work, then commit),
            /// `false` when a committed run already recorded it (skip the
            /// work). A concurrent run of the same event waits for this
            /// transaction, then gets `false` if it committed.
            ///
            /// # Errors
            ///
            /// [`Error::NotDelivered`] for an event without an id,
            /// [`Error::NulCharacter`] or [`Error::Event`] for ids the
            /// inbox cannot key, [`Error::Database`] when the insert fails.
            ///
            /// # Cancel safety
            ///
            /// A cancelled call may or may not have inserted the row, in
            /// the caller's transaction: roll it back.
            pub async fn receive(&self, conn: &mut $conn, ctx: &EventContext) -> Result<bool> {
                let (listener, event_id) = Self::key(ctx)?;
                let inserted = sqlx::query(RECEIVE)
                    .bind(&self.group)
                    .bind(listener)
                    .bind(event_id)
                    .bind(now_ms())
                    .execute(conn)
                    .await?
                    .rows_affected();
                Ok(inserted == 1)
            }
        }
    };
}

inbox_on!("postgres", sqlx::Postgres, sqlx::PgConnection);
inbox_on!("sqlite", sqlx::Sqlite, sqlx::SqliteConnection);
