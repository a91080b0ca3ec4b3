//! Deliveries from a queue store that no listener of the bus hears.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::BusInner;
use crate::Event;

/// What the bus does with a delivery from its queue store that none of its
/// listeners hears (no registered pattern matches the event's topic).
///
/// Every process of a consumer group should register the same listeners: a
/// delivery is settled by whichever process took it, so an event taken by a
/// process without the listener for it is not handled elsewhere. Such
/// deliveries are always counted (`soiree_deliveries_unheard_total{pool}`)
/// and logged at `warn`; this policy chooses how they are settled.
///
/// # Examples
///
/// ```
/// use soiree::{EventBus, MemoryStore, UnheardDeliveries};
///
/// let bus = EventBus::builder()
///     .store(MemoryStore::queue())
///     .unheard_deliveries(UnheardDeliveries::DeadLetter)
///     .build()
///     .unwrap();
/// # drop(bus);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnheardDeliveries {
    /// Acknowledge the delivery (the default): nobody here wanted it.
    #[default]
    Acknowledge,
    /// Hand the delivery to the queue's
    /// [`fail`](crate::EventQueue::fail) with an error naming the topic: the
    /// store keeps it visible (dead letters, or a retry per its failure
    /// policy) for an operator to replay once a listener for it exists.
    DeadLetter,
}

/// The most one unheard-delivery warning per this many milliseconds: a
/// consumer group full of events for other processes must not flood the log
/// (the counter still counts every one).
const WARN_EVERY_MS: u64 = 1_000;

/// Counts and logs an unheard delivery; returns the failure to hand to the
/// queue's `fail`, or `None` to acknowledge it.
pub(crate) fn settle_unheard(bus: &BusInner, event: &Event) -> Option<String> {
    bus.metrics.unheard.inc();
    let since_warned = bus
        .consumer
        .unheard_since_warned
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    let policy = bus.consumer.unheard;
    if due(&bus.consumer.unheard_warned_at) {
        bus.consumer
            .unheard_since_warned
            .fetch_sub(since_warned, Ordering::Relaxed);
        let event_id = event.id();
        tracing::warn!(
            topic = event.topic(),
            event_id = event_id.as_deref().unwrap_or(""),
            unheard = since_warned,
            ?policy,
            "delivery with no listener on this bus for its topic: register every listener of \
             the consumer group before start(); counted in soiree_deliveries_unheard_total"
        );
    }
    match policy {
        UnheardDeliveries::Acknowledge => None,
        UnheardDeliveries::DeadLetter => Some(format!(
            "no listener registered for topic {:?} on the consuming bus",
            event.topic()
        )),
    }
}

/// Whether a warning is due, claiming it if so.
fn due(warned_at: &AtomicU64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        });
    let last = warned_at.load(Ordering::Relaxed);
    (last == 0 || now.saturating_sub(last) >= WARN_EVERY_MS)
        && warned_at
            .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
}
