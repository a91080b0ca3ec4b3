//! A listener's answer "not now, later": re-delivery after a delay, which is
//! neither a failure nor an attempt.

use std::time::Duration;

/// The prefix of the error text a stored result of a snoozed attempt
/// carries ([`StoredResult::is_snoozed`](crate::StoredResult::is_snoozed)):
/// a snooze is stored as an unsuccessful outcome, so that a store that
/// knows nothing of snoozes never counts it as a success.
pub const SNOOZED_PREFIX: &str = "soiree.snoozed: ";

/// Returned by a listener (as its error) to be run again after a delay:
/// not a failure, and not counted as an attempt against the bus's
/// [`RetryPolicy`](crate::RetryPolicy). River's `JobSnooze` is the
/// precedent.
///
/// The bus runs the listener again after the delay with the same attempt
/// number ([`EventContext::attempt`](crate::EventContext::attempt)).
/// The listener metrics count a snoozed call under the outcome `snoozed`
/// of `soiree_listener_calls_total`, not as an error.
/// Listeners of one event run in order, so the ones after it wait for it,
/// as they wait for a retry's backoff.
/// With a store, each snoozed call is recorded as a result whose error
/// starts with [`SNOOZED_PREFIX`]. A listener snoozes at most
/// [`Snooze::MAX_PER_RUN`] times for one delivery: past that it fails, as
/// nothing is retried forever. If the bus closes (or the emission's context
/// ends) during the delay, the listener fails with the snooze as its error.
///
/// Today the wait happens in the process that runs the listener, on every
/// bus, holding one of its workers (as a retry's backoff does). With a
/// queue store the delivery stays in flight meanwhile: stores that keep
/// leases alive ([`EventQueue::lease_interval`](crate::EventQueue::lease_interval))
/// keep it, while [`MemoryStore::queue`](crate::MemoryStore::queue)
/// delivers it again once a snooze outlasts its visibility timeout (30 s by
/// default). A store-side snooze that frees the worker comes with the
/// durable stores' scheduling.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use futures::StreamExt;
/// use soiree::{EventBus, Snooze};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let bus = EventBus::new();
/// let calls = Arc::new(AtomicU32::new(0));
/// let seen = calls.clone();
/// bus.on("report.build", move |ctx| {
///     let seen = seen.clone();
///     async move {
///         if seen.fetch_add(1, Ordering::SeqCst) == 0 {
///             // The data is not there yet: come back in a minute.
///             return Err(Snooze::after(Duration::from_secs(60)).into());
///         }
///         assert_eq!(ctx.attempt(), 1, "a snooze is not an attempt");
///         Ok(())
///     }
/// }).unwrap();
/// let errors: Vec<_> = bus.emit("report.build", ()).collect().await;
/// assert!(errors.is_empty());
/// assert_eq!(calls.load(Ordering::SeqCst), 2);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("soiree.snoozed: re-run after {delay:?}")]
pub struct Snooze {
    delay: Duration,
}

impl Snooze {
    /// The most snoozes of one listener for one delivery.
    pub const MAX_PER_RUN: u32 = 1_000;

    /// Run the listener again after `delay`.
    pub fn after(delay: Duration) -> Self {
        Self { delay }
    }

    /// How long to wait before the listener runs again.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}
