//! The bus each scenario starts from.

use soiree::{EventBus, MetricsRegistry};

use crate::error::Result;

/// The bus's worker count in every in-memory scenario (the default).
pub(crate) const WORKERS: usize = 10;

/// A fresh bus with its own metrics registry, so that one scenario after
/// another does not grow the process-wide one.
///
/// # Errors
///
/// The bus's configuration error (none for these options).
pub(crate) fn fresh_bus() -> Result<EventBus> {
    Ok(EventBus::builder()
        .workers(WORKERS)
        .pool_name("bench")
        .metrics_registry(MetricsRegistry::new())
        .build()?)
}
