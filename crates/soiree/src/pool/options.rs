//! Pool configuration.

use crate::metrics::MetricsRegistry;
use crate::{Error, Result};

/// The default number of workers, as in the Go package.
pub(crate) const DEFAULT_WORKERS: usize = 10;

/// The default bound of a pool's (and a bus's) queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;

/// How to build a [`Pool`](super::Pool).
///
/// # Examples
///
/// ```
/// use soiree::{MetricsRegistry, PoolOptions};
///
/// let options = PoolOptions::default()
///     .workers(4)
///     .name("mailer")
///     .registry(MetricsRegistry::new());
/// assert_eq!(options.workers_count(), 4);
/// ```
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// The most tasks that run at once (default 10); at least 1.
    pub workers: usize,
    /// The `pool` label of the pool's metrics (default `soiree`).
    pub name: String,
    /// The registry for the pool's metrics (`None`: [`MetricsRegistry::global`]).
    #[cfg(feature = "metrics")]
    pub registry: Option<MetricsRegistry>,
    /// The most tasks that wait in the queue (default
    /// [`DEFAULT_QUEUE_CAPACITY`]); at least 1. Beyond it
    /// [`Pool::submit`](super::Pool::submit) fails with
    /// [`Error::QueueFull`] and [`Pool::submit_async`](super::Pool::submit_async) waits.
    pub queue_capacity: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            workers: DEFAULT_WORKERS,
            name: "soiree".to_owned(),
            #[cfg(feature = "metrics")]
            registry: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        }
    }
}

impl PoolOptions {
    /// The most tasks that run at once (default 10).
    #[must_use]
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// The `pool` label of the pool's metrics (default `soiree`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The registry for the pool's metrics (default: [`MetricsRegistry::global`]).
    #[cfg(feature = "metrics")]
    #[must_use]
    pub fn registry(mut self, registry: MetricsRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The most tasks that wait in the queue (default [`DEFAULT_QUEUE_CAPACITY`]).
    #[must_use]
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// The configured number of workers.
    pub fn workers_count(&self) -> usize {
        self.workers
    }

    /// The registry the pool's metrics go to.
    pub(crate) fn metrics_registry(&self) -> MetricsRegistry {
        #[cfg(feature = "metrics")]
        if let Some(registry) = &self.registry {
            return registry.clone();
        }
        MetricsRegistry::global().clone()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        validate_workers(self.workers)?;
        if self.queue_capacity == 0 {
            return Err(Error::InvalidConfig(
                "a queue needs room for at least one task".into(),
            ));
        }
        Ok(())
    }
}

pub(crate) fn validate_workers(workers: usize) -> Result<()> {
    if workers == 0 {
        return Err(Error::InvalidConfig(
            "a pool needs at least one worker".into(),
        ));
    }
    Ok(())
}
