//! Checks of the queue ability: enqueue, dequeue, acknowledge, redeliver.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use soiree::{EventQueue, EventStore};
use tokio::time::Instant;

use super::ability::REDELIVERY_NOT_SET;
use super::support::{
    drain, events, numbered_events, ok, receipts, stored_event, unique_id, within,
};
use super::{Ability, Conformance, Outcome};

const NO_QUEUE: &str = Ability::Queue.missing();

async fn backlog(queue: &dyn EventQueue, config: &Conformance) -> u64 {
    ok("backlog", within(config, "backlog", queue.backlog()).await)
}

async fn ack(queue: &dyn EventQueue, config: &Conformance, receipts: &[String]) {
    ok("ack", within(config, "ack", queue.ack(receipts)).await);
}

async fn enqueue_all(queue: &dyn EventQueue, config: &Conformance, events: &[soiree::StoredEvent]) {
    for event in events {
        ok(
            "enqueue",
            within(config, "enqueue", queue.enqueue(event)).await,
        );
    }
}

/// An enqueued event is dequeued with identical topic, payload and
/// properties, a non-empty receipt and a delivery count of 1; acknowledging
/// it empties the backlog.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn queue_round_trip(store: Arc<dyn EventStore>, config: &Conformance) -> Outcome {
    let Some(queue) = store.queue() else {
        return Outcome::Skipped(NO_QUEUE);
    };
    let mut event = stored_event(
        "conformance.queue.round_trip",
        &unique_id("queue"),
        json!({ "text": "héllo ✓", "n": 9_007_199_254_740_993_u64, "list": [1.5, null, false] }),
    );
    event.properties.insert("name".to_owned(), json!("Ada"));
    enqueue_all(queue, config, std::slice::from_ref(&event)).await;
    let deliveries = drain(queue, config, 1, 10).await;
    let delivery = &deliveries[0];
    assert_eq!(
        delivery.event, event,
        "a dequeued event differs from the one enqueued"
    );
    assert_eq!(
        delivery.event.id(),
        event.id(),
        "a dequeued event's id changed"
    );
    assert!(
        !delivery.receipt.is_empty(),
        "a delivery has an empty receipt"
    );
    assert_eq!(
        delivery.delivery_count, 1,
        "a first delivery has a delivery count other than 1"
    );
    ack(queue, config, &receipts(&deliveries)).await;
    assert_eq!(
        backlog(queue, config).await,
        0,
        "the backlog is not empty after the only event was acknowledged"
    );
    Outcome::Passed
}

/// One consumer dequeuing a few at a time receives events in the order they
/// were enqueued, each once, with distinct receipts.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn queue_is_fifo_for_one_consumer(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(queue) = store.queue() else {
        return Outcome::Skipped(NO_QUEUE);
    };
    let queued = numbered_events("fifo", "conformance.queue.fifo", 10);
    enqueue_all(queue, config, &queued).await;
    let deliveries = drain(queue, config, queued.len(), 3).await;
    assert_eq!(
        events(&deliveries),
        queued,
        "events were not dequeued in the order enqueued"
    );
    let mut distinct = receipts(&deliveries);
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        deliveries.len(),
        "two deliveries share a receipt"
    );
    ack(queue, config, &receipts(&deliveries)).await;
    Outcome::Passed
}

/// `dequeue(max, wait)` returns at most `max` deliveries (and at least one
/// when events are waiting), leaving the rest queued.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn queue_dequeue_respects_max(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(queue) = store.queue() else {
        return Outcome::Skipped(NO_QUEUE);
    };
    let queued = numbered_events("max", "conformance.queue.max", 5);
    enqueue_all(queue, config, &queued).await;
    let mut taken = 0;
    for max in [1, 2] {
        let batch = ok(
            "dequeue",
            within(config, "dequeue", queue.dequeue(max, config.timeout / 2)).await,
        );
        assert!(
            !batch.is_empty(),
            "dequeue({max}) returned nothing while events were queued"
        );
        assert!(
            batch.len() <= max,
            "dequeue({max}) returned {} deliveries",
            batch.len()
        );
        taken += batch.len();
        ack(queue, config, &receipts(&batch)).await;
    }
    let rest = backlog(queue, config).await;
    assert_eq!(
        rest,
        (queued.len() - taken) as u64,
        "after {taken} of {} events were taken and acknowledged, the backlog is {rest}",
        queued.len()
    );
    let rest = usize::try_from(rest).unwrap_or(usize::MAX);
    let deliveries = drain(queue, config, rest, 10).await;
    ack(queue, config, &receipts(&deliveries)).await;
    assert_eq!(
        backlog(queue, config).await,
        0,
        "the backlog is not empty after every event was acknowledged"
    );
    Outcome::Passed
}

/// A dequeue on an empty queue waits (up to its `wait`) and returns no
/// deliveries, not an error.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn queue_empty_dequeue_returns_nothing(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(queue) = store.queue() else {
        return Outcome::Skipped(NO_QUEUE);
    };
    assert_eq!(
        backlog(queue, config).await,
        0,
        "a fresh store's queue has a backlog"
    );
    let deliveries = ok(
        "dequeue on an empty queue",
        within(
            config,
            "dequeue on an empty queue",
            queue.dequeue(5, config.empty_wait),
        )
        .await,
    );
    assert!(
        deliveries.is_empty(),
        "dequeue on an empty queue returned {deliveries:?}"
    );
    Outcome::Passed
}

/// The backlog counts queued and delivered-but-unacknowledged events;
/// acknowledging removes exactly the acknowledged ones, which are not
/// delivered again.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn queue_ack_removes_from_backlog(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(queue) = store.queue() else {
        return Outcome::Skipped(NO_QUEUE);
    };
    let queued = numbered_events("ack", "conformance.queue.ack", 3);
    enqueue_all(queue, config, &queued).await;
    assert_eq!(
        backlog(queue, config).await,
        3,
        "the backlog does not count queued events"
    );
    let deliveries = drain(queue, config, queued.len(), 10).await;
    assert_eq!(
        backlog(queue, config).await,
        3,
        "the backlog does not count delivered, unacknowledged events"
    );
    let receipts = receipts(&deliveries);
    ack(queue, config, &receipts[..1]).await;
    assert_eq!(
        backlog(queue, config).await,
        2,
        "acknowledging one delivery did not remove exactly one event"
    );
    ack(queue, config, &receipts[1..]).await;
    assert_eq!(
        backlog(queue, config).await,
        0,
        "the backlog is not empty after every event was acknowledged"
    );
    let again = ok(
        "dequeue",
        within(config, "dequeue", queue.dequeue(10, config.empty_wait)).await,
    );
    assert!(
        again.is_empty(),
        "acknowledged events were delivered again: {again:?}"
    );
    Outcome::Passed
}

/// A delivery that is never acknowledged is not lost: it stays in the
/// backlog.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn queue_unacked_stays_in_backlog(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(queue) = store.queue() else {
        return Outcome::Skipped(NO_QUEUE);
    };
    let queued = numbered_events("unacked", "conformance.queue.unacked", 2);
    enqueue_all(queue, config, &queued).await;
    let deliveries = drain(queue, config, 1, 1).await;
    assert_eq!(
        deliveries[0].event, queued[0],
        "the first delivery is not the first event"
    );
    assert_eq!(
        backlog(queue, config).await,
        2,
        "an unacknowledged delivery left the backlog (or the queued one did)"
    );
    Outcome::Passed
}

/// Opt-in ([`Conformance::redelivery_after`]): a delivery that is not
/// acknowledged is delivered again after about that long, as the same event
/// with a delivery count of 2; acknowledging the redelivery empties the
/// backlog.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn queue_redelivers_unacked(store: Arc<dyn EventStore>, config: &Conformance) -> Outcome {
    let Some(queue) = store.queue() else {
        return Outcome::Skipped(NO_QUEUE);
    };
    let Some(after) = config.redelivery_after else {
        return Outcome::Skipped(REDELIVERY_NOT_SET);
    };
    let event = stored_event(
        "conformance.queue.redelivery",
        &unique_id("redelivery"),
        json!({ "n": 1 }),
    );
    enqueue_all(queue, config, std::slice::from_ref(&event)).await;
    let first = drain(queue, config, 1, 1).await;
    assert_eq!(
        first[0].delivery_count, 1,
        "a first delivery has a delivery count other than 1"
    );
    // Leave it unacknowledged, as a consumer that died would.
    let deadline = Instant::now() + after + config.timeout;
    let again = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "an unacknowledged delivery was not delivered again within {:?}",
            after + config.timeout
        );
        let wait = left.min(after.max(Duration::from_millis(100)));
        let batch = ok(
            "dequeue",
            within(config, "dequeue", queue.dequeue(1, wait)).await,
        );
        if let Some(delivery) = batch.into_iter().next() {
            break delivery;
        }
    };
    assert_eq!(
        again.event, event,
        "the redelivered event differs from the one enqueued"
    );
    assert_eq!(
        again.delivery_count, 2,
        "a second delivery has a delivery count other than 2"
    );
    ack(queue, config, std::slice::from_ref(&again.receipt)).await;
    assert_eq!(
        backlog(queue, config).await,
        0,
        "the backlog is not empty after the redelivery was acknowledged"
    );
    Outcome::Passed
}
