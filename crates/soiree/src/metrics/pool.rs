//! The worker pool's metrics, labelled by pool name.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::MetricsRegistry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

/// Handles on one pool's series, resolved once so that the hot path only
/// touches atomics.
#[derive(Debug, Clone)]
pub(crate) struct PoolMetrics {
    pub(crate) submitted: Counter,
    pub(crate) started: Counter,
    pub(crate) completed: Counter,
    pub(crate) panicked: Counter,
    pub(crate) queued: Gauge,
    pub(crate) running: Gauge,
}

impl PoolMetrics {
    pub(crate) fn new(registry: &MetricsRegistry, pool: &str) -> Self {
        let labels = PoolLabels {
            pool: pool.to_owned(),
        };
        let counter = |name: &str, help: &str| {
            registry
                .metric(name, help, Family::<PoolLabels, Counter>::default)
                .get_or_create(&labels)
                .clone()
        };
        let gauge = |name: &str, help: &str| {
            registry
                .metric(name, help, Family::<PoolLabels, Gauge>::default)
                .get_or_create(&labels)
                .clone()
        };
        Self {
            submitted: counter("soiree_pool_tasks_submitted", "Tasks submitted to the pool"),
            started: counter("soiree_pool_tasks_started", "Tasks that started running"),
            completed: counter(
                "soiree_pool_tasks_completed",
                "Tasks that finished, panicked ones included",
            ),
            panicked: counter("soiree_pool_tasks_panicked", "Tasks that panicked"),
            queued: gauge("soiree_pool_tasks_queued", "Tasks waiting for a worker"),
            running: gauge("soiree_pool_tasks_running", "Tasks running now"),
        }
    }
}
