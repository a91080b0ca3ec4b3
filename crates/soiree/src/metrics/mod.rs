//! Prometheus metrics: a registry handle and soiree's metric families.
//!
//! Metrics use the Go package's names so dashboards carry over, except the
//! durable stores' series: one set for every store (`soiree_store_*`,
//! [`StoreMetrics`](crate::StoreMetrics)) told apart by a `backend` label,
//! where the Go package had `soiree_redis_*`. They go to a
//! process-wide default registry ([`MetricsRegistry::global`]) unless a bus or
//! pool is given its own. Without the `metrics` feature every handle counts
//! nothing and `prometheus-client` is not compiled.

#[cfg(feature = "metrics")]
mod bus;
#[cfg(feature = "metrics")]
mod listener;
#[cfg(not(feature = "metrics"))]
mod noop;
#[cfg(feature = "metrics")]
mod pool;
#[cfg(feature = "metrics")]
mod registry;
#[cfg(feature = "metrics")]
mod store;

#[cfg(feature = "metrics")]
pub(crate) use bus::{BusMetrics, LimitWait, ListenerCounters};
#[cfg(feature = "metrics")]
pub(crate) use listener::ListenerMetrics;
#[cfg(not(feature = "metrics"))]
pub(crate) use noop::{
    BusMetrics, LimitWait, ListenerCounters, ListenerMetrics, MetricsRegistry, PoolLabel,
    PoolMetrics,
};
#[cfg(feature = "metrics")]
pub(crate) use pool::PoolMetrics;
#[cfg(feature = "metrics")]
pub use registry::MetricsRegistry;
#[cfg(feature = "metrics")]
pub(crate) use registry::PoolLabel;
#[cfg(feature = "metrics")]
pub use store::StoreMetrics;
