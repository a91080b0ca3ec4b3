//! Counters of a bus and of each of its listeners, with bounded label sets:
//! the pool's name, registered patterns and listener ids — never raw topics.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{Atomic, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::MetricsRegistry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BusLabels {
    pool: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    pool: String,
    pattern: String,
    listener: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    pool: String,
    pattern: String,
    listener: String,
    outcome: &'static str,
}

/// A counter spread over a few cache lines, picked per thread, so that
/// workers on different threads counting the same listener do not contend.
#[derive(Debug, Default)]
pub(crate) struct ShardedCount([CachePadded<AtomicU64>; SHARDS]);

const SHARDS: usize = 4;

fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = Cell::new(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
    }
    SHARD.with(Cell::get)
}

impl Atomic<u64> for ShardedCount {
    fn inc(&self) -> u64 {
        self.inc_by(1)
    }

    fn inc_by(&self, v: u64) -> u64 {
        self.0[shard()].fetch_add(v, Ordering::Relaxed)
    }

    fn get(&self) -> u64 {
        self.0
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }
}

pub(crate) type SpreadCounter = Counter<u64, ShardedCount>;

type BusFamily = Family<BusLabels, SpreadCounter>;
type OutcomeFamily = Family<OutcomeLabels, SpreadCounter>;
type RetryFamily = Family<ListenerLabels, SpreadCounter>;
type DurationFamily = Family<ListenerLabels, Histogram, fn() -> Histogram>;
type WaitFamily = Family<ListenerLabels, Histogram, fn() -> Histogram>;

/// The time one limited listener's parked runs waited for their limit.
pub(crate) type LimitWait = Histogram;

fn new_wait_histogram() -> Histogram {
    // 1 ms to about 4.5 hours.
    Histogram::new(exponential_buckets(0.001, 4.0, 13))
}

fn new_histogram() -> Histogram {
    // 1 µs to about 17 s.
    Histogram::new(exponential_buckets(0.000_001, 4.0, 13))
}

/// A bus's own counters, and the families its listeners' counters join.
#[derive(Debug, Clone)]
pub(crate) struct BusMetrics {
    pub(crate) emitted: SpreadCounter,
    pub(crate) unrouted: SpreadCounter,
    pub(crate) unheard: SpreadCounter,
    outcomes: OutcomeFamily,
    retries: RetryFamily,
    durations: Option<DurationFamily>,
    limit_waits: WaitFamily,
    pool: String,
}

impl BusMetrics {
    /// `timing`: also time every listener call (two clock reads per call).
    pub(crate) fn new(registry: &MetricsRegistry, pool: &str, timing: bool) -> Self {
        let labels = BusLabels {
            pool: pool.to_owned(),
        };
        let bus_counter = |name: &str, help: &str| {
            registry
                .metric(name, help, BusFamily::default)
                .get_or_create(&labels)
                .clone()
        };
        Self {
            emitted: bus_counter(
                "soiree_events_emitted",
                "Events accepted by emit, by the bus's pool",
            ),
            unrouted: bus_counter(
                "soiree_events_unrouted",
                "Events emitted with no listener and no store (nobody heard them)",
            ),
            unheard: bus_counter(
                "soiree_deliveries_unheard",
                "Queue deliveries no listener of the bus heard (acknowledged or dead-lettered)",
            ),
            outcomes: registry.metric(
                "soiree_listener_calls",
                "Listener calls by pattern, listener and outcome (ok, error, panic, snoozed)",
                OutcomeFamily::default,
            ),
            retries: registry.metric(
                "soiree_listener_retries",
                "Listener calls retried after an error",
                RetryFamily::default,
            ),
            durations: timing.then(|| {
                registry.metric(
                    "soiree_listener_call_duration_seconds",
                    "Time in each listener call, by pattern and listener",
                    || DurationFamily::new_with_constructor(new_histogram),
                )
            }),
            limit_waits: registry.metric(
                "soiree_listener_limit_wait_seconds",
                "Time listener runs waited for room in their concurrency or rate limits \
                 (parked off the workers), by pattern and listener",
                || WaitFamily::new_with_constructor(new_wait_histogram),
            ),
            pool: pool.to_owned(),
        }
    }

    /// The wait histogram of one limited listener, made at registration.
    pub(crate) fn limit_wait(&self, pattern: &str, listener: &str) -> LimitWait {
        self.limit_waits
            .get_or_create(&ListenerLabels {
                pool: self.pool.clone(),
                pattern: pattern.to_owned(),
                listener: listener.to_owned(),
            })
            .clone()
    }

    /// The counters of one registered listener, made once at registration.
    pub(crate) fn listener(&self, pattern: &str, listener: &str) -> ListenerCounters {
        let outcome = |outcome| {
            self.outcomes
                .get_or_create(&OutcomeLabels {
                    pool: self.pool.clone(),
                    pattern: pattern.to_owned(),
                    listener: listener.to_owned(),
                    outcome,
                })
                .clone()
        };
        let labels = ListenerLabels {
            pool: self.pool.clone(),
            pattern: pattern.to_owned(),
            listener: listener.to_owned(),
        };
        ListenerCounters {
            ok: outcome("ok"),
            error: outcome("error"),
            panic: outcome("panic"),
            snoozed: outcome("snoozed"),
            retried: self.retries.get_or_create(&labels).clone(),
            duration: self
                .durations
                .as_ref()
                .map(|family| family.get_or_create(&labels).clone()),
        }
    }
}

/// One listener's counters.
#[derive(Debug, Clone)]
pub(crate) struct ListenerCounters {
    pub(crate) ok: SpreadCounter,
    pub(crate) error: SpreadCounter,
    pub(crate) panic: SpreadCounter,
    /// Calls that returned a [`Snooze`](crate::Snooze): not errors.
    pub(crate) snoozed: SpreadCounter,
    pub(crate) retried: SpreadCounter,
    /// With listener timing on.
    pub(crate) duration: Option<Histogram>,
}
