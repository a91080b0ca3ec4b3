//! `soiree::Inspect` for RedisStore: what only Redis can show (entry ids as
//! record ids, malformed entries, trimming, the undelivered backlog), each
//! test against its own redis-server. The shared checks of soiree-test run
//! through `conformance_suite!`'s `inspect` argument, in conformance.rs.

mod support;

use std::sync::Arc;
use std::time::Duration;

use soiree::{DeadLetterSelection, EventStore, Filter, Inspect, PROPERTY_EVENT_ID, Query};
use soiree_redis::RedisStore;
use soiree_test::inspect::{leases_are_listed, limit_slots_are_listed};
use support::{RedisServer, builder, raw};

const LIMIT: Duration = Duration::from_secs(30);

async fn store(server: &RedisServer) -> Arc<RedisStore> {
    Arc::new(builder(server, "inspector").build().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_shows_a_held_delivery_with_its_event() {
    let server = server_or_skip!();
    let store = store(&server).await;
    let delivery = tokio::time::timeout(
        LIMIT * 4,
        soiree_test::inspect::pending_shows_a_held_delivery(store.clone()),
    )
    .await
    .expect("the check ends in time");
    let event = delivery
        .event
        .expect("Redis reads the pending entry's event");
    assert_eq!(event.topic, "pending.held");
    assert_eq!(delivery.consumer, "inspector");
    // The pending id is the entry id in the events stream.
    let page = Inspect::events(&*store, &Query::oldest(10)).await.unwrap();
    assert!(page.items.iter().any(|record| record.id == delivery.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_names_the_server_and_group_without_credentials() {
    let server = server_or_skip!();
    let store = RedisStore::builder(&server.url())
        .group("auditors")
        .metrics_registry(soiree::MetricsRegistry::new())
        .build()
        .await
        .unwrap();
    let inspect: Arc<dyn Inspect> = Arc::new(store);
    let info = inspect.info();
    assert_eq!(info.kind, "redis");
    assert_eq!(
        info.location,
        format!("redis://127.0.0.1:{}/0", server.port())
    );
    assert_eq!(info.group.as_deref(), Some("auditors"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_stream_entries_and_malformed_ones_are_listed_lossily_and_dead_lettered() {
    let server = server_or_skip!();
    let store = store(&server).await;
    let inspect: Arc<dyn Inspect> = store.clone();
    let mut conn = raw(&server).await;
    let good = soiree::StoredEvent {
        topic: "raw.good".into(),
        payload: serde_json::json!(1),
        properties: [(PROPERTY_EVENT_ID.to_owned(), serde_json::json!("evt-good"))]
            .into_iter()
            .collect(),
    };
    store.save_event(&good).await.unwrap();
    let bad_id: String = redis::cmd("XADD")
        .arg(store.events_key())
        .arg("*")
        .arg("event")
        .arg("{not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    store.save_event(&good).await.unwrap();

    // The malformed entry is listed lossily (its raw text as the payload,
    // no topic), between the good ones.
    let events = inspect.events(&Query::oldest(10)).await.unwrap();
    assert_eq!(events.items.len(), 3, "{events:?}");
    assert_eq!(events.items[0].item, good);
    assert_eq!(events.items[2].item, good);
    assert_eq!(events.items[1].id, bad_id);
    assert_eq!(events.items[1].item.topic, "");
    assert_eq!(events.items[1].item.payload, serde_json::json!("{not json"));
    let first = inspect.events(&Query::oldest(2)).await.unwrap();
    assert_eq!(first.items.len(), 2, "the good event and the lossy one");
    assert_eq!(first.next.as_deref(), Some(bad_id.as_str()));
    let rest = inspect
        .events(&Query::oldest(10).after(bad_id.clone()))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.next, None);

    // Record ids are entry ids, and times their milliseconds.
    let ms: u64 = events.items[0]
        .id
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let at = events.items[0].at.unwrap();
    assert_eq!(
        at.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
        u128::from(ms)
    );

    // A bus moves the malformed entry to the dead letters, with its raw text.
    let bus = soiree::EventBus::builder()
        .shared_store(store.clone())
        .build()
        .unwrap();
    bus.on("raw.*", |_ctx| async { Ok(()) }).unwrap();
    bus.start().unwrap();
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .unwrap();
    let letters = inspect.dead_letters(&Query::oldest(10)).await.unwrap();
    assert_eq!(letters.items.len(), 1, "{letters:?}");
    let letter = &letters.items[0];
    assert!(letter.event.is_none());
    assert_eq!(letter.raw.as_deref(), Some("{not json"));
    assert!(letter.error.contains("parse error"), "{letter:?}");
    assert!(letter.at.is_some());
    assert_eq!(
        inspect.dead_letter(&letter.id).await.unwrap().as_ref(),
        Some(letter)
    );
    assert_eq!(inspect.dead_letter("not-an-id").await.unwrap(), None);
    // Malformed letters are never replayed: they stay.
    let all = DeadLetterSelection::Matching(Filter::default());
    assert_eq!(inspect.replay_dead_letters(&all).await.unwrap(), 0);
    assert_eq!(inspect.stats().await.unwrap().dead_letters, 1);
    // A topic filter does not select a letter without a topic; no filter does.
    let topical = DeadLetterSelection::Matching(Filter::default().topic("raw.*"));
    assert_eq!(inspect.purge_dead_letters(&topical).await.unwrap(), 0);
    assert_eq!(inspect.purge_dead_letters(&all).await.unwrap(), 1);
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_undelivered_events_and_keep_emitted_after_trimming() {
    let server = server_or_skip!();
    let store = store(&server).await;
    let inspect: Arc<dyn Inspect> = store.clone();
    let empty = inspect.stats().await.unwrap();
    assert_eq!((empty.events, empty.emitted, empty.backlog), (0, 0, 0));
    assert_eq!(empty.oldest_pending_age, None);
    assert_eq!(empty.consumers, 0, "nothing read yet");

    for n in 0..3 {
        let event = soiree::StoredEvent {
            topic: "queued.event".into(),
            payload: serde_json::json!(n),
            properties: Default::default(),
        };
        store.save_event(&event).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    let queued = inspect.stats().await.unwrap();
    assert_eq!((queued.events, queued.emitted), (3, 3), "{queued:?}");
    assert_eq!((queued.backlog, queued.in_flight), (3, 0), "{queued:?}");
    let age = queued.oldest_pending_age.expect("the first event waits");
    assert!(age >= Duration::from_millis(50), "{age:?}");

    // Trimming lowers what the stream holds, not what was ever added.
    let mut conn = raw(&server).await;
    let _: u64 = redis::cmd("XTRIM")
        .arg(store.events_key())
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let trimmed = inspect.stats().await.unwrap();
    assert_eq!((trimmed.events, trimmed.emitted), (0, 3), "{trimmed:?}");
    assert_eq!(trimmed.backlog, 0, "trimmed entries are not waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_ranges_and_cursors_combine() {
    let server = server_or_skip!();
    let store = store(&server).await;
    let inspect: Arc<dyn Inspect> = store.clone();
    let save = |n: u64| {
        let store = store.clone();
        async move {
            let event = soiree::StoredEvent {
                topic: "timed.event".into(),
                payload: serde_json::json!(n),
                properties: Default::default(),
            };
            store.save_event(&event).await.unwrap();
        }
    };
    for n in 0..4 {
        save(n).await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let start = std::time::SystemTime::now();
    tokio::time::sleep(Duration::from_millis(30)).await;
    for n in 4..8 {
        save(n).await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let end = std::time::SystemTime::now();
    tokio::time::sleep(Duration::from_millis(30)).await;
    for n in 8..10 {
        save(n).await;
    }
    let window = Filter::default().since(start).until(end);
    let payloads = |page: &soiree::Page<soiree::Record<soiree::StoredEvent>>| -> Vec<u64> {
        page.items
            .iter()
            .map(|record| record.item.payload.as_u64().unwrap())
            .collect()
    };
    let mut query = Query::oldest(3).filter(window.clone());
    let first = inspect.events(&query).await.unwrap();
    assert_eq!(payloads(&first), vec![4, 5, 6]);
    query.cursor = first.next.clone();
    let second = inspect.events(&query).await.unwrap();
    assert_eq!(payloads(&second), vec![7]);
    assert_eq!(second.next, None, "the range ends at `until`");
    let newest = inspect
        .events(&Query::newest(10).filter(window))
        .await
        .unwrap();
    assert_eq!(payloads(&newest), vec![7, 6, 5, 4]);
    // A cursor before the window starts at the window.
    let all = inspect.events(&Query::oldest(100)).await.unwrap();
    let before = all.items[1].id.clone();
    let after_cursor = inspect
        .events(
            &Query::oldest(100)
                .filter(Filter::default().since(start))
                .after(before),
        )
        .await
        .unwrap();
    assert_eq!(payloads(&after_cursor), (4..10).collect::<Vec<_>>());
}

/// A held lease, a released one and the slots taken are listed as the
/// store holds them (another prefix's are not); a freed or expired slot
/// is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_limit_slots_are_listed() {
    let server = server_or_skip!();
    let store = store(&server).await;
    let other = Arc::new(
        builder(&server, "other")
            .prefix("elsewhere")
            .build()
            .await
            .unwrap(),
    );
    // Another prefix's lease and slot, which the listings leave out.
    let ttl = Duration::from_secs(60);
    let other_leases = other.leases().expect("leases");
    other_leases
        .acquire("theirs", "host-z", ttl)
        .await
        .unwrap()
        .expect("free");
    assert!(
        other
            .limits()
            .expect("limits")
            .acquire_slot("theirs", 1, "run-z", ttl)
            .await
            .unwrap()
    );

    let leases = store.leases().expect("leases");
    leases_are_listed(leases, &*store, "hourly:digest*").await;
    let limits = store.limits().expect("limits");
    limit_slots_are_listed(limits, &*store).await;
}
