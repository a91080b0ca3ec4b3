//! The worker pool's metrics, labelled by pool name.

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::MetricsRegistry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

/// Handles on one pool's counters, resolved once so that the hot path only
/// touches atomics. The `queued` and `running` gauges are differences of these
/// counters, computed when the metrics are encoded, so that running a task
/// writes no gauge shared between the submitting and the working thread.
#[derive(Debug, Clone)]
pub(crate) struct PoolMetrics {
    pub(crate) submitted: Counter,
    pub(crate) started: Counter,
    pub(crate) completed: Counter,
    pub(crate) panicked: Counter,
}

type CounterFamily = Family<PoolLabels, Counter>;
type GaugeFamily = Family<PoolLabels, DifferenceGauge, fn() -> DifferenceGauge>;

impl PoolMetrics {
    pub(crate) fn new(registry: &MetricsRegistry, pool: &str) -> Self {
        let labels = PoolLabels {
            pool: pool.to_owned(),
        };
        let counter = |name: &str, help: &str| {
            registry
                .metric(name, help, CounterFamily::default)
                .get_or_create(&labels)
                .clone()
        };
        let metrics = Self {
            submitted: counter("soiree_pool_tasks_submitted", "Tasks submitted to the pool"),
            started: counter("soiree_pool_tasks_started", "Tasks that started running"),
            completed: counter(
                "soiree_pool_tasks_completed",
                "Tasks that finished, panicked ones included",
            ),
            panicked: counter("soiree_pool_tasks_panicked", "Tasks that panicked"),
        };
        let gauge = |name: &str, help: &str, of: &Counter, less: &Counter| {
            registry
                .metric(name, help, || {
                    GaugeFamily::new_with_constructor(DifferenceGauge::default)
                })
                .get_or_create(&labels)
                .init(of, less);
        };
        gauge(
            "soiree_pool_tasks_queued",
            "Tasks waiting for a worker",
            &metrics.submitted,
            &metrics.started,
        );
        gauge(
            "soiree_pool_tasks_running",
            "Tasks running now",
            &metrics.started,
            &metrics.completed,
        );
        metrics
    }
}

/// A gauge whose value is one counter minus another.
#[derive(Debug, Clone, Default)]
struct DifferenceGauge {
    counters: Arc<OnceLock<(Counter, Counter)>>,
}

impl DifferenceGauge {
    fn init(&self, of: &Counter, less: &Counter) {
        let _ = self.counters.set((of.clone(), less.clone()));
    }

    fn value(&self) -> i64 {
        self.counters.get().map_or(0, |(of, less)| {
            let less = less.get();
            i64::try_from(of.get().saturating_sub(less)).unwrap_or(i64::MAX)
        })
    }
}

impl TypedMetric for DifferenceGauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for DifferenceGauge {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.value())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
