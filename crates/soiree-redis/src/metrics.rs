//! The store's Prometheus metrics: soiree's store series
//! ([`soiree::StoreMetrics`]), labelled `backend="redis"`, the events stream
//! key and the consumer group.

use soiree::{MetricsRegistry, StoreMetrics};

/// The `backend` label of the Redis store's series.
const BACKEND: &str = "redis";

/// Handles on one store's series.
pub(crate) type RedisMetrics = StoreMetrics;

/// The series of the store reading `group` from the stream at `stream`.
pub(crate) fn store_metrics(registry: &MetricsRegistry, stream: &str, group: &str) -> RedisMetrics {
    StoreMetrics::new(registry, BACKEND, stream, group)
}
