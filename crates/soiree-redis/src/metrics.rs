//! The store's Prometheus metrics, labelled by events stream key.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use soiree::MetricsRegistry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    stream: String,
}

/// Handles on one store's series, resolved once so that the hot path only
/// touches atomics.
#[derive(Debug, Clone)]
pub(crate) struct RedisMetrics {
    pub(crate) persisted: Counter,
    pub(crate) dequeued: Counter,
    pub(crate) results: Counter,
    pub(crate) queue_length: Gauge,
    pub(crate) dead_lettered: Counter,
    pub(crate) redelivered: Counter,
}

impl RedisMetrics {
    pub(crate) fn new(registry: &MetricsRegistry, stream: &str) -> Self {
        let labels = StreamLabels {
            stream: stream.to_owned(),
        };
        let counter = |name: &str, help: &str| {
            registry
                .metric(name, help, Family::<StreamLabels, Counter>::default)
                .get_or_create(&labels)
                .clone()
        };
        let queue_length = registry
            .metric(
                "soiree_redis_queue_length",
                "Events not yet acknowledged: undelivered plus pending",
                Family::<StreamLabels, Gauge>::default,
            )
            .get_or_create(&labels)
            .clone();
        Self {
            persisted: counter(
                "soiree_redis_events_persisted",
                "Events appended to the Redis stream",
            ),
            dequeued: counter(
                "soiree_redis_events_dequeued",
                "Events delivered to a consumer of this process",
            ),
            results: counter(
                "soiree_redis_results_persisted",
                "Handler results appended to the results stream",
            ),
            queue_length,
            dead_lettered: counter(
                "soiree_redis_dead_lettered",
                "Entries moved to the dead-letter stream",
            ),
            redelivered: counter(
                "soiree_redis_redeliveries",
                "Entries delivered again after a consumer failed to acknowledge them",
            ),
        }
    }
}
