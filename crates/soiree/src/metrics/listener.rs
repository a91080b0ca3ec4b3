//! Listener timing for typed topics with an observability spec.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::MetricsRegistry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    operation: String,
    origin: String,
    outcome: String,
}

type DurationFamily = Family<ListenerLabels, Histogram, fn() -> Histogram>;

/// The `soiree_listener_duration_seconds` histogram family.
#[derive(Debug, Clone)]
pub(crate) struct ListenerMetrics {
    durations: DurationFamily,
}

fn new_histogram() -> Histogram {
    // 100 µs to about 100 s.
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

impl ListenerMetrics {
    pub(crate) fn new(registry: &MetricsRegistry) -> Self {
        let durations = registry.metric(
            "soiree_listener_duration_seconds",
            "Time spent in listeners of typed topics, by operation, origin and outcome",
            || DurationFamily::new_with_constructor(new_histogram),
        );
        Self { durations }
    }

    pub(crate) fn observe(&self, operation: &str, origin: &str, outcome: &str, seconds: f64) {
        self.durations
            .get_or_create(&ListenerLabels {
                operation: operation.to_owned(),
                origin: origin.to_owned(),
                outcome: outcome.to_owned(),
            })
            .observe(seconds);
    }
}
