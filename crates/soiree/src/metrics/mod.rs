//! Prometheus metrics: a registry handle and soiree's metric families.
//!
//! Metrics use the Go package's names so dashboards carry over. They go to a
//! process-wide default registry ([`MetricsRegistry::global`]) unless a bus or
//! pool is given its own.

mod bus;
mod listener;
mod pool;
mod registry;

pub(crate) use bus::{BusMetrics, ListenerCounters};
pub(crate) use listener::ListenerMetrics;
pub(crate) use pool::PoolMetrics;
pub use registry::MetricsRegistry;
pub(crate) use registry::PoolLabel;
