//! Retention and the queue gauges: every so often, refreshes the gauges and
//! deletes the events every group passed that are older than the retention
//! window.

use std::sync::Weak;
use std::time::Duration;

use crate::Result;
use crate::backend::Backend;
use crate::core::Core;

/// Events deleted per statement by retention.
const PRUNE_BATCH: usize = 10_000;

/// Refreshes the gauges and applies retention, while the store lives:
/// every quarter of the retention window (between 1 s and 1 min), every
/// 15 s without one.
pub(crate) async fn retention<B: Backend>(core: Weak<Core<B>>) {
    loop {
        let Some(period) = core.upgrade().map(|core| {
            core.options
                .retention
                .map_or(Duration::from_secs(15), |window| {
                    (window / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
                })
        }) else {
            return;
        };
        tokio::time::sleep(period).await;
        let Some(core) = core.upgrade() else { return };
        if let Err(err) = core.stats().await {
            tracing::debug!(%err, "cannot refresh the queue gauges");
        }
        match core.prune_unique_keys().await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "retention deleted expired unique keys"),
            Err(err) => tracing::warn!(%err, "deleting expired unique keys failed; retrying later"),
        }
        match core.prune_limits().await {
            Ok(0) => {}
            Ok(deleted) => {
                tracing::debug!(deleted, "retention deleted expired limit slots and rates")
            }
            Err(err) => tracing::warn!(%err, "deleting expired limit slots failed; retrying later"),
        }
        if let Some(window) = core.options.retention {
            match core.prune_consumed(window).await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "retention deleted consumed events"),
                Err(err) => tracing::warn!(%err, "retention failed; retrying later"),
            }
        }
    }
}

impl<B: Backend> Core<B> {
    /// Removes the events every group passed that no lease covers and that
    /// are older than `older_than` (whole partitions on PostgreSQL, then
    /// batches); returns how many.
    pub(crate) async fn prune_consumed(&self, older_than: Duration) -> Result<u64> {
        let ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let mut total = self.backend.prune_partitions(ms).await?;
        loop {
            let deleted = self.backend.prune(ms, PRUNE_BATCH).await?;
            total += deleted;
            if deleted < PRUNE_BATCH as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}
