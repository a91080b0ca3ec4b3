//! Settings shared by the PostgreSQL and SQLite stores.

use std::time::Duration;

use std::sync::Arc;

use crate::identity::{ConsumerSlot, Identity, default_identity};
use crate::{Error, Result};

/// Settings of a store, set through its builder.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) group: String,
    /// The consumer name: set by `consumer(…)`, else resolved by `build`
    /// (see [`resolve_consumer`](Self::resolve_consumer)).
    pub(crate) consumer: Option<String>,
    /// The slot that keeps a default consumer name unique among live
    /// stores, held as long as the store (its options) lives.
    pub(crate) slot: Option<Arc<ConsumerSlot>>,
    pub(crate) lease_timeout: Duration,
    pub(crate) batch_size: usize,
    pub(crate) max_deliveries: u32,
    pub(crate) poll_interval: Duration,
    pub(crate) max_connections: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) migrate: bool,
    pub(crate) on_failure: FailurePolicy,
    pub(crate) retry_backoff: Duration,
    pub(crate) max_handler_time: Duration,
    pub(crate) retention: Option<Duration>,
    pub(crate) ordered_by_key: bool,
    /// Build creates what is missing (file, tables, group cursor).
    pub(crate) create_missing: bool,
    /// Read-only connections; implies `!create_missing`.
    pub(crate) read_only: bool,
}

/// What the store does with a delivery whose listeners still failed after
/// the bus's retries (or panicked), or that could not be dispatched (an
/// invalid topic). Set with the builders' `on_failure`.
///
/// # Examples
///
/// ```no_run
/// use soiree_sql::{FailurePolicy, SqliteStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree_sql::Result<()> {
/// let store = SqliteStore::builder("events.db")
///     .on_failure(FailurePolicy::Redeliver)
///     .build()
///     .await?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Move it to `soiree_dead_letters` with the error, at once (the
    /// default): listable with `dead_letters`, replayable with `replay` and
    /// `replay_dead_letters`.
    #[default]
    DeadLetter,
    /// Move it to the retry table (`soiree_retries`), to be delivered again
    /// after a backoff (`retry_backoff`, doubled per delivery, at most an
    /// hour); dead-lettered with its last error once it has been delivered
    /// `max_deliveries` times.
    Redeliver,
    /// Acknowledge it: the error reaches only the bus's error handler, the
    /// log and `soiree_results`.
    Acknowledge,
}

impl Options {
    pub(crate) fn new(poll_interval: Duration) -> Self {
        Self {
            group: "soiree".to_owned(),
            consumer: None,
            slot: None,
            lease_timeout: Duration::from_secs(30),
            batch_size: 1000,
            max_deliveries: 5,
            poll_interval,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            migrate: true,
            on_failure: FailurePolicy::DeadLetter,
            retry_backoff: Duration::from_secs(1),
            max_handler_time: Duration::from_secs(3600),
            retention: None,
            ordered_by_key: false,
            create_missing: true,
            read_only: false,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |what: &str| Err(Error::InvalidConfig(what.to_owned()));
        let consumer = self.consumer.as_deref().unwrap_or("-");
        if self.group.is_empty() || consumer.is_empty() {
            return invalid("group and consumer names must not be empty");
        }
        if self.group.contains('\0') || consumer.contains('\0') {
            return invalid("group and consumer names must not contain NUL");
        }
        if self.lease_timeout < Duration::from_millis(100) {
            return invalid("lease_timeout must be at least 100 ms");
        }
        if self.batch_size == 0 || self.batch_size > 100_000 {
            return invalid("batch_size must be between 1 and 100000");
        }
        if self.max_deliveries == 0 {
            return invalid("max_deliveries must be at least 1");
        }
        if self.poll_interval.is_zero() || self.acquire_timeout.is_zero() {
            return invalid("poll_interval and acquire_timeout must be positive");
        }
        if self.retry_backoff.is_zero() || self.max_handler_time.is_zero() {
            return invalid("retry_backoff and max_handler_time must be positive");
        }
        if self.retention.is_some_and(|r| r.is_zero()) {
            return invalid("retention must be positive");
        }
        if self.max_connections < 2 {
            return invalid("max_connections must be at least 2");
        }
        Ok(())
    }

    /// How long a failed delivery waits in the retry table before its
    /// `deliveries`-th delivery is followed by another: the backoff doubled
    /// per delivery, at most an hour, in milliseconds.
    pub(crate) fn retry_delay_ms(&self, deliveries: i32) -> i64 {
        let doublings = u32::try_from(deliveries.saturating_sub(1).clamp(0, 30)).unwrap_or(0);
        let base = i64::try_from(self.retry_backoff.as_millis()).unwrap_or(i64::MAX);
        base.saturating_mul(1i64 << doublings).min(3_600_000)
    }

    /// Whether `build` may create the file, tables and group cursor.
    pub(crate) fn creates(&self) -> bool {
        self.create_missing && !self.read_only
    }

    /// The lease timeout in whole milliseconds, for SQL.
    pub(crate) fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease_timeout.as_millis()).unwrap_or(i64::MAX)
    }
}

impl Options {
    /// Gives the store its consumer name, for `build`: the one
    /// `consumer(…)` set, or the default identity of `location` (the
    /// database, never a password) and the group (see
    /// [`identity`](crate::identity)). Returns whether the name comes from a
    /// slot, so that no live store can hold it: its leases are this
    /// store's to take over.
    pub(crate) fn resolve_consumer(&mut self, location: &str) -> bool {
        if self.consumer.is_some() {
            return false;
        }
        let Identity { name, slot } = default_identity(&format!("{location}\0{}", self.group));
        self.consumer = Some(name);
        self.slot = slot.map(Arc::new);
        self.slot.is_some()
    }

    /// The consumer name (resolved by `build`).
    pub(crate) fn consumer_name(&self) -> &str {
        self.consumer.as_deref().unwrap_or_default()
    }
}

/// Defines the builder methods shared by both stores' builders.
macro_rules! common_builder_methods {
    () => {
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
        /// unacknowledged events are delivered again.
        pub fn lease_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.options.lease_timeout = timeout;
            self
        }

        /// Sets how long a delivery's lease is kept fresh while its listeners
        /// run (default 1 hour): a listener may run longer than
        /// `lease_timeout` and its event is not delivered elsewhere
        /// meanwhile. Past this, the delivery counts as stuck or abandoned:
        /// its lease expires and another consumer gets the event.
        pub fn max_handler_time(mut self, time: std::time::Duration) -> Self {
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
        pub fn retention(mut self, window: std::time::Duration) -> Self {
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
        /// wakeup arrives.
        pub fn poll_interval(mut self, interval: std::time::Duration) -> Self {
            self.options.poll_interval = interval;
            self
        }

        /// Sets the size of the store's connection pool (default 10, at least 2).
        pub fn max_connections(mut self, max: u32) -> Self {
            self.options.max_connections = max;
            self
        }

        /// Sets how long to wait for a pooled connection (default 10 s).
        pub fn acquire_timeout(mut self, timeout: std::time::Duration) -> Self {
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
        /// the bus's retries (default [`FailurePolicy::DeadLetter`](crate::FailurePolicy)).
        pub fn on_failure(mut self, policy: crate::FailurePolicy) -> Self {
            self.options.on_failure = policy;
            self
        }

        /// Sets the first wait of a failed delivery in the retry table under
        /// [`FailurePolicy::Redeliver`](crate::FailurePolicy) (default 1 s;
        /// doubled per delivery, at most an hour).
        pub fn retry_backoff(mut self, backoff: std::time::Duration) -> Self {
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
        /// Under [`FailurePolicy::Redeliver`](crate::FailurePolicy) a failing
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
    };
}

pub(crate) use common_builder_methods;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_options_with_a_typed_error() {
        let good = Options::new(Duration::from_millis(10));
        assert!(good.validate().is_ok());
        let cases: [fn(&mut Options); 7] = [
            |o| o.retry_backoff = Duration::ZERO,
            |o| o.group.clear(),
            |o| o.lease_timeout = Duration::ZERO,
            |o| o.batch_size = 0,
            |o| o.max_deliveries = 0,
            |o| o.poll_interval = Duration::ZERO,
            |o| o.max_connections = 1,
        ];
        for change in cases {
            let mut options = good.clone();
            change(&mut options);
            assert!(matches!(options.validate(), Err(Error::InvalidConfig(_))));
        }
    }

    #[test]
    fn retry_delays_double_up_to_an_hour() {
        let options = Options::new(Duration::from_millis(10));
        assert_eq!(options.retry_delay_ms(1), 1000);
        assert_eq!(options.retry_delay_ms(3), 4000);
        assert_eq!(options.retry_delay_ms(0), 1000);
        assert_eq!(options.retry_delay_ms(i32::MAX), 3_600_000);
    }
}
