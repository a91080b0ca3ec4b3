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
/// Listeners of one event run in order, so while the snooze waits in the
/// process the ones after it wait for it, as they wait for a retry's
/// backoff (a snooze kept by the store does not hold them: see below).
/// With a store, each snoozed call is recorded as a result whose error
/// starts with [`SNOOZED_PREFIX`]. A listener snoozes at most
/// [`Snooze::MAX_PER_RUN`] times for one delivery: past that it fails, as
/// nothing is retried forever. If the bus closes (or the emission's context
/// ends) during the delay, the listener fails with the snooze as its error.
///
/// Where the wait happens: in the process that runs the listener, holding
/// one of the bus's workers (as a retry's backoff does), unless the store
/// can hold it. For a delivery from a queue store that
/// [`defers`](crate::EventQueue::defers) (the memory queue, the SQL and
/// Redis stores; not NATS), a snooze longer than [`Snooze::IN_STORE_AFTER`] on the
/// listener's first attempt is kept by the store instead: the listener
/// returns at once, the delivery's other listeners run, and the delivery
/// is then handed to [`EventQueue::defer`](crate::EventQueue::defer)
/// rather than acknowledged. The worker and the delivery's lease are free
/// meanwhile, and on a durable store the snooze survives a crash or a
/// restart. The store delivers the event again at the due time, not
/// before, with the same delivery count; the listener runs again as
/// attempt 1 (the attempt it snoozed on). Listeners of the delivery that
/// succeeded are skipped then, as on any redelivery, through the store's
/// record of successes: a named listener
/// ([`EventBus::on_named`](crate::EventBus::on_named)) always, an unnamed
/// one only in the process that registered it (its generated id is that
/// registration's), so an unnamed listener may run again after a restart,
/// as after a retry. When several listeners of a delivery snooze, it comes
/// back after the longest snooze. When another listener of the delivery
/// failed, the failure wins: the delivery goes to
/// [`EventQueue::fail`](crate::EventQueue::fail) as before (and the
/// snoozed listener runs again whenever the event is delivered again).
/// [`Snooze::MAX_PER_RUN`] counts the snoozes of one delivery only: a
/// listener that snoozes in the store each time it runs is not cut off.
///
/// Shorter snoozes, snoozes on a retry (attempt 2 or later: the store
/// does not keep the listener's in-process attempt count), events emitted
/// without a queue and queues that do not defer keep the wait in the
/// process. With a queue store the delivery then stays in flight
/// meanwhile: stores that keep leases alive
/// ([`EventQueue::lease_interval`](crate::EventQueue::lease_interval))
/// keep it, while [`MemoryStore::queue`](crate::MemoryStore::queue)
/// delivers it again once a snooze outlasts its visibility timeout (30 s by
/// default).
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

    /// Snoozes longer than this wait in the store rather than in the
    /// process, for a queue that [`defers`](crate::EventQueue::defers):
    /// a shorter one costs less held on a worker than a round trip to the
    /// store and back (and a store's polling may be as coarse).
    pub const IN_STORE_AFTER: Duration = Duration::from_secs(1);

    /// Run the listener again after `delay`.
    pub fn after(delay: Duration) -> Self {
        Self { delay }
    }

    /// How long to wait before the listener runs again.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}
