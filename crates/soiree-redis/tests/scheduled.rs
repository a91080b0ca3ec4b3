//! Delayed events and unique keys on Redis, beyond the conformance checks:
//! listing, counting and cancelling (a repeated event id keeps both
//! events), a hostile unique key, and an expired unique key replaced.

mod support;

use std::time::{Duration, SystemTime};

use serde_json::json;
use soiree::{Appended, Event, EventQueue, EventStore, Inspect, Query, StoredEvent};
use support::builder;

const BOUND: Duration = Duration::from_secs(10);

fn event(id: &str, due: Option<SystemTime>) -> StoredEvent {
    let mut event = Event::new("invoice.remind", json!({ "n": 1 }));
    if let Some(due) = due {
        event = event.deliver_at(due);
    }
    event.properties().set(soiree::PROPERTY_EVENT_ID, id);
    StoredEvent::from_event(&event).unwrap()
}

#[tokio::test]
async fn delayed_events_are_listed_counted_and_cancelled_by_id() {
    let server = server_or_skip!();
    let store = tokio::time::timeout(BOUND, builder(&server, "c").build())
        .await
        .unwrap()
        .unwrap();
    let now = SystemTime::now();
    for (id, secs) in [("twice", 7200), ("twice", 3600), ("other", 5400)] {
        let due = now + Duration::from_secs(secs);
        tokio::time::timeout(BOUND, store.enqueue(&event(id, Some(due))))
            .await
            .unwrap()
            .unwrap();
    }
    let page = tokio::time::timeout(BOUND, store.scheduled(&Query::oldest(2)))
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<_> = page.items.iter().map(|s| s.event_id().unwrap()).collect();
    assert_eq!(ids, ["twice", "other"], "not soonest first");
    let mut next = Query::oldest(2);
    next.cursor = page.next.clone();
    let rest = store.scheduled(&next).await.unwrap();
    assert_eq!(rest.items.len(), 1, "the second page: {rest:?}");
    assert_eq!(Inspect::stats(&store).await.unwrap().scheduled, 3);
    let got = tokio::time::timeout(BOUND, store.dequeue(10, Duration::from_millis(200)))
        .await
        .unwrap()
        .unwrap();
    assert!(got.is_empty(), "a delayed event was delivered early");
    assert!(store.cancel_scheduled("twice").await.unwrap());
    assert!(!store.cancel_scheduled("twice").await.unwrap());
    let left = store.scheduled(&Query::default()).await.unwrap();
    let ids: Vec<_> = left.items.iter().map(|s| s.event_id().unwrap()).collect();
    assert_eq!(
        ids,
        ["other"],
        "cancelling left an event of the id or took another"
    );
}

#[tokio::test]
async fn unique_keys_expire_and_refuse_empty_keys() {
    let server = server_or_skip!();
    let store = tokio::time::timeout(BOUND, builder(&server, "c").build())
        .await
        .unwrap()
        .unwrap();
    let window = Duration::from_millis(20);
    let append = |id: &'static str, key: &'static str| {
        let store = &store;
        async move {
            tokio::time::timeout(BOUND, store.append_unique(&event(id, None), key, window))
                .await
                .unwrap()
        }
    };
    assert_eq!(append("first", "k\r\n{x}").await.unwrap(), Appended::New);
    assert_eq!(
        append("second", "k\r\n{x}").await.unwrap(),
        Appended::Existing("first".into())
    );
    tokio::time::sleep(window * 3).await;
    assert_eq!(
        append("third", "k\r\n{x}").await.unwrap(),
        Appended::New,
        "a key past its window still held"
    );
    assert!(
        append("fourth", "").await.is_err(),
        "an empty key was accepted"
    );
}
