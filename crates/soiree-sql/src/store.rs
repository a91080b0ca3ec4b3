//! The store, one type for both databases: transactional emit and the
//! operations on its log, written once over the [`Driver`].

use std::fmt;
use std::sync::Arc;

use soiree::IntoEvent;
use soiree::mutation::{MutationPayload, Mutations};
use sqlx::{Pool, Transaction};

use crate::core::Core;
use crate::{Driver, Error, QueueStats, Result, SqlDeadLetter, SqlDeadLetterFilter};

/// A soiree store on a SQL database: an append-only event log read through
/// a cursor per consumer group, with leases, fencing tokens, handler
/// results, dedup, dead letters, and transactional emit
/// ([`emit_in`](SqlStore::emit_in)). Use it as
/// [`PostgresStore`](crate::PostgresStore) (`SqlStore<sqlx::Postgres>`) or
/// [`SqliteStore`](crate::SqliteStore) (`SqlStore<sqlx::Sqlite>`), or
/// generically over `DB: Driver`.
///
/// Give it to a bus with [`EventBusBuilder::store`](soiree::EventBusBuilder::store):
/// `emit` then appends the event to the log and the bus's consumers claim
/// it, run the listeners and acknowledge it. The store is cheap to clone;
/// keep a clone to emit inside your own transactions.
pub struct SqlStore<DB: Driver> {
    pub(crate) core: Arc<Core<DB::Backend>>,
    /// Where the store is, without credentials.
    pub(crate) location: Arc<str>,
}

impl<DB: Driver> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
            location: Arc::clone(&self.location),
        }
    }
}

impl<DB: Driver> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("driver", &DB::KIND)
            .field("location", &self.location)
            .field("group", &self.core.options.group)
            .field("consumer", &self.core.options.consumer_name())
            .finish_non_exhaustive()
    }
}

impl<DB: Driver> SqlStore<DB> {
    pub(crate) fn core(&self) -> &Arc<Core<DB::Backend>> {
        &self.core
    }

    /// The store's pool, for your own queries and transactions: on
    /// PostgreSQL the connection pool, on SQLite the single writer
    /// connection (as a pool of one).
    pub fn pool(&self) -> &Pool<DB> {
        DB::pool(&self.core.backend)
    }

    /// The consumer group this store reads with.
    pub fn group(&self) -> &str {
        &self.core.options.group
    }

    /// Where the store is, without credentials: on PostgreSQL
    /// `host:port/database` (and the schema when it is not `public`), on
    /// SQLite the database file's path.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// This store's consumer name, recorded on the leases it holds.
    pub fn consumer_name(&self) -> &str {
        self.core.options.consumer_name()
    }

    /// Begins a transaction for [`emit_in`](Self::emit_in) and your own
    /// writes; finish it with [`commit`](Self::commit) so that consumers
    /// are woken at once. On PostgreSQL it is a transaction of the pool; on
    /// SQLite a write transaction (`BEGIN IMMEDIATE`) on the store's writer
    /// connection: the store's own writes wait while it is open, so keep it
    /// short.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when no connection can be had (SQLite: the
    /// write lock within the busy timeout).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a transaction begun and dropped is rolled back.
    pub async fn begin(&self) -> Result<Transaction<'static, DB>> {
        DB::begin(&self.core.backend).await
    }

    /// Writes an event into the log inside the caller's transaction (or on
    /// any connection to the same database): it becomes visible to
    /// consumers when, and only if, that transaction commits. Returns the
    /// event's id (`soiree.event_id`, generated when the event has none).
    ///
    /// `event` is what [`EventBus::emit`](soiree::EventBus::emit) takes: an
    /// [`Event`](soiree::Event), a [`Payload`](soiree::Payload) or any
    /// serializable value.
    ///
    /// Consumers in this process are woken when the transaction is committed
    /// through [`commit`](Self::commit) (or after [`wake`](Self::wake));
    /// otherwise they find the event within the poll interval.
    ///
    /// An event due later ([`Event::deliver_at`](soiree::Event::deliver_at))
    /// is written into `soiree_scheduled` instead, in the same transaction:
    /// it is delivered at its due time, never before, and only if the
    /// transaction commits (see [Delayed events](crate#delayed-events-and-unique-keys)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo(store: soiree_sql::PostgresStore) -> soiree_sql::Result<()> {
    /// let mut tx = store.begin().await?;
    /// let id = store
    ///     .emit_in(&mut tx, "order.paid", serde_json::json!({ "order": 42 }))
    ///     .await?;
    /// store.commit(tx).await?;
    /// println!("emitted {id}");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTopic`] for a topic that is not concrete,
    /// [`Error::Event`] for a payload with no JSON form or an event whose own
    /// topic differs, [`Error::Database`] when the insert fails (on
    /// PostgreSQL the transaction is then aborted, as for any failed
    /// statement).
    ///
    /// # Cancel safety
    ///
    /// A cancelled call may or may not have inserted the row, in the
    /// caller's transaction: roll it back when in doubt.
    pub async fn emit_in(
        &self,
        conn: &mut DB::Connection,
        topic: &str,
        event: impl IntoEvent,
    ) -> Result<String> {
        let prepared = crate::emit::prepare(topic, event)?;
        let backend = &self.core.backend;
        match prepared.due_ms {
            Some(due) => DB::schedule_in(backend, conn, &[(prepared.row, due)]).await?,
            None => DB::insert(backend, conn, std::slice::from_ref(&prepared.row)).await?,
        }
        Ok(prepared.id)
    }

    /// Writes several events in one statement inside the caller's
    /// transaction, in order; returns their ids. See
    /// [`emit_in`](Self::emit_in).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo(store: soiree_sql::PostgresStore) -> soiree_sql::Result<()> {
    /// let mut tx = store.begin().await?;
    /// let ids = store
    ///     .emit_all_in(&mut tx, (0..100).map(|n| ("item.added", serde_json::json!({ "n": n }))))
    ///     .await?;
    /// store.commit(tx).await?;
    /// assert_eq!(ids.len(), 100);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`emit_in`](Self::emit_in); nothing is written when any
    /// event is rejected.
    ///
    /// # Cancel safety
    ///
    /// As for [`emit_in`](Self::emit_in).
    pub async fn emit_all_in<T, E>(
        &self,
        conn: &mut DB::Connection,
        events: impl IntoIterator<Item = (T, E)>,
    ) -> Result<Vec<String>>
    where
        T: AsRef<str>,
        E: IntoEvent,
    {
        let mut rows = Vec::new();
        let mut delayed = Vec::new();
        let mut ids = Vec::new();
        for prepared in crate::emit::prepare_all(events)? {
            ids.push(prepared.id);
            match prepared.due_ms {
                Some(due) => delayed.push((prepared.row, due)),
                None => rows.push(prepared.row),
            }
        }
        let backend = &self.core.backend;
        if !rows.is_empty() {
            DB::insert_owned(backend, conn, rows).await?;
        }
        if !delayed.is_empty() {
            DB::schedule_in(backend, conn, &delayed).await?;
        }
        Ok(ids)
    }

    /// Stages one mutation's events in the caller's transaction (or on any
    /// connection): they reach the listeners when, and only if, that
    /// transaction commits. Returns the ids of the events written: none
    /// when nobody wants the mutation ([`Mutations::wants`]). See
    /// [`mutation`](crate::mutation).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use soiree::mutation::{MutationPayload, Mutations, Operation};
    ///
    /// # #[allow(dead_code)]
    /// # async fn demo(store: soiree_sql::PostgresStore, mutations: Mutations) -> soiree_sql::Result<()> {
    /// let mut tx = store.begin().await?;
    /// sqlx::query("UPDATE organization_settings SET billing_email = 'a@b.c' WHERE id = 'os-1'")
    ///     .execute(&mut *tx)
    ///     .await?;
    /// let payload = MutationPayload::new(Operation::UpdateOne, "OrganizationSetting", "os-1")
    ///     .with_changed_fields(["billing_email"]);
    /// store.record(&mut tx, &mutations, &payload).await?;
    /// store.commit(tx).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Event`] for an entity type that is not a valid topic, and
    /// as for [`emit_all_in`](Self::emit_all_in).
    ///
    /// # Cancel safety
    ///
    /// As for [`emit_in`](Self::emit_in).
    pub async fn record(
        &self,
        conn: &mut DB::Connection,
        mutations: &Mutations,
        payload: &MutationPayload,
    ) -> Result<Vec<String>> {
        let events = crate::mutation::staged_events(mutations, payload)?;
        self.emit_all_in(conn, events).await
    }

    /// Commits a transaction and wakes consumers: this process's at once;
    /// on PostgreSQL other processes' too, through a `NOTIFY` sent after
    /// the commit (at most one every couple of milliseconds, however many
    /// commits); on SQLite other processes find the events by polling.
    ///
    /// A transaction in which a statement failed is rolled back by
    /// PostgreSQL at `COMMIT` without an error; this checks the transaction
    /// first (one more round trip, a statement that fails in an aborted
    /// transaction), so that such a commit is reported.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the commit fails or the transaction was
    /// aborted by a failed statement (nothing was committed: it is rolled
    /// back).
    ///
    /// # Cancel safety
    ///
    /// A cancelled commit may or may not have committed.
    pub async fn commit(&self, tx: Transaction<'_, DB>) -> Result<()> {
        DB::commit(tx).await?;
        self.wake();
        Ok(())
    }

    /// Wakes consumers after you committed events written with
    /// [`emit_in`](Self::emit_in) in a transaction of your own.
    pub fn wake(&self) {
        self.core.wake();
    }

    /// Removes the events that every consumer group's cursor passed, that
    /// no lease covers and that are older than `older_than`; returns how
    /// many. The store does it by itself with the builder's `retention`.
    /// SQLite deletes them in batches of 10,000; PostgreSQL truncates and
    /// drops whole partitions of the log (see `partition_size`; it creates
    /// the next partitions first) and deletes in batches only from its
    /// DEFAULT partition.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo(store: soiree_sql::SqliteStore) -> soiree_sql::Result<()> {
    /// let deleted = store
    ///     .prune_consumed(std::time::Duration::from_secs(7 * 86_400))
    ///     .await?;
    /// println!("{deleted} consumed events older than a week deleted");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when a delete fails (the batches and partitions
    /// before it stay removed). On PostgreSQL a partition whose lock is not
    /// had in time is left for a later call, without an error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: what was removed before the cancellation stays removed.
    pub async fn prune_consumed(&self, older_than: std::time::Duration) -> Result<u64> {
        self.core.prune_consumed(older_than).await
    }

    /// The group's backlog, the age of its oldest unconsumed event and, on
    /// PostgreSQL, the xmin lag; also sets the matching gauges (a consumer
    /// store refreshes them by itself every 15 s, or every quarter of the
    /// retention window).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo(store: soiree_sql::SqliteStore) -> soiree_sql::Result<()> {
    /// let stats = store.queue_stats().await?;
    /// println!("{} waiting, oldest {:?}", stats.backlog, stats.oldest_unconsumed_age);
    /// # Ok(()) }
    /// ```
    ///
    /// For the store's counts (events, results, dead letters, consumers,
    /// delayed events) see [`soiree::Inspect::stats`].
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when a read fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads (and sets gauges).
    pub async fn queue_stats(&self) -> Result<QueueStats> {
        self.core.stats().await
    }

    /// The former name of [`queue_stats`](Self::queue_stats). As an
    /// inherent method it hid [`soiree::Inspect::stats`] on a concrete
    /// store: call `queue_stats` for these gauges, or
    /// `soiree::Inspect::stats(&store)` for the store's counts.
    ///
    /// # Errors
    ///
    /// As for [`queue_stats`](Self::queue_stats).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads (and sets gauges).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `queue_stats`: this name hides `soiree::Inspect::stats` on a concrete store"
    )]
    pub async fn stats(&self) -> Result<QueueStats> {
        self.queue_stats().await
    }

    /// A page of the group's dead letters as stored ([`SqlDeadLetter`]:
    /// the columns as they are, even of a row that holds no event), oldest
    /// first; pass the page's `next` to get the following one.
    /// [`soiree::Inspect::dead_letters`] lists the same letters
    /// store-neutrally, with filters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo(store: soiree_sql::SqliteStore) -> soiree_sql::Result<()> {
    /// let mut cursor = None;
    /// loop {
    ///     let page = store.sql_dead_letters(cursor.as_deref(), 100).await?;
    ///     for dead in &page.items {
    ///         println!("{:?} {:?}: {}", dead.event_id, dead.topic, dead.error);
    ///     }
    ///     match page.next {
    ///         Some(next) => cursor = Some(next),
    ///         None => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCursor`] for a cursor this store did not issue,
    /// [`Error::Database`] when the read fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn sql_dead_letters(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<soiree::Page<SqlDeadLetter>> {
        self.core.dead_letters(cursor, limit).await
    }

    /// The old name of [`sql_dead_letters`](Self::sql_dead_letters). It
    /// hid [`soiree::Inspect::dead_letters`] (which takes a
    /// [`soiree::Query`]) on this type.
    ///
    /// # Errors
    ///
    /// As [`sql_dead_letters`](Self::sql_dead_letters).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `sql_dead_letters`: this name hid `soiree::Inspect::dead_letters`"
    )]
    pub async fn dead_letters(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<soiree::Page<SqlDeadLetter>> {
        self.sql_dead_letters(cursor, limit).await
    }

    /// Replays the dead letters of one event (by its `soiree.event_id`):
    /// they are delivered to the group again with the same event id, and
    /// listeners registered with `on_named` that already succeeded for it
    /// are skipped. Returns how many were replayed. To deliver an event
    /// again from the log (one that succeeded, or whose letters are gone),
    /// use [`soiree::Inspect::replay`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo(store: soiree_sql::SqliteStore) -> soiree_sql::Result<()> {
    /// let replayed = store
    ///     .replay_dead_letters_of("01J9ZQ0V6Y8P3N5Q7R2S4T6V8X")
    ///     .await?;
    /// println!("{replayed} dead letters delivered again");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no dead letter of the group has this id,
    /// [`Error::NulCharacter`] for an id with a NUL,
    /// [`Error::PermissionDenied`] when the role or file may not write,
    /// [`Error::Database`] when the write fails (nothing was replayed).
    pub async fn replay_dead_letters_of(&self, event_id: &str) -> Result<u64> {
        let filter = SqlDeadLetterFilter::all().event_id(event_id);
        match self.replay_sql_dead_letters(&filter).await? {
            0 => Err(Error::NotFound(event_id.to_owned())),
            n => Ok(n),
        }
    }

    /// The old name of [`replay_dead_letters_of`](Self::replay_dead_letters_of).
    /// It hid [`soiree::Inspect::replay`], which replays an event from the
    /// log, not its dead letters.
    ///
    /// # Errors
    ///
    /// As [`replay_dead_letters_of`](Self::replay_dead_letters_of).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `replay_dead_letters_of`: this name hid `soiree::Inspect::replay`, which replays from the log"
    )]
    pub async fn replay(&self, event_id: &str) -> Result<u64> {
        self.replay_dead_letters_of(event_id).await
    }

    /// Replays the dead letters chosen by `filter` (oldest first): they are
    /// delivered to the group again with their event ids. Returns how many.
    /// [`soiree::Inspect::replay_dead_letters`] does the same with a
    /// store-neutral selection (topic patterns, time ranges, ids).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo(store: soiree_sql::SqliteStore) -> soiree_sql::Result<()> {
    /// use soiree_sql::SqlDeadLetterFilter;
    /// let replayed = store
    ///     .replay_sql_dead_letters(&SqlDeadLetterFilter::all().topic("order.paid"))
    ///     .await?;
    /// println!("{replayed} dead letters delivered again");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`replay_dead_letters_of`](Self::replay_dead_letters_of), but
    /// none matching is `Ok(0)`.
    pub async fn replay_sql_dead_letters(&self, filter: &SqlDeadLetterFilter) -> Result<u64> {
        let core = &self.core;
        core.privileged(crate::privileges::REPLAY, core.replay_dead_letters(filter))
            .await
    }

    /// The old name of [`replay_sql_dead_letters`](Self::replay_sql_dead_letters).
    /// It hid [`soiree::Inspect::replay_dead_letters`] (which takes a
    /// [`soiree::DeadLetterSelection`]) on this type.
    ///
    /// # Errors
    ///
    /// As [`replay_sql_dead_letters`](Self::replay_sql_dead_letters).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `replay_sql_dead_letters`: this name hid `soiree::Inspect::replay_dead_letters`"
    )]
    pub async fn replay_dead_letters(&self, filter: &SqlDeadLetterFilter) -> Result<u64> {
        self.replay_sql_dead_letters(filter).await
    }
}
