//! The series every durable store reports, under one set of names with a
//! `backend` label, so that a dashboard or an alert works on any store.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::MetricsRegistry;

/// The labels of a store's series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    backend: String,
    store: String,
    group: String,
}

/// Handles on one durable store's Prometheus series, resolved once so that
/// the hot path only touches atomics. Stores make one with
/// [`StoreMetrics::new`] and count what they do; the names are written here
/// only, so every store reports the same series.
///
/// Every series has the labels `backend` (`redis`, `postgres`, `sqlite`, …),
/// `store` (which store of that backend: the Redis events stream key, the
/// SQLite file, the PostgreSQL `host:port/database` and schema; never
/// credentials) and `group` (the consumer group). A series a backend has no
/// use for stays at 0.
///
/// | Series | Type | Counts |
/// |---|---|---|
/// | `soiree_store_events_persisted_total` | counter | events the store wrote |
/// | `soiree_store_events_dequeued_total` | counter | deliveries handed to a consumer of this process |
/// | `soiree_store_results_persisted_total` | counter | handler results saved |
/// | `soiree_store_queue_length` | gauge | events the group has not acknowledged (waiting plus in flight), as of the last stats |
/// | `soiree_store_dead_lettered_total` | counter | events moved to the dead letters |
/// | `soiree_store_redeliveries_total` | counter | deliveries made again after a consumer did not acknowledge them |
/// | `soiree_store_stale_acks_total` | counter | acknowledgements refused because their lease had expired or moved |
/// | `soiree_store_results_refused_total` | counter | handler results the store refused for good (too large to index, invalid), not saved |
/// | `soiree_store_acks_withheld_total` | counter | deliveries not acknowledged because a listener result of theirs could not be saved (delivered again) |
/// | `soiree_store_oldest_unconsumed_age_seconds` | gauge | age of the oldest event the group has not acknowledged (0 when none) |
/// | `soiree_store_xmin_lag_transactions` | gauge | PostgreSQL: transactions between the claim horizon (the oldest running one) and the next |
///
/// # Examples
///
/// ```
/// use soiree::{MetricsRegistry, StoreMetrics};
///
/// let registry = MetricsRegistry::new();
/// let metrics = StoreMetrics::new(&registry, "sqlite", "/var/lib/app/events.db", "default");
/// metrics.persisted.inc();
/// assert!(registry.encode().contains(
///     r#"soiree_store_events_persisted_total{backend="sqlite",store="/var/lib/app/events.db",group="default"} 1"#
/// ));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreMetrics {
    /// `soiree_store_events_persisted_total`.
    pub persisted: Counter,
    /// `soiree_store_events_dequeued_total`.
    pub dequeued: Counter,
    /// `soiree_store_results_persisted_total`.
    pub results: Counter,
    /// `soiree_store_queue_length`.
    pub queue_length: Gauge,
    /// `soiree_store_dead_lettered_total`.
    pub dead_lettered: Counter,
    /// `soiree_store_redeliveries_total`.
    pub redelivered: Counter,
    /// `soiree_store_stale_acks_total`.
    pub stale_acks: Counter,
    /// `soiree_store_results_refused_total`.
    pub results_refused: Counter,
    /// `soiree_store_acks_withheld_total`.
    pub acks_withheld: Counter,
    /// `soiree_store_oldest_unconsumed_age_seconds`.
    pub oldest_unconsumed: Gauge<f64, AtomicU64>,
    /// `soiree_store_xmin_lag_transactions`.
    pub xmin_lag: Gauge,
}

impl StoreMetrics {
    /// Registers the store series in `registry` (once per registry) and
    /// returns the handles of the series labelled `backend`, `store` and
    /// `group`.
    pub fn new(registry: &MetricsRegistry, backend: &str, store: &str, group: &str) -> Self {
        let labels = StoreLabels {
            backend: backend.to_owned(),
            store: store.to_owned(),
            group: group.to_owned(),
        };
        let counter = |name: &str, help: &str| {
            registry
                .metric(name, help, Family::<StoreLabels, Counter>::default)
                .get_or_create(&labels)
                .clone()
        };
        let gauge = |name: &str, help: &str| {
            registry
                .metric(name, help, Family::<StoreLabels, Gauge>::default)
                .get_or_create(&labels)
                .clone()
        };
        let oldest_unconsumed = registry
            .metric(
                "soiree_store_oldest_unconsumed_age_seconds",
                "Age of the oldest event the group has not acknowledged (0 when none)",
                Family::<StoreLabels, Gauge<f64, AtomicU64>>::default,
            )
            .get_or_create(&labels)
            .clone();
        Self {
            persisted: counter("soiree_store_events_persisted", "Events the store wrote"),
            dequeued: counter(
                "soiree_store_events_dequeued",
                "Deliveries handed to a consumer of this process",
            ),
            results: counter("soiree_store_results_persisted", "Handler results saved"),
            queue_length: gauge(
                "soiree_store_queue_length",
                "Events the group has not acknowledged: waiting plus in flight",
            ),
            dead_lettered: counter(
                "soiree_store_dead_lettered",
                "Events moved to the dead letters",
            ),
            redelivered: counter(
                "soiree_store_redeliveries",
                "Deliveries made again after a consumer did not acknowledge them",
            ),
            stale_acks: counter(
                "soiree_store_stale_acks",
                "Acknowledgements refused because their lease had expired or moved",
            ),
            results_refused: counter(
                "soiree_store_results_refused",
                "Handler results the store refused for good (too large to index, invalid), not saved",
            ),
            acks_withheld: counter(
                "soiree_store_acks_withheld",
                "Deliveries not acknowledged because a listener result of theirs could not be saved (delivered again)",
            ),
            oldest_unconsumed,
            xmin_lag: gauge(
                "soiree_store_xmin_lag_transactions",
                "PostgreSQL: transactions between the oldest running one (the claim horizon) and the next",
            ),
        }
    }
}
