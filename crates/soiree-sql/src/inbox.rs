//! The inbox: effectively-once database side effects for listeners on any
//! store (Redis, NATS, or a SQL store of another database). The listener
//! records `(group, listener, event id)` in its own transaction on the
//! application's database before its writes; a redelivery finds the row and
//! skips the work.

use std::marker::PhantomData;

use soiree::EventContext;

use crate::topic::no_nul;
use crate::{Error, Result};

/// The inbox table's statement, on both databases (`INBOX_TABLE`: its name). The
/// store's migrations create the same table.
const CREATE: &str = "CREATE TABLE IF NOT EXISTS INBOX_TABLE ( \
     group_name TEXT NOT NULL, \
     listener TEXT NOT NULL, \
     event_id TEXT NOT NULL, \
     received_at BIGINT NOT NULL, \
     PRIMARY KEY (group_name, listener, event_id))";

/// Records the receipt once; a concurrent duplicate waits for the first
/// one's transaction (PostgreSQL: the key's lock; SQLite: the write lock).
const RECEIVE: &str = "INSERT INTO INBOX_TABLE (group_name, listener, event_id, received_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";

/// The table's name when the connection's search path finds it.
const UNQUALIFIED: &str = "soiree_inbox";

/// An inbox in the application's database (`DB` is `sqlx::Postgres` or
/// `sqlx::Sqlite`): it makes a listener's writes to that database
/// effectively once whichever store carries the events (Redis, NATS, a
/// SQL store elsewhere). In the listener, begin a transaction on your
/// database, call [`receive`](Self::receive) first, do your writes only
/// when it returns `true`, and commit: the inbox row and the writes commit
/// together, so a redelivered event (after a crash, an expired lease, a
/// failed acknowledgement) finds the row and skips them.
///
/// The table is `soiree_inbox`, keyed by consumer group, listener id and
/// event id. A SQL store's migrations create it in the store's database (and
/// schema): take the inbox from the store, [`SqlStore::inbox`], when your
/// data lives there. On a database no store migrates, make it with
/// [`create_table`](Self::create_table) (or your own migrations) and use
/// [`Inbox::new`], which finds it through the connection's search path on
/// PostgreSQL. Rows are never deleted by the inbox: delete old ones by
/// `received_at` (Unix milliseconds) once redeliveries of their events can
/// no longer happen.
///
/// [`SqlStore::inbox`]: crate::SqlStore::inbox
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
    /// The table, schema-qualified when it comes from a store.
    table: String,
    _db: PhantomData<fn() -> DB>,
}

impl<DB> Clone for Inbox<DB> {
    fn clone(&self) -> Self {
        Self {
            group: self.group.clone(),
            table: self.table.clone(),
            _db: PhantomData,
        }
    }
}

impl<DB> std::fmt::Debug for Inbox<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("group", &self.group)
            .field("table", &self.table)
            .finish()
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
        Self::on_table(group, UNQUALIFIED.to_owned())
    }

    /// An inbox for `group` on `table` (a name the caller checked).
    pub(crate) fn on_table(group: impl Into<String>, table: String) -> Result<Self> {
        let group = group.into();
        checked("the inbox group", &group)?;
        Ok(Self {
            group,
            table,
            _db: PhantomData,
        })
    }

    /// `sql` with `INBOX_TABLE` naming the inbox's table.
    fn sql(&self, sql: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(sql.replace("INBOX_TABLE", &self.table))
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
            /// Creates the `soiree_inbox` table when it does not exist, for
            /// a database that no store migrates (a store's migrations
            /// create it: see [`SqlStore::inbox`](crate::SqlStore::inbox)).
            ///
            /// # Errors
            ///
            /// [`Error::Database`] when the statement fails.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe: the statement is one.
            pub async fn create_table(&self, conn: &mut $conn) -> Result<()> {
                sqlx::query(self.sql(CREATE)).execute(conn).await?;
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
                let inserted = sqlx::query(self.sql(RECEIVE))
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

#[cfg(feature = "postgres")]
impl crate::SqlStore<sqlx::Postgres> {
    /// An inbox for the consumer group `group` (the group of the bus whose
    /// deliveries it records, whichever store that bus runs on) on the
    /// `soiree_inbox` table that this store's migrations created in its
    /// schema: for listeners whose writes go to this store's database. See
    /// [`Inbox`].
    ///
    /// # Errors
    ///
    /// As for [`Inbox::new`].
    pub fn inbox(&self, group: impl Into<String>) -> Result<Inbox<sqlx::Postgres>> {
        // The schema name is checked at build (letters, digits and `_`).
        Inbox::on_table(group, format!("\"{}\".{UNQUALIFIED}", self.schema()))
    }
}

#[cfg(feature = "sqlite")]
impl crate::SqlStore<sqlx::Sqlite> {
    /// An inbox for the consumer group `group` (the group of the bus whose
    /// deliveries it records, whichever store that bus runs on) on the
    /// `soiree_inbox` table that this store's migrations created in its
    /// database: for listeners whose writes go to this store's database.
    /// See [`Inbox`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use soiree_sql::SqliteStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = SqliteStore::open("shop.db").await?;
    /// // The group of the bus whose listener records its runs (a Redis
    /// // bus's, say): no `create_table`, the migrations made the table.
    /// let inbox = store.inbox("billing")?;
    /// assert_eq!(inbox.group(), "billing");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`Inbox::new`].
    pub fn inbox(&self, group: impl Into<String>) -> Result<Inbox<sqlx::Sqlite>> {
        Inbox::on_table(group, UNQUALIFIED.to_owned())
    }
}
