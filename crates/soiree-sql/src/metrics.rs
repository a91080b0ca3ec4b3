//! The store's Prometheus metrics: soiree's store series
//! ([`soiree::StoreMetrics`]), labelled by backend (`postgres`, `sqlite`),
//! store location and consumer group.

/// Handles on one store's series.
pub(crate) type SqlMetrics = soiree::StoreMetrics;
