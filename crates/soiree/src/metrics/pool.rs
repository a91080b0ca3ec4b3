//! The worker pool's metrics, labelled by pool name.

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use prometheus_client::metrics::counter::{Atomic, Counter};
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
    pub(crate) submitted: PoolCounter,
    pub(crate) started: PoolCounter,
    pub(crate) completed: PoolCounter,
    pub(crate) panicked: PoolCounter,
    pub(crate) rejected: PoolCounter,
}

/// A counter alone on its cache line: `submitted` is written by the
/// submitting thread and `started`/`completed` by workers for every task, and
/// counters allocated side by side would otherwise share lines by chance.
pub(crate) type PoolCounter = Counter<u64, PaddedCount>;

/// The atomic inside a [`PoolCounter`].
#[derive(Debug, Default)]
pub(crate) struct PaddedCount(CachePadded<AtomicU64>);

impl Atomic<u64> for PaddedCount {
    fn inc(&self) -> u64 {
        self.inc_by(1)
    }

    fn inc_by(&self, v: u64) -> u64 {
        self.0.fetch_add(v, Ordering::Relaxed)
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

type CounterFamily = Family<PoolLabels, PoolCounter>;
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
            rejected: counter(
                "soiree_pool_tasks_rejected",
                "Tasks refused because the queue was full",
            ),
        };
        let gauge = |name: &str, help: &str, of: &PoolCounter, less: &PoolCounter| {
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
    counters: Arc<OnceLock<(PoolCounter, PoolCounter)>>,
}

impl DifferenceGauge {
    fn init(&self, of: &PoolCounter, less: &PoolCounter) {
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
