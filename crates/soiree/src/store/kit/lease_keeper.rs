//! Lease keep-alive, one mechanism for every store: the bus's consumer
//! tracks the deliveries whose listeners run and those it holds read ahead
//! ([`EventQueue::read_ahead`]), and every [`EventQueue::lease_interval`]
//! extends their leases through [`EventQueue::extend`], so that no other
//! consumer takes a delivery that is still being handled or held. A store
//! only says how to extend a lease.

use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dashmap::DashSet;
use foldhash::fast::RandomState;

use crate::EventQueue;

/// The receipts of deliveries taken and not yet settled or handed back:
/// running, or held read ahead by the consumer.
///
/// Sharded (a `DashSet`): dispatching and settling a delivery takes no
/// lock shared by every event. Kept only for queues that extend leases.
#[derive(Debug, Default)]
pub(crate) struct LeaseKeeper {
    running: DashSet<String, RandomState>,
    /// Set at start when the queue extends leases: only then is `running`
    /// kept (work per delivery other stores need not pay).
    on: AtomicBool,
}

impl LeaseKeeper {
    /// Tracks running deliveries from now on (before the consumer starts).
    pub(crate) fn enable(&self) {
        self.on.store(true, Ordering::Relaxed);
    }

    /// A delivery is taken (to run now, or held read ahead).
    pub(crate) fn insert(&self, receipt: &str) {
        if self.on.load(Ordering::Relaxed) {
            self.running.insert(receipt.to_owned());
        }
    }

    /// A delivery is settled, or handed back.
    pub(crate) fn remove(&self, receipt: &str) {
        if self.on.load(Ordering::Relaxed) {
            self.running.remove(receipt);
        }
    }

    fn snapshot(&self) -> Vec<String> {
        self.running.iter().map(|receipt| receipt.clone()).collect()
    }
}

/// What the keep-alive task needs of its owner (the bus).
pub(crate) trait LeaseHolder: Send + Sync + 'static {
    /// The queue whose leases are kept; `None` ends the task.
    fn leased_queue(&self) -> Option<&dyn EventQueue>;
    /// The running deliveries.
    fn lease_keeper(&self) -> &LeaseKeeper;
    /// Whether the owner is closed: the task ends once nothing runs.
    fn is_closed(&self) -> bool;
}

/// Extends, every `interval`, the leases of the deliveries whose listeners
/// still run, until the holder is gone, or closed with nothing running.
///
/// `extend` is called at every interval with the deliveries dispatched and
/// those the consumer holds read ahead, and with no receipts when it holds
/// none: a store with a buffer of its own keeps the leases of what it
/// holds there too. A call is bounded by `interval`; a failure is logged and
/// the next interval tries again (a lease outlives several intervals).
pub(crate) async fn keep_leases<H: LeaseHolder>(holder: Weak<H>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(holder) = holder.upgrade() else {
            return;
        };
        let running = holder.lease_keeper().snapshot();
        // Deliveries in flight at close still finish: their leases are kept
        // until they are settled.
        if running.is_empty() && holder.is_closed() {
            return;
        }
        let Some(queue) = holder.leased_queue() else {
            return;
        };
        match tokio::time::timeout(interval, queue.extend(&running)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(%err, count = running.len(), "extending leases failed"),
            Err(_) => tracing::warn!(count = running.len(), "extending leases timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_deliveries_are_tracked_only_once_enabled() {
        let keeper = LeaseKeeper::default();
        keeper.insert("a");
        assert!(keeper.snapshot().is_empty());
        keeper.enable();
        keeper.insert("a");
        keeper.insert("b");
        keeper.remove("a");
        assert_eq!(keeper.snapshot(), ["b"]);
    }
}
