//! Checks of [`Inspect`] that hold for every queue store: each takes a
//! fresh, isolated store (nothing stored yet), drives it through the trait
//! (as the CLI and the dashboard do, through `Arc<dyn Inspect>`) and, where
//! needed, a bus on the same store, and panics naming the broken promise.
//! Every wait is bounded by [`TIMEOUT`]; run them on a multi-thread runtime.
//!
//! ```no_run
//! # #![allow(unused_imports)] // the test below exists only under cfg(test)
//! use std::sync::Arc;
//! use soiree::MemoryStore;
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn pages_join_without_gaps() {
//!     soiree_test::inspect::pages_join_without_gaps(Arc::new(MemoryStore::queue())).await;
//! }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::{Map, Value, json};
use soiree::{
    DeadLetterSelection, Error, EventBus, EventStore, Filter, Inspect, LeaderLease,
    PROPERTY_EVENT_ID, PendingDelivery, Query, SharedLimits, SlotHold, StoredEvent,
};

/// The longest any one wait of a check may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs every check of this module, each on a store from `fresh`.
pub async fn check_inspect<S, F, Fut>(mut fresh: F)
where
    S: EventStore + Inspect + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    stats_count_what_a_bus_did(fresh().await).await;
    pages_join_without_gaps(fresh().await).await;
    filters_select_by_topic_event_id_and_time(fresh().await).await;
    invalid_cursor_is_a_store_error(fresh().await).await;
    pending_shows_a_held_delivery(fresh().await).await;
    replayed_dead_letter_runs_its_listener_again(fresh().await).await;
    purge_deletes_only_the_selected_letters(fresh().await).await;
    replay_of_an_unknown_event_is_not_found(fresh().await).await;
    tail_yields_events_stored_after_it_started(fresh().await).await;
}

/// After a bus run with a failing listener: the stats count the events,
/// results and dead letters, nothing is left in the backlog, the group has
/// a consumer, and `emitted` only grows.
pub async fn stats_count_what_a_bus_did<S: EventStore + Inspect + 'static>(store: Arc<S>) {
    let inspect: Arc<dyn Inspect> = store.clone();
    let bus = bus(&store);
    bus.on_named("ok", "stats.ok", |_ctx| async { Ok(()) })
        .unwrap();
    bus.on_named("fails", "stats.fail", |_ctx| async { Err("boom".into()) })
        .unwrap();
    bus.start().unwrap();
    for n in 0..3 {
        emit(&bus, "stats.ok", n).await;
    }
    for n in 0..2 {
        emit(&bus, "stats.fail", n).await;
    }
    within("the bus to go idle", bus.wait_for_idle()).await;
    let before = within("stats", inspect.stats()).await.unwrap();
    assert_eq!(before.events, 5, "events stored: {before:?}");
    assert!(
        before.emitted >= 5,
        "emitted counts every event: {before:?}"
    );
    assert_eq!(before.results, 5, "one result per listener run: {before:?}");
    assert_eq!(before.dead_letters, 2, "the failed events: {before:?}");
    assert_eq!(
        before.backlog, 0,
        "nothing unacknowledged when idle: {before:?}"
    );
    assert_eq!(
        before.in_flight, 0,
        "nothing in flight when idle: {before:?}"
    );
    assert_eq!(before.oldest_pending_age, None, "{before:?}");
    assert!(before.consumers >= 1, "the bus consumes: {before:?}");
    assert!(before.taken_at.is_some(), "{before:?}");

    emit(&bus, "stats.ok", 3).await;
    within("the bus to go idle", bus.wait_for_idle()).await;
    let after = within("stats", inspect.stats()).await.unwrap();
    assert!(after.emitted > before.emitted, "emitted grows: {after:?}");
    assert_eq!(after.events, 6, "{after:?}");
    assert!(after.taken_at >= before.taken_at);
    assert!(after.rates_since(&before).is_some());
    close(bus).await;
}

/// Pages oldest first and newest first, joined by their cursors, list every
/// event once, in order; the last page has no cursor.
pub async fn pages_join_without_gaps<S: EventStore + Inspect + 'static>(store: Arc<S>) {
    let inspect: Arc<dyn Inspect> = store.clone();
    let saved = save(&*store, "pages.event", 23).await;
    let ids: Vec<String> = saved.iter().filter_map(event_id_text).collect();

    let all = within("events", inspect.events(&Query::oldest(1000)))
        .await
        .unwrap();
    assert_eq!(all.next, None, "one page holds them all");
    assert_eq!(event_ids(&all.items), ids, "oldest first, every event");
    assert!(all.items.iter().all(|record| record.at.is_some()));

    for newest_first in [false, true] {
        let mut query = if newest_first {
            Query::newest(5)
        } else {
            Query::oldest(5)
        };
        let mut joined = Vec::new();
        let mut record_ids = Vec::new();
        for _ in 0..100 {
            let page = within("a page", inspect.events(&query)).await.unwrap();
            assert!(page.items.len() <= 5, "at most the limit");
            joined.extend(event_ids(&page.items));
            record_ids.extend(page.items.iter().map(|record| record.id.clone()));
            match page.next {
                Some(next) => query.cursor = Some(next),
                None => break,
            }
        }
        let mut expected = ids.clone();
        if newest_first {
            expected.reverse();
        }
        assert_eq!(joined, expected, "newest first: {newest_first}");
        let mut unique = record_ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), record_ids.len(), "no record twice");
    }

    // A cursor from the middle continues right after it.
    let first = within("a page", inspect.events(&Query::oldest(10)))
        .await
        .unwrap();
    let cursor = first.next.expect("more than 10 events");
    let rest = within("a page", inspect.events(&Query::oldest(1000).after(cursor)))
        .await
        .unwrap();
    assert_eq!(event_ids(&rest.items), ids[10..].to_vec());
}

/// Topic patterns, event ids and time ranges narrow listings, alone and
/// together, and filtered pages still join through their cursors.
pub async fn filters_select_by_topic_event_id_and_time<S: EventStore + Inspect + 'static>(
    store: Arc<S>,
) {
    let inspect: Arc<dyn Inspect> = store.clone();
    let early_a = save(&*store, "filter.a.one", 3).await;
    let early_b = save(&*store, "filter.b.two", 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let middle = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let late_a = save(&*store, "filter.a.three", 2).await;

    let list = |filter: Filter| {
        let inspect = inspect.clone();
        async move {
            within(
                "events",
                inspect.events(&Query::oldest(1000).filter(filter)),
            )
            .await
            .unwrap()
            .items
        }
    };
    let a: Vec<String> = early_a
        .iter()
        .chain(&late_a)
        .filter_map(event_id_text)
        .collect();
    assert_eq!(
        event_ids(&list(Filter::default().topic("filter.a.*")).await),
        a
    );
    assert_eq!(
        event_ids(&list(Filter::default().topic("filter.**")).await).len(),
        7
    );
    assert_eq!(
        event_ids(&list(Filter::default().topic("filter.b.two")).await),
        early_b.iter().filter_map(event_id_text).collect::<Vec<_>>()
    );
    assert!(list(Filter::default().topic("nothing.*")).await.is_empty());

    let wanted = event_id_text(&early_b[1]).unwrap();
    let found = list(Filter::default().event_id(wanted.clone())).await;
    assert_eq!(event_ids(&found), vec![wanted.clone()], "by event id");
    assert_eq!(found[0].item, early_b[1], "the event as saved");

    let since = list(Filter::default().since(middle)).await;
    assert_eq!(
        event_ids(&since),
        late_a.iter().filter_map(event_id_text).collect::<Vec<_>>(),
        "since the middle"
    );
    assert!(since.iter().all(|record| record.at >= Some(middle)));
    let until = list(Filter::default().until(middle)).await;
    assert_eq!(until.len(), 5, "until the middle");
    assert!(until.iter().all(|record| record.at < Some(middle)));
    let both = list(Filter::default().topic("filter.b.*").since(middle)).await;
    assert!(both.is_empty(), "b was before the middle");
    let far = SystemTime::now() + Duration::from_secs(3600);
    assert!(list(Filter::default().since(far)).await.is_empty());
    assert!(list(Filter::default().until(UNIX_EPOCH)).await.is_empty());

    // Filtered pages of one, newest first, joined.
    let mut query = Query::newest(1).filter(Filter::default().topic("filter.a.*"));
    let mut joined = Vec::new();
    for _ in 0..100 {
        let page = within("a page", inspect.events(&query)).await.unwrap();
        joined.extend(event_ids(&page.items));
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    let mut newest_a = a.clone();
    newest_a.reverse();
    assert_eq!(joined, newest_a);
}

/// A cursor that is not one of the store's ids is a store error, not a
/// panic and not an empty page.
pub async fn invalid_cursor_is_a_store_error<S: EventStore + Inspect + 'static>(store: Arc<S>) {
    let inspect: Arc<dyn Inspect> = store.clone();
    save(&*store, "cursor.event", 1).await;
    for cursor in ["not a cursor", "12-ab", ""] {
        let query = Query::oldest(10).after(cursor);
        let events = within("events", inspect.events(&query)).await;
        assert!(
            matches!(events, Err(Error::Store(_))),
            "{cursor:?}: {events:?}"
        );
        let results = within("results", inspect.results(&query)).await;
        assert!(matches!(results, Err(Error::Store(_))), "{results:?}");
        let letters = within("dead letters", inspect.dead_letters(&query)).await;
        assert!(matches!(letters, Err(Error::Store(_))), "{letters:?}");
        let newest = Query::newest(10).after(cursor);
        let events = within("events", inspect.events(&newest)).await;
        assert!(matches!(events, Err(Error::Store(_))), "{events:?}");
    }
}

/// A delivery held by a listener that has not returned is pending, with
/// its consumer, and counted in flight; once the listener returns it is
/// gone. Returns the pending delivery seen, for store-specific checks.
pub async fn pending_shows_a_held_delivery<S: EventStore + Inspect + 'static>(
    store: Arc<S>,
) -> PendingDelivery {
    let inspect: Arc<dyn Inspect> = store.clone();
    let bus = bus(&store);
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    bus.on_named("held", "pending.held", move |_ctx| {
        let g = g.clone();
        async move {
            let _permit = g.acquire().await;
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();
    let event_id = emit(&bus, "pending.held", 1).await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let delivery = loop {
        let page = within("pending", inspect.pending(&Query::oldest(10)))
            .await
            .unwrap();
        if let Some(delivery) = page.items.into_iter().next() {
            break delivery;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the delivery to be pending"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!delivery.consumer.is_empty(), "{delivery:?}");
    assert!(delivery.deliveries >= 1, "{delivery:?}");
    assert_eq!(delivery.events, 1, "{delivery:?}");
    if let Some(event) = &delivery.event {
        assert_eq!(event.topic, "pending.held");
        assert_eq!(event_id_text(event).as_deref(), Some(event_id.as_str()));
    }
    let stats = within("stats", inspect.stats()).await.unwrap();
    assert!(stats.in_flight >= 1 && stats.backlog >= 1, "{stats:?}");
    assert!(stats.oldest_pending_age.is_some(), "{stats:?}");
    let consumers = within("consumers", inspect.consumers()).await.unwrap();
    assert!(
        consumers.iter().any(|consumer| consumer.pending >= 1),
        "a consumer holds it: {consumers:?}"
    );

    gate.add_permits(1);
    within("the bus to go idle", bus.wait_for_idle()).await;
    // The bus acknowledges in batches after its listeners finish, so the
    // store may list the delivery a moment longer than the bus is busy.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = within("pending", inspect.pending(&Query::oldest(10)))
            .await
            .unwrap();
        if page.items.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still pending 10 s after the bus went idle: {page:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    close(bus).await;
    delivery
}

/// A dead letter replayed by id is delivered again (the listener, fixed,
/// now succeeds, and its result is stored) and leaves the dead letters;
/// the other letters stay.
pub async fn replayed_dead_letter_runs_its_listener_again<S: EventStore + Inspect + 'static>(
    store: Arc<S>,
) {
    let inspect: Arc<dyn Inspect> = store.clone();
    let bus = bus(&store);
    let broken = Arc::new(AtomicBool::new(true));
    let runs = Arc::new(AtomicUsize::new(0));
    let (b, r) = (broken.clone(), runs.clone());
    bus.on_named("flaky", "replay.flaky", move |_ctx| {
        let (b, r) = (b.clone(), r.clone());
        async move {
            r.fetch_add(1, Ordering::SeqCst);
            if b.load(Ordering::SeqCst) {
                Err("smtp down".into())
            } else {
                Ok(())
            }
        }
    })
    .unwrap();
    bus.start().unwrap();
    let first = emit(&bus, "replay.flaky", 1).await;
    emit(&bus, "replay.flaky", 2).await;
    within("the bus to go idle", bus.wait_for_idle()).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    let letters = within("dead letters", inspect.dead_letters(&Query::oldest(10)))
        .await
        .unwrap();
    assert_eq!(letters.items.len(), 2, "{letters:?}");
    let letter = letters
        .items
        .iter()
        .find(|letter| letter.event_id().as_deref() == Some(first.as_str()))
        .expect("the first event's letter")
        .clone();
    assert!(letter.error.contains("smtp down"), "{letter:?}");
    assert_eq!(letter.topic(), Some("replay.flaky"));
    assert!(letter.at.is_some(), "{letter:?}");
    let by_id = within("a dead letter", inspect.dead_letter(&letter.id))
        .await
        .unwrap();
    assert_eq!(by_id.as_ref(), Some(&letter), "looked up by id");

    broken.store(false, Ordering::SeqCst);
    let selection = DeadLetterSelection::Ids(vec![letter.id.clone()]);
    let replayed = within("a replay", inspect.replay_dead_letters(&selection))
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    eventually("the replayed event to run", || async {
        runs.load(Ordering::SeqCst) >= 3
    })
    .await;
    within("the bus to go idle", bus.wait_for_idle()).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3, "only the replayed one ran");
    let results = within(
        "results",
        inspect.results(&Query::oldest(100).filter(Filter::default().event_id(first.clone()))),
    )
    .await
    .unwrap();
    assert!(
        results.items.iter().any(|record| record.item.succeeded()),
        "the replay succeeded: {results:?}"
    );
    let left = within("dead letters", inspect.dead_letters(&Query::oldest(10)))
        .await
        .unwrap();
    assert_eq!(left.items.len(), 1, "{left:?}");
    assert_ne!(left.items[0].id, letter.id, "the replayed letter is gone");
    assert_eq!(
        within("a dead letter", inspect.dead_letter(&letter.id))
            .await
            .unwrap(),
        None
    );
    let again = within("a replay", inspect.replay_dead_letters(&selection))
        .await
        .unwrap();
    assert_eq!(again, 0, "a replayed letter is not replayed twice");
    let detail = within("an event", inspect.event(&first)).await.unwrap();
    let detail = detail.expect("the event is stored");
    assert!(detail.results.iter().any(|r| r.item.succeeded()));
    close(bus).await;
}

/// Purging by filter deletes the letters it selects and no other; purging
/// by id deletes that letter.
pub async fn purge_deletes_only_the_selected_letters<S: EventStore + Inspect + 'static>(
    store: Arc<S>,
) {
    let inspect: Arc<dyn Inspect> = store.clone();
    let bus = bus(&store);
    bus.on_named("fails", "purge.*", |_ctx| async { Err("nope".into()) })
        .unwrap();
    bus.start().unwrap();
    for topic in ["purge.a", "purge.b", "purge.a", "purge.b"] {
        emit(&bus, topic, 0).await;
    }
    within("the bus to go idle", bus.wait_for_idle()).await;
    let all = Query::oldest(100);
    assert_eq!(
        within("dead letters", inspect.dead_letters(&all))
            .await
            .unwrap()
            .items
            .len(),
        4
    );
    let selection = DeadLetterSelection::Matching(Filter::default().topic("purge.a"));
    let purged = within("a purge", inspect.purge_dead_letters(&selection))
        .await
        .unwrap();
    assert_eq!(purged, 2);
    let left = within("dead letters", inspect.dead_letters(&all))
        .await
        .unwrap()
        .items;
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|letter| letter.topic() == Some("purge.b")));

    let one = DeadLetterSelection::Ids(vec![left[0].id.clone()]);
    assert_eq!(
        within("a purge", inspect.purge_dead_letters(&one))
            .await
            .unwrap(),
        1
    );
    let left = within("dead letters", inspect.dead_letters(&all))
        .await
        .unwrap()
        .items;
    assert_eq!(left.len(), 1, "{left:?}");
    let stats = within("stats", inspect.stats()).await.unwrap();
    assert_eq!(stats.dead_letters, 1, "{stats:?}");
    close(bus).await;
}

/// Replaying an event the store does not hold is [`Error::NotFound`].
pub async fn replay_of_an_unknown_event_is_not_found<S: EventStore + Inspect + 'static>(
    store: Arc<S>,
) {
    let inspect: Arc<dyn Inspect> = store.clone();
    save(&*store, "unknown.event", 2).await;
    let err = within("a replay", inspect.replay("no-such-event"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { what: "event", id } if id == "no-such-event"),
        "{err:?}"
    );
    assert!(
        within("an event", inspect.event("no-such-event"))
            .await
            .unwrap()
            .is_none()
    );
}

/// A tail yields the events stored after it started that its filter
/// selects, not the ones before.
pub async fn tail_yields_events_stored_after_it_started<S: EventStore + Inspect + 'static>(
    store: Arc<S>,
) {
    let inspect: Arc<dyn Inspect> = store.clone();
    save(&*store, "tail.wanted", 2).await;
    let mut tail = inspect.tail(
        Filter::default().topic("tail.wanted"),
        Duration::from_millis(20),
    );
    let later = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        save(&*store, "tail.other", 1).await;
        save(&*store, "tail.wanted", 1).await
    };
    let (next, saved) = within("the tail", async { tokio::join!(tail.next(), later) }).await;
    let record = next.expect("the tail goes on").expect("read");
    assert_eq!(record.item, saved[0], "the event stored after the start");
}

/// The progress [`leases_are_listed`] renews its held lease with.
pub const LEASE_PROGRESS: i64 = 1_700_000_000_000;

/// [`Inspect::leader_leases`] lists a store's leases by name, held or not:
/// `nightly-report`, taken by `host-a` and renewed with
/// [`LEASE_PROGRESS`], is listed held, with its token, its progress and an
/// expiry ahead; `released` (a name that sorts before it), taken by
/// `host-b` and released, is listed not held; a limit of one lists one.
///
/// `leases` and `inspect` are one store's, whose prefix has no other
/// lease.
///
/// # Panics
///
/// When a lease is not taken, renewed, released or listed so.
pub async fn leases_are_listed(leases: &dyn LeaderLease, inspect: &dyn Inspect, released: &str) {
    let ttl = Duration::from_secs(3600);
    let held = within("acquire", leases.acquire("nightly-report", "host-a", ttl))
        .await
        .unwrap()
        .expect("free");
    let renewed = within("renew", leases.renew(&held, ttl, Some(LEASE_PROGRESS)))
        .await
        .unwrap();
    assert!(renewed, "the holder renews its lease");
    let given_up = within("acquire", leases.acquire(released, "host-b", ttl))
        .await
        .unwrap()
        .expect("free");
    let freed = within("release", leases.release(&given_up)).await.unwrap();
    assert!(freed, "the holder releases its lease");

    let listed = within("leader_leases", inspect.leader_leases(100))
        .await
        .unwrap();
    let names: Vec<_> = listed
        .iter()
        .map(|l| (l.name.as_str(), l.holder.as_str(), l.held))
        .collect();
    assert_eq!(
        names,
        [
            (released, "host-b", false),
            ("nightly-report", "host-a", true)
        ]
    );
    assert_eq!(listed[1].token, held.token);
    assert_eq!(listed[1].progress, Some(LEASE_PROGRESS));
    assert!(listed[1].expires_at > SystemTime::now());
    let first = within("leader_leases", inspect.leader_leases(1))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
}

/// [`Inspect::limit_slots`] lists the unexpired slots by key, then holder:
/// the two slots of `mailer` (taken by `run-1`, then `run-0`) are listed
/// with an expiry ahead; a freed slot (`billing`) and an expired one
/// (`short`, 1 ms) are not; a limit of one lists one.
///
/// `limits` and `inspect` are one store's, whose prefix has no other slot.
///
/// # Panics
///
/// When a slot is not taken, freed or listed so.
pub async fn limit_slots_are_listed(limits: &dyn SharedLimits, inspect: &dyn Inspect) {
    let ttl = Duration::from_secs(3600);
    for holder in ["run-1", "run-0"] {
        let taken = within("slot", limits.acquire_slot("mailer", 2, holder, ttl))
            .await
            .unwrap();
        assert!(taken, "{holder} takes a slot of mailer");
    }
    let taken = within("slot", limits.acquire_slot("billing", 1, "run-9", ttl))
        .await
        .unwrap();
    assert!(taken, "run-9 takes the slot of billing");
    let freed = SlotHold {
        key: "billing".into(),
        holder: "run-9".into(),
    };
    within("release", limits.release_slot(&freed))
        .await
        .unwrap();
    let short = Duration::from_millis(1);
    let taken = within("slot", limits.acquire_slot("short", 1, "run-x", short))
        .await
        .unwrap();
    assert!(taken, "run-x takes the slot of short");
    // Past the short slot's expiry (not a timing check: a slot listed
    // after its expiry fails the test whatever the delay).
    tokio::time::sleep(Duration::from_millis(20)).await;

    let slots = within("limit_slots", inspect.limit_slots(100))
        .await
        .unwrap();
    let taken: Vec<_> = slots
        .iter()
        .map(|s| (s.key.as_str(), s.holder.as_str()))
        .collect();
    assert_eq!(taken, [("mailer", "run-0"), ("mailer", "run-1")]);
    assert!(slots.iter().all(|s| s.expires_at > SystemTime::now()));
    let first = within("limit_slots", inspect.limit_slots(1)).await.unwrap();
    assert_eq!(first.len(), 1);
}

fn bus<S: EventStore + 'static>(store: &Arc<S>) -> EventBus {
    let store: Arc<dyn EventStore> = store.clone();
    EventBus::builder().shared_store(store).build().unwrap()
}

/// Emits and waits until the event is stored; returns its id.
async fn emit(bus: &EventBus, topic: &str, n: u64) -> String {
    let mut emission = bus.emit(topic, json!({ "n": n }));
    within("an emission", emission.persisted()).await.unwrap()
}

async fn close(bus: EventBus) {
    within("the bus to close", bus.close()).await.unwrap();
}

/// Saves `count` events on `topic`, each with an event id of its own.
async fn save<S: EventStore + ?Sized>(store: &S, topic: &str, count: usize) -> Vec<StoredEvent> {
    let mut saved = Vec::new();
    for n in 0..count {
        let mut properties = Map::new();
        properties.insert(PROPERTY_EVENT_ID.to_owned(), Value::from(unique_id()));
        let event = StoredEvent {
            topic: topic.to_owned(),
            payload: json!({ "n": n }),
            properties,
        };
        within("a save", store.save_event(&event)).await.unwrap();
        saved.push(event);
    }
    saved
}

fn unique_id() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!(
        "inspect-{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The event id property as text (what [`Filter::event_id`] compares).
fn event_id_text(event: &StoredEvent) -> Option<String> {
    match event.properties.get(PROPERTY_EVENT_ID)? {
        Value::String(id) => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

fn event_ids(records: &[soiree::Record<StoredEvent>]) -> Vec<String> {
    records
        .iter()
        .filter_map(|record| event_id_text(&record.item))
        .collect()
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(TIMEOUT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

/// Polls `check` every 20 ms until it returns true, failing after [`TIMEOUT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
