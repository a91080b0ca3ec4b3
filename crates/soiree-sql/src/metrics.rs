//! The store's Prometheus metrics, labelled by backend and consumer group.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::gauge::Gauge;
use soiree::MetricsRegistry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    backend: String,
    group: String,
}

/// Handles on one store's series, resolved once so that the hot path only
/// touches atomics.
#[derive(Debug, Clone)]
pub(crate) struct SqlMetrics {
    pub(crate) persisted: Counter,
    pub(crate) dequeued: Counter,
    pub(crate) results: Counter,
    pub(crate) queue_length: Gauge,
    pub(crate) dead_lettered: Counter,
    pub(crate) redelivered: Counter,
    pub(crate) stale_acks: Counter,
    pub(crate) results_refused: Counter,
    pub(crate) oldest_unconsumed: Gauge<f64, AtomicU64>,
    pub(crate) xmin_lag: Gauge,
}

impl SqlMetrics {
    pub(crate) fn new(registry: &MetricsRegistry, backend: &str, group: &str) -> Self {
        let labels = StoreLabels {
            backend: backend.to_owned(),
            group: group.to_owned(),
        };
        let counter = |name: &str, help: &str| {
            registry
                .metric(name, help, Family::<StoreLabels, Counter>::default)
                .get_or_create(&labels)
                .clone()
        };
        let queue_length = registry
            .metric(
                "soiree_sql_queue_length",
                "Events not yet acknowledged by the group: unclaimed plus leased",
                Family::<StoreLabels, Gauge>::default,
            )
            .get_or_create(&labels)
            .clone();
        let oldest_unconsumed = registry
            .metric(
                "soiree_sql_oldest_unconsumed_age_seconds",
                "Age of the oldest event the group has not acknowledged (0 when none).",
                Family::<StoreLabels, Gauge<f64, AtomicU64>>::default,
            )
            .get_or_create(&labels)
            .clone();
        let xmin_lag = registry
            .metric(
                "soiree_sql_xmin_lag_transactions",
                "PostgreSQL: transactions between the oldest running one (the claim horizon) and the next.",
                Family::<StoreLabels, Gauge>::default,
            )
            .get_or_create(&labels)
            .clone();
        Self {
            oldest_unconsumed,
            xmin_lag,
            persisted: counter(
                "soiree_sql_events_persisted",
                "Events appended to the log by this store",
            ),
            dequeued: counter(
                "soiree_sql_events_dequeued",
                "Events delivered to a consumer of this process",
            ),
            results: counter("soiree_sql_results_persisted", "Handler results saved."),
            queue_length,
            dead_lettered: counter(
                "soiree_sql_dead_lettered",
                "Events moved to the dead letters",
            ),
            redelivered: counter(
                "soiree_sql_redeliveries",
                "Events delivered again after their lease expired",
            ),
            stale_acks: counter(
                "soiree_sql_stale_acks",
                "Acknowledgements refused because their lease had expired or moved",
            ),
            results_refused: counter(
                "soiree_sql_results_refused",
                "Handler results the database refused for good (too large to index, invalid), not saved",
            ),
        }
    }
}
