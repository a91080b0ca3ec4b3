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
    /// default): listable with `sql_dead_letters` (or `Inspect`),
    /// replayable with `replay_dead_letters_of` and `replay_sql_dead_letters`.
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
