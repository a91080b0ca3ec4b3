//! Helpers shared by the checks: ids, sample events, bounded waits, paging.

use futures::StreamExt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use soiree::{Delivery, EventQueue, PROPERTY_EVENT_ID, Page, Result, StoredEvent};
use tokio::time::Instant;

use super::Conformance;

/// The most pages read from one listing: a store whose cursor never ends
/// fails the check instead of hanging it.
const MAX_PAGES: usize = 10_000;

/// An id unique to this process run, so that checks sharing a store by
/// mistake still tell their events apart.
pub(super) fn unique_id(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("conformance-{label}-{}-{nanos:x}-{n}", std::process::id())
}

/// A stored event with the id property and one ordinary property.
pub(super) fn stored_event(topic: &str, id: &str, payload: Value) -> StoredEvent {
    let mut properties = Map::new();
    properties.insert(PROPERTY_EVENT_ID.to_owned(), Value::from(id));
    properties.insert("conformance.seq".to_owned(), json!(id.len()));
    StoredEvent {
        topic: topic.to_owned(),
        payload,
        properties,
    }
}

/// `count` distinct events on `topic`, each with its index in the payload.
pub(super) fn numbered_events(label: &str, topic: &str, count: usize) -> Vec<StoredEvent> {
    (0..count)
        .map(|n| stored_event(topic, &unique_id(label), json!({ "n": n })))
        .collect()
}

/// Awaits `future`, failing the check if it takes longer than the suite's
/// timeout.
pub(super) async fn within<T>(
    config: &Conformance,
    what: &str,
    future: impl Future<Output = T>,
) -> T {
    match tokio::time::timeout(config.timeout, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {:?} waiting for {what}", config.timeout),
    }
}

/// Unwraps a store call's result, failing the check with the call's name.
pub(super) fn ok<T>(what: &str, result: Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what} failed: {err}"),
    }
}

/// Reads a whole listing `limit` items at a time, checking that every page
/// respects the limit and that the cursor ends.
pub(super) async fn read_all<T, F, Fut>(what: &str, limit: usize, mut read: F) -> Vec<T>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let mut items = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = ok(what, read(cursor.take()).await);
        assert!(
            page.items.len() <= limit,
            "{what} with limit {limit} returned a page of {} items",
            page.items.len()
        );
        let more = page.next.is_some();
        assert!(
            !(more && page.items.is_empty()),
            "{what} with limit {limit} returned an empty page that is not the last"
        );
        items.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return items,
        }
    }
    panic!("{what} with limit {limit} did not end after {MAX_PAGES} pages");
}

/// Dequeues until `count` deliveries arrived, `max` at a time, checking each
/// batch's size. Fails the check when they do not arrive within the timeout.
pub(super) async fn drain(
    queue: &dyn EventQueue,
    config: &Conformance,
    count: usize,
    max: usize,
) -> Vec<Delivery> {
    let deadline = Instant::now() + config.timeout;
    let mut deliveries = Vec::with_capacity(count);
    while deliveries.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "only {} of {count} queued events were delivered within {:?}",
            deliveries.len(),
            config.timeout
        );
        let wait = left.min(Duration::from_secs(1));
        let batch = ok(
            "dequeue",
            within(config, "dequeue", queue.dequeue(max, wait)).await,
        );
        assert!(
            batch.len() <= max,
            "dequeue({max}) returned {} deliveries",
            batch.len()
        );
        deliveries.extend(batch);
    }
    assert_eq!(
        deliveries.len(),
        count,
        "more events were delivered than were queued"
    );
    deliveries
}

/// The receipts of some deliveries.
pub(super) fn receipts(deliveries: &[Delivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.receipt.clone()).collect()
}

/// The events of some deliveries.
pub(super) fn events(deliveries: &[Delivery]) -> Vec<StoredEvent> {
    deliveries.iter().map(|d| d.event.clone()).collect()
}

/// Waits for every emission and asserts that none yielded an error; `what`
/// says what was emitted, for the failure message.
pub(super) async fn assert_emitted_without_errors(
    config: &Conformance,
    what: &str,
    emissions: impl IntoIterator<Item = soiree::Emission>,
) {
    let all = futures::future::join_all(
        emissions
            .into_iter()
            .map(|emission| emission.collect::<Vec<soiree::Error>>()),
    );
    let errors: Vec<String> = within(config, "the emissions to finish", all)
        .await
        .into_iter()
        .flatten()
        .map(|err| err.to_string())
        .collect();
    assert!(errors.is_empty(), "{what} yielded errors: {errors:?}");
}
