//! Settings shared by the PostgreSQL and SQLite stores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::{Error, Result};

/// Settings of a store, set through its builder.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) lease_timeout: Duration,
    pub(crate) batch_size: usize,
    pub(crate) max_deliveries: u32,
    pub(crate) poll_interval: Duration,
    pub(crate) max_connections: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) migrate: bool,
}

impl Options {
    pub(crate) fn new(poll_interval: Duration) -> Self {
        Self {
            group: "soiree".to_owned(),
            consumer: default_consumer_name(),
            lease_timeout: Duration::from_secs(30),
            batch_size: 1000,
            max_deliveries: 5,
            poll_interval,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            migrate: true,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |what: &str| Err(Error::InvalidConfig(what.to_owned()));
        if self.group.is_empty() || self.consumer.is_empty() {
            return invalid("group and consumer names must not be empty");
        }
        if self.group.contains('\0') || self.consumer.contains('\0') {
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
        if self.max_connections < 2 {
            return invalid("max_connections must be at least 2");
        }
        Ok(())
    }

    /// The lease timeout in whole milliseconds, for SQL.
    pub(crate) fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease_timeout.as_millis()).unwrap_or(i64::MAX)
    }
}

/// `<host>-<pid>`, plus `-<n>` for the n-th store of this process after the first.
fn default_consumer_name() -> String {
    static STORES: AtomicUsize = AtomicUsize::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "soiree".to_owned());
    let pid = std::process::id();
    match STORES.fetch_add(1, Ordering::Relaxed) {
        0 => format!("{host}-{pid}"),
        n => format!("{host}-{pid}-{}", n + 1),
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

        /// Sets this store's consumer name, recorded on the leases it holds
        /// (default `<host>-<pid>`).
        pub fn consumer(mut self, consumer: impl Into<String>) -> Self {
            self.options.consumer = consumer.into();
            self
        }

        /// Sets how long a claimed range of events (a lease) stays with this
        /// consumer without being extended (default 30 s; at least 100 ms).
        /// The store extends its leases while their events wait in its
        /// buffer and while each delivered event is younger than this; a
        /// delivery older than this (a stuck listener) lets the lease
        /// expire, and its unacknowledged events are delivered again.
        pub fn lease_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.options.lease_timeout = timeout;
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
        let cases: [fn(&mut Options); 6] = [
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
}
