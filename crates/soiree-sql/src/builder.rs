//! The store's builder: the options both databases have, written once;
//! those only one has are on `impl SqlStoreBuilder<sqlx::Postgres>` and
//! `impl SqlStoreBuilder<sqlx::Sqlite>`, with `build`.

use std::fmt;
use std::time::Duration;

use soiree::MetricsRegistry;

use crate::options::Options;
use crate::{Driver, FailurePolicy};

/// Builds a [`SqlStore`](crate::SqlStore):
/// `PostgresStore::builder(url)…build().await` or
/// `SqliteStore::builder(path)…build().await`. Used as
/// [`PostgresStoreBuilder`](crate::PostgresStoreBuilder) and
/// [`SqliteStoreBuilder`](crate::SqliteStoreBuilder), whose pages list the
/// options and their defaults.
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct SqlStoreBuilder<DB: Driver> {
    pub(crate) options: Options,
    pub(crate) registry: Option<MetricsRegistry>,
    /// The options only this database has.
    pub(crate) settings: DB::Settings,
}

impl<DB: Driver> fmt::Debug for SqlStoreBuilder<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStoreBuilder")
            .field("driver", &DB::KIND)
            .field("options", &self.options)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<DB: Driver> SqlStoreBuilder<DB> {
    pub(crate) fn new(options: Options, settings: DB::Settings) -> Self {
        Self {
            options,
            registry: None,
            settings,
        }
    }

    /// Sets the consumer group (default `soiree`). Stores with the same
    /// group share the work (each event is handled by one of them);
    /// different groups each get every event.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.options.group = group.into();
        self
    }

    /// Sets this store's consumer name, recorded on the leases it holds.
    /// Keep it unique among the live consumers of the group.
    ///
    /// The default is `<host>-<n>`: the lowest slot `n` of this database
    /// and group that no live store on this host holds (a lock file in
    /// the temporary directory, released by the operating system when
    /// the process ends, even by `kill -9`). Two live stores get
    /// different names; a process restarted alone gets its old name
    /// back and, since no live store can hold that name, takes over at
    /// once the leases and claimed retry rows recorded under it (with
    /// new fencing tokens) instead of waiting `lease_timeout` for them
    /// to expire. A name set here is not taken over that way: another
    /// live process might use it.
    pub fn consumer(mut self, consumer: impl Into<String>) -> Self {
        self.options.consumer = Some(consumer.into());
        self
    }

    /// Sets how long a claimed range of events (a lease) stays with this
    /// consumer without being extended (default 30 s; at least 100 ms).
    /// The bus consuming the store extends its leases every third of
    /// this (`EventQueue::extend`): while their events wait in the
    /// store's buffer and while listeners run, until each event is
    /// acknowledged or failed (or has been out for `max_handler_time`).
    /// A consumer that dies stops extending them: they expire and their
    /// unacknowledged events are delivered again. Listener results that
    /// fail for a transient reason are retried for a third of this (at
    /// most 60 s) before their deliveries are held back (results before
    /// ack, see `EventQueue::ack`).
    pub fn lease_timeout(mut self, timeout: Duration) -> Self {
        self.options.lease_timeout = timeout;
        self
    }

    /// Sets how long a delivery's lease is kept fresh while its listeners
    /// run (default 1 hour): a listener may run longer than
    /// `lease_timeout` and its event is not delivered elsewhere
    /// meanwhile. Past this, the delivery counts as stuck or abandoned:
    /// its lease expires and another consumer gets the event.
    pub fn max_handler_time(mut self, time: Duration) -> Self {
        self.options.max_handler_time = time;
        self
    }

    /// Deletes events from the log once every consumer group's cursor
    /// passed them, no lease covers them and they are older than
    /// `window` (default: kept forever). A consumer store checks every
    /// quarter of the window (between 1 s and 1 min); `prune_consumed`
    /// does it on demand. SQLite deletes in batches of 10,000 (one short
    /// statement each); PostgreSQL truncates and drops whole partitions
    /// of the log (see `partition_size`). Pruned events leave the history; a group
    /// created later starts at the oldest event kept.
    pub fn retention(mut self, window: Duration) -> Self {
        self.options.retention = Some(window);
        self
    }

    /// Sets how many events one lease claims at most (default 1000).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.options.batch_size = size;
        self
    }

    /// Sets after how many deliveries an event goes to the dead letters
    /// instead of being delivered again (default 5).
    pub fn max_deliveries(mut self, max: u32) -> Self {
        self.options.max_deliveries = max;
        self
    }

    /// Sets how often an idle consumer looks for new events when no
    /// wakeup arrives. A delayed event is taken when it falls due, not at
    /// the next poll: a consumer learns the earliest due time whenever it
    /// moves due events (at most a second apart, sooner with a shorter
    /// interval) and at once when its own store handle schedules one.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.options.poll_interval = interval;
        self
    }

    /// Sets the size of the store's connection pool (default 10, at least 2).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.options.max_connections = max;
        self
    }

    /// Sets how long to wait for a pooled connection (default 10 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.options.acquire_timeout = timeout;
        self
    }

    /// Whether `build` applies the store's migrations (default `true`).
    /// Turn it off when a deployment step applies them.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.options.migrate = migrate;
        self
    }

    /// Sets what happens to a delivery whose listeners still failed after
    /// the bus's retries (default [`FailurePolicy::DeadLetter`](FailurePolicy)).
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.options.on_failure = policy;
        self
    }

    /// Sets the first wait of a failed delivery in the retry table under
    /// [`FailurePolicy::Redeliver`](FailurePolicy) (default 1 s;
    /// doubled per delivery, at most an hour).
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.options.retry_backoff = backoff;
        self
    }

    /// Hands events with the same ordering key (the
    /// [`PROPERTY_KEY`](crate::PROPERTY_KEY) property, `soiree.key`) to
    /// the bus one at a time, in log order, across every consumer of the
    /// group (default off).
    ///
    /// With it on, an event with key `k` is handed out only when no
    /// earlier event with key `k` is unsettled anywhere in the group:
    /// none handed out by this store and not yet acknowledged, failed or
    /// released, none waiting before it in this store's buffer, none in a
    /// lease of another consumer (acknowledged or not: a lease counts
    /// until all its events are) and none in the retry table. Events
    /// without a key, and stores without the option, take the usual path
    /// at the usual speed.
    ///
    /// Costs: one indexed query per claimed lease (and per batch of
    /// retry rows) that holds keyed events; events held back stay in the
    /// buffer, with their lease extended, and are checked again at most
    /// every `poll_interval` (sooner after this store settles a
    /// delivery). Meanwhile the store claims further ranges while its
    /// buffer holds fewer than 4 × `batch_size` events, so that other
    /// keys progress.
    ///
    /// Under [`FailurePolicy::Redeliver`](FailurePolicy) a failing
    /// event holds back the later events of its key, through the retry
    /// table and its backoff, until it succeeds or is dead-lettered (a
    /// dead letter no longer holds anything back; replaying it does not
    /// order it before events already handed out). An expired lease of
    /// a consumer that died holds back its keys until another consumer
    /// claims and settles it. Delivery stays at least once: an event
    /// delivered again after its lease expired may overlap a later one.
    ///
    /// This differs from the DESIGN's "hash keys to partitions, one open
    /// lease per partition": that needs a cursor and a scan of the log
    /// per partition, and changes the claim path of every event. Here
    /// the log keeps one cursor per group; only keyed events pay, with
    /// a check against the group's leases and retry rows.
    pub fn ordered_by_key(mut self, ordered: bool) -> Self {
        self.options.ordered_by_key = ordered;
        self
    }

    /// Whether `build` creates what is missing (default `true`): the
    /// database file (SQLite), the tables (by the migrations, see
    /// `migrate`) and the consumer group's cursor. With `false` it
    /// opens only an existing store and group, and changes nothing on
    /// opening: it fails with [`Error::NotAStore`](crate::Error::NotAStore)
    /// when the tables do not exist and with
    /// [`Error::NoSuchGroup`](crate::Error::NoSuchGroup) (naming the
    /// groups that exist) when the group has no cursor. For tools that
    /// operate a store (replay, purge) without consuming from it.
    pub fn create_missing(mut self, create: bool) -> Self {
        self.options.create_missing = create;
        self
    }

    /// Opens the store for inspection only (default `false`): as
    /// `create_missing(false)`, and every connection is read-only
    /// (SQLite: the file is opened `mode=ro` and no PRAGMA that changes
    /// it is run, the journal mode included; PostgreSQL:
    /// `default_transaction_read_only`), so that nothing the store does
    /// can write. Listings and stats work with a role that may only
    /// `SELECT` (or a file that may only be read); writes fail with
    /// [`Error::PermissionDenied`](crate::Error::PermissionDenied). Do
    /// not consume from such a store.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.options.read_only = read_only;
        self
    }

    /// Reports metrics to `registry` instead of [`soiree::MetricsRegistry::global`].
    pub fn metrics_registry(mut self, registry: soiree::MetricsRegistry) -> Self {
        self.registry = Some(registry);
        self
    }
}
