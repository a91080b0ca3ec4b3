//! Consumers: a stable default name, a restart that handles its in-flight
//! entries at once, and read-ahead entries handed back at close without
//! counting a delivery.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use soiree::{Event, EventBus, EventQueue, PROPERTY_EVENT_ID, StoredEvent};
use soiree_redis::RedisStore;
use support::{RedisServer, eventually};

const LIMIT: Duration = Duration::from_secs(20);
/// Far longer than any test may take: only a re-read or a handback can
/// deliver an entry again within the test.
const CLAIM: Duration = Duration::from_secs(600);

fn stored(id: &str) -> StoredEvent {
    let event = Event::new("job.run", serde_json::json!({ "id": id }));
    event.properties().set(PROPERTY_EVENT_ID, id);
    StoredEvent::from_event(&event).unwrap()
}

async fn store_for(server: &RedisServer, instance: &str) -> RedisStore {
    tokio::time::timeout(
        LIMIT,
        RedisStore::builder(&server.url())
            .instance_id(instance)
            .claim_timeout(CLAIM)
            .metrics_registry(soiree::MetricsRegistry::new())
            .build(),
    )
    .await
    .expect("built in time")
    .unwrap()
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_consumer_name_is_stable_and_unique_per_live_store() {
    let server = server_or_skip!();
    let first = store_for(&server, "node-a").await;
    let name = first.consumer_name().to_owned();
    if !host().is_empty() {
        assert_eq!(name, format!("{}-node-a", host()));
    }
    // A second live store of the same prefix and group gets its own name…
    let second = store_for(&server, "node-a").await;
    assert_eq!(second.consumer_name(), format!("{name}-2"));
    // …and the name is free again once the first is dropped.
    drop(first);
    let again = store_for(&server, "node-a").await;
    assert_eq!(again.consumer_name(), name);
    drop((second, again));
    let other = store_for(&server, "node-b").await;
    assert!(other.consumer_name().ends_with("-node-b"));
    assert!(matches!(
        RedisStore::builder(&server.url())
            .instance_id("")
            .build()
            .await,
        Err(soiree_redis::Error::InvalidConfig(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_the_same_name_handles_in_flight_entries_at_once() {
    let server = server_or_skip!();
    let crashed = store_for(&server, "node-a").await;
    for i in 0..10 {
        crashed.enqueue(&stored(&format!("evt-{i}"))).await.unwrap();
    }
    // All ten taken (running, or read ahead by a bus), never acknowledged:
    // the process dies with them (kill -9 hands nothing back). The store
    // reads what it is asked for, no more: the bus sizes the reads.
    for taken in [5, 10] {
        let batch = tokio::time::timeout(LIMIT, crashed.dequeue(5, Duration::from_millis(100)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(batch.len(), 5);
        let pending = crashed.pending(None, 100).await.unwrap().items;
        assert_eq!(pending.len(), taken, "{pending:?}");
    }
    let name = crashed.consumer_name().to_owned();
    drop(crashed);

    let registry = soiree::MetricsRegistry::new();
    let restarted = tokio::time::timeout(
        LIMIT,
        RedisStore::builder(&server.url())
            .instance_id("node-a")
            .claim_timeout(CLAIM)
            .metrics_registry(registry.clone())
            .build(),
    )
    .await
    .expect("built in time")
    .unwrap();
    assert_eq!(
        restarted.consumer_name(),
        name,
        "the same name after a restart"
    );
    let bus = EventBus::builder()
        .store(restarted.clone())
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    bus.on_named("h", "job.run", move |ctx| {
        s.lock().unwrap().push(ctx.event_id().unwrap());
        async { Ok(()) }
    })
    .unwrap();
    bus.start().unwrap();
    // Bounded far below the claim timeout: only the re-read can do it.
    assert!(
        eventually(LIMIT, || async { seen.lock().unwrap().len() >= 10 }).await,
        "every entry handled long before the claim timeout: {:?}",
        seen.lock().unwrap()
    );
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let ids: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!((seen.len(), ids.len()), (10, 10), "each once: {seen:?}");
    // All ten pending under the name were re-read (a second delivery).
    let metrics = registry.encode();
    for line in [
        r#"soiree_store_redeliveries_total{backend="redis",store="{soiree}:events",group="soiree"} 10"#,
        r#"soiree_store_events_dequeued_total{backend="redis",store="{soiree}:events",group="soiree"} 10"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    assert_eq!(restarted.backlog().await.unwrap(), 0);
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}

/// The issue's reproduction: read-ahead entries released on close counted as
/// deliveries, so `max_deliveries(1)` dead-lettered events that never ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_entries_handed_back_at_close_do_not_count_as_deliveries() {
    let server = server_or_skip!();
    let make = |instance: &'static str| {
        let url = server.url();
        async move {
            tokio::time::timeout(
                LIMIT,
                RedisStore::builder(&url)
                    .instance_id(instance)
                    .claim_timeout(CLAIM)
                    .max_deliveries(1)
                    .metrics_registry(soiree::MetricsRegistry::new())
                    .build(),
            )
            .await
            .expect("built in time")
            .unwrap()
        }
    };
    let first = make("first").await;
    for i in 0..20 {
        first.enqueue(&stored(&format!("evt-{i}"))).await.unwrap();
    }
    let bus = EventBus::builder()
        .store(first.clone())
        .workers(1)
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&handled);
    bus.on_named("h", "job.run", move |ctx| {
        h.lock().unwrap().push(ctx.event_id().unwrap());
        // Slow enough that most entries wait in the read-ahead at close.
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();
    assert!(eventually(LIMIT, || async { !handled.lock().unwrap().is_empty() }).await);
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .expect("close in time")
        .unwrap();
    let after_close = handled.lock().unwrap().len();
    // What the first bus did not run is pending, uncounted and claimable now.
    let pending = first.pending(None, 100).await.unwrap().items;
    assert_eq!(pending.len() + after_close, 20, "{pending:?}");
    assert!(!pending.is_empty(), "entries were read ahead: {pending:?}");
    for entry in &pending {
        assert_eq!(entry.deliveries, 0, "{entry:?}");
        assert!(entry.idle >= CLAIM, "{entry:?}");
    }

    let second = make("second").await;
    let bus = EventBus::builder()
        .store(second.clone())
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let h = Arc::clone(&handled);
    bus.on_named("h", "job.run", move |ctx| {
        h.lock().unwrap().push(ctx.event_id().unwrap());
        async { Ok(()) }
    })
    .unwrap();
    bus.start().unwrap();
    assert!(
        eventually(LIMIT, || async { handled.lock().unwrap().len() >= 20 }).await,
        "claimed at once, not after the claim timeout"
    );
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .unwrap();
    let handled = handled.lock().unwrap().clone();
    let unique: HashSet<_> = handled.iter().collect();
    assert_eq!((handled.len(), unique.len()), (20, 20), "each once");
    assert!(
        second
            .dead_letters(None, 10)
            .await
            .unwrap()
            .items
            .is_empty(),
        "no event dead-lettered without running"
    );
    assert_eq!(second.backlog().await.unwrap(), 0);
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}

async fn consumer_names(server: &RedisServer) -> Vec<String> {
    let mut conn = support::raw(server).await;
    let info: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg("{soiree}:events")
        .arg("soiree")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut names: Vec<String> = info
        .iter()
        .map(|c| redis::from_redis_value(c["name"].clone()).unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_consumers_with_nothing_pending_are_removed() {
    let server = server_or_skip!();
    let store = tokio::time::timeout(
        LIMIT,
        support::builder(&server, "live")
            .remove_idle_consumers(Some(Duration::from_secs(1)))
            .build(),
    )
    .await
    .unwrap()
    .unwrap();
    store.enqueue(&stored("evt-1")).await.unwrap();
    let mut conn = support::raw(&server).await;
    // `ghost` has nothing pending; `holder` holds the entry.
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg("{soiree}:events")
        .arg("soiree")
        .arg("ghost")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("soiree")
        .arg("holder")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg("{soiree}:events")
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(consumer_names(&server).await, ["ghost", "holder"]);
    // Housekeeping runs on the store's maintenance task.
    let removed = eventually(LIMIT, || async {
        store.dequeue(1, Duration::from_millis(20)).await.unwrap();
        !consumer_names(&server).await.contains(&"ghost".to_owned())
    })
    .await;
    assert!(removed, "the idle consumer with nothing pending is removed");
    let names = consumer_names(&server).await;
    assert!(
        names.contains(&"holder".to_owned()),
        "pending entries keep it: {names:?}"
    );
    assert_eq!(store.pending(None, 10).await.unwrap().items.len(), 1);
}
