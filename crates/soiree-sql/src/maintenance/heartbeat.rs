//! The consumer's heartbeat: while this store consumes, it records this
//! consumer as live every third of the lease timeout, so that inspection
//! lists it whether or not it holds a lease (and stops listing it a lease
//! timeout after it stopped). Leases are not extended here: the bus does
//! that for every store (`EventQueue::extend`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::Backend;
use crate::core::Core;

/// Dequeues running now, and when one last started or ended.
#[derive(Debug)]
pub(crate) struct Liveness {
    dequeuing: AtomicUsize,
    last_dequeue: Mutex<Instant>,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            dequeuing: AtomicUsize::new(0),
            last_dequeue: Mutex::new(Instant::now()),
        }
    }
}

impl Liveness {
    fn last(&self) -> MutexGuard<'_, Instant> {
        self.last_dequeue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether this store consumes: a dequeue runs, or one ran within
    /// `window` (a bus asks again every poll wait).
    fn consuming(&self, window: Duration) -> bool {
        self.dequeuing.load(Ordering::Acquire) > 0 || self.last().elapsed() < window
    }
}

/// A dequeue running, for [`Liveness`].
pub(crate) struct Dequeuing<'a>(&'a Liveness);

impl<'a> Dequeuing<'a> {
    pub(crate) fn start(liveness: &'a Liveness) -> Self {
        liveness.dequeuing.fetch_add(1, Ordering::AcqRel);
        *liveness.last() = Instant::now();
        Self(liveness)
    }
}

impl Drop for Dequeuing<'_> {
    fn drop(&mut self) {
        *self.0.last() = Instant::now();
        self.0.dequeuing.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every third of the lease timeout, while the store lives: records this
/// consumer as live for a lease timeout while it consumes.
pub(crate) async fn heartbeat<B: Backend>(core: Weak<Core<B>>) {
    loop {
        let Some(strong) = core.upgrade() else { return };
        let period = strong.options.lease_timeout / 3;
        if strong.liveness.consuming(strong.options.lease_timeout)
            && let Err(err) = strong.backend.beat(strong.options.lease_ms()).await
        {
            tracing::debug!(%err, "cannot record this consumer's heartbeat");
        }
        drop(strong);
        tokio::time::sleep(period).await;
    }
}
