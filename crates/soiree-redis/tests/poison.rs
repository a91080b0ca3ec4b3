//! One poison item harms nobody else: a write that fails in a pipeline
//! fails alone, and an unreadable stream entry is dead-lettered alone with
//! its error (and its event id, when readable) while its neighbours are
//! delivered and the listings read past it.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use soiree::{
    Event, EventBus, EventQueue, EventStore, Inspect, MetricsRegistry, PROPERTY_EVENT_ID, Query,
    StoredEvent, StoredResult,
};
use support::{builder, raw};

const LIMIT: Duration = Duration::from_secs(30);

fn stored(id: &str) -> StoredEvent {
    let event = Event::new("job.run", id.to_owned());
    event.properties().set(PROPERTY_EVENT_ID, id);
    StoredEvent::from_event(&event).unwrap()
}

/// The key of an event's success records (see the README's *Keys*).
fn dedup_key(store: &soiree_redis::RedisStore, event_id: &str) -> String {
    format!("{{{}}}:done@6:soiree:{event_id}", store.prefix())
}

/// A bus on `store` whose listener `h` records the event ids it handles.
fn recording_bus(store: &soiree_redis::RedisStore) -> (EventBus, Arc<Mutex<HashSet<String>>>) {
    let bus = EventBus::builder()
        .store(store.clone())
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let handled = Arc::new(Mutex::new(HashSet::new()));
    let h = Arc::clone(&handled);
    bus.on_named("h", "**", move |ctx| {
        h.lock().unwrap().insert(ctx.event_id().unwrap_or_default());
        async { Ok(()) }
    })
    .unwrap();
    bus.start().unwrap();
    (bus, handled)
}

/// The value of the store series `name` (the only store of `registry`).
fn series(registry: &MetricsRegistry, name: &str) -> u64 {
    let metrics = registry.encode();
    let line = metrics
        .lines()
        .find(|line| line.starts_with(&format!("{name}{{")))
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Results before ack: the result of one delivery cannot be written (Redis
/// takes no writes while it is sent, so it is given up at its deadline),
/// those of the two others can. Acknowledging the three acknowledges the
/// two and fails naming one, counted; that one stays pending and comes
/// back, alone, after the claim timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_result_holds_back_its_own_delivery_only() {
    let server = server_or_skip!();
    let registry = MetricsRegistry::new();
    let store = builder(&server, "c1")
        .metrics_registry(registry.clone())
        .response_timeout(Duration::from_millis(500))
        .claim_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let conn = raw(&server).await;
    for id in ["ok-1", "lost", "ok-2"] {
        store.enqueue(&stored(id)).await.unwrap();
    }
    let dequeue = || async {
        tokio::time::timeout(LIMIT, store.dequeue(10, Duration::from_millis(200)))
            .await
            .expect("dequeued in time")
            .unwrap()
    };
    let mut deliveries = Vec::new();
    for _ in 0..20 {
        if deliveries.len() >= 3 {
            break;
        }
        deliveries.extend(dequeue().await);
    }
    assert_eq!(deliveries.len(), 3);
    let success = |id: &str| StoredResult::new("job.run", id, "h", 1, None);
    let pause = |arg: &'static str| {
        let mut conn = conn.clone();
        async move {
            let mut cmd = redis::cmd("CLIENT");
            match arg {
                "on" => cmd.arg("PAUSE").arg(60_000).arg("WRITE"),
                _ => cmd.arg("UNPAUSE"),
            };
            let () = cmd.query_async(&mut conn).await.unwrap();
        }
    };
    pause("on").await;
    store.save_handler_result(&success("lost")).await.unwrap();
    // Reading the results waits for the write before it: given up at its
    // deadline (the read itself may time out too).
    let _ = tokio::time::timeout(LIMIT, store.results(None, 10)).await;
    pause("off").await;
    for id in ["ok-1", "ok-2"] {
        store.save_handler_result(&success(id)).await.unwrap();
    }
    let receipts: Vec<String> = deliveries.iter().map(|d| d.receipt.clone()).collect();
    let acked = tokio::time::timeout(LIMIT, store.ack(&receipts))
        .await
        .expect("answered in time");
    assert!(
        matches!(acked, Err(soiree::Error::ResultsNotSaved { deliveries: 1 })),
        "{acked:?}"
    );
    assert_eq!(series(&registry, "soiree_store_acks_withheld_total"), 1);
    let mut again = Vec::new();
    for _ in 0..100 {
        again.extend(dequeue().await);
        if !again.is_empty() {
            break;
        }
    }
    let ids: Vec<&str> = again.iter().map(|d| d.event.id().unwrap()).collect();
    assert_eq!(ids, ["lost"], "only the held-back delivery comes back");
    assert_eq!(again[0].delivery_count, 2);
    store.save_handler_result(&success("lost")).await.unwrap();
    tokio::time::timeout(LIMIT, store.ack(&[again[0].receipt.clone()]))
        .await
        .expect("answered in time")
        .unwrap();
    assert_eq!(store.backlog().await.unwrap(), 0);
}

/// A success appended to a record that is not a string (the way of a
/// success of an event the store does not hold) is refused for good: its
/// neighbours' records are written, and every delivery is acknowledged.
/// A success of a held event replaces whatever the record held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_write_that_fails_fails_alone() {
    let server = server_or_skip!();
    let registry = MetricsRegistry::new();
    let store = builder(&server, "c1")
        .metrics_registry(registry.clone())
        .build()
        .await
        .unwrap();
    let mut conn = raw(&server).await;
    // The success records of evt-2 and evt-4 cannot be appended to: their
    // keys hold sets.
    for id in ["evt-2", "evt-4"] {
        let _: () = redis::cmd("SADD")
            .arg(dedup_key(&store, id))
            .arg("not a string")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for id in ["evt-1", "evt-2", "evt-3", "evt-4"] {
        store.enqueue(&stored(id)).await.unwrap();
    }
    let success = |id: &str| StoredResult::new("job.run", id, "h", 1, None);
    for id in ["evt-1", "evt-2", "evt-3"] {
        store.save_handler_result(&success(id)).await.unwrap();
    }
    let mut deliveries = Vec::new();
    for _ in 0..20 {
        if deliveries.len() >= 4 {
            break;
        }
        deliveries.extend(
            tokio::time::timeout(LIMIT, store.dequeue(10, Duration::from_millis(200)))
                .await
                .expect("dequeued in time")
                .unwrap(),
        );
    }
    assert_eq!(deliveries.len(), 4);
    // evt-4 is held: its success replaces the damaged record.
    store.save_handler_result(&success("evt-4")).await.unwrap();
    let receipts: Vec<String> = deliveries.iter().map(|d| d.receipt.clone()).collect();
    tokio::time::timeout(LIMIT, store.ack(&receipts))
        .await
        .expect("answered in time")
        .unwrap();
    for id in ["evt-1", "evt-3", "evt-4"] {
        let recorded: String = redis::cmd("GET")
            .arg(dedup_key(&store, id))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(recorded, "1:h", "the success record of {id} is written");
    }
    let poisoned: String = redis::cmd("TYPE")
        .arg(dedup_key(&store, "evt-2"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        poisoned, "set",
        "the append to the poison record was refused"
    );
    let results: u64 = redis::cmd("XLEN")
        .arg(store.results_key())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(results, 4, "every result is in the results stream");
    assert_eq!(store.backlog().await.unwrap(), 0, "all four acknowledged");
    // Refused for good: counted, and its delivery acknowledged all the same.
    assert_eq!(series(&registry, "soiree_store_results_refused_total"), 1);
    assert_eq!(series(&registry, "soiree_store_acks_withheld_total"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_entry_is_dead_lettered_alone_with_its_event_id() {
    let server = server_or_skip!();
    let store = builder(&server, "c1").build().await.unwrap();
    let mut conn = raw(&server).await;
    store.enqueue(&stored("good-1")).await.unwrap();
    let deep = format!(
        r#"{{"topic":"job.run","payload":{}{},"properties":{{"soiree.event_id":"evt-deep"}}}}"#,
        "[".repeat(1000),
        "]".repeat(1000)
    );
    let unreadable: [Vec<(&str, &str)>; 4] = [
        vec![("other", "no event field")],
        vec![("event", "{not json")],
        vec![("event", &deep)],
        vec![(
            "event",
            r#"{"topic":["no"],"payload":1,"properties":{"soiree.event_id":"evt-shape"}}"#,
        )],
    ];
    for fields in &unreadable {
        let _: String = redis::cmd("XADD")
            .arg(store.events_key())
            .arg("*")
            .arg(fields)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    store.enqueue(&stored("good-2")).await.unwrap();

    let (bus, handled) = recording_bus(&store);
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .expect("every entry is settled");
    let expected: HashSet<String> = ["good-1", "good-2"].map(str::to_owned).into();
    assert_eq!(
        *handled.lock().unwrap(),
        expected,
        "the neighbours are delivered"
    );

    let letters = store.dead_letters(None, 10).await.unwrap().items;
    assert_eq!(letters.len(), 4, "each unreadable entry alone: {letters:?}");
    assert!(
        letters.iter().all(|l| l.error.starts_with("parse error")),
        "{letters:?}"
    );
    let errors: HashSet<&str> = letters.iter().map(|l| l.error.as_str()).collect();
    assert_eq!(errors.len(), 4, "each with its own error: {errors:?}");
    assert!(
        letters[2].error.contains(r#""evt-deep""#),
        "{}",
        letters[2].error
    );
    assert!(
        letters[2].error.contains("recursion limit"),
        "{}",
        letters[2].error
    );
    assert!(
        letters[3].error.contains(r#""evt-shape""#),
        "{}",
        letters[3].error
    );
    assert_eq!(
        letters[2].raw.as_deref(),
        Some(deep.as_str()),
        "kept as it was"
    );

    // The listings read past them: the events page lists every entry with
    // an event field, the unreadable ones lossily (raw text, the id when
    // readable); the dead letters page shows them raw.
    let inspect: &dyn Inspect = &store;
    let events = tokio::time::timeout(LIMIT, inspect.events(&Query::oldest(10)))
        .await
        .unwrap()
        .expect("an unreadable entry does not fail the page");
    let ids: Vec<_> = events
        .items
        .iter()
        .map(|r| r.item.id().map(str::to_owned))
        .collect();
    assert_eq!(
        ids,
        [
            Some("good-1".to_owned()),
            None,
            Some("evt-deep".to_owned()),
            Some("evt-shape".to_owned()),
            Some("good-2".to_owned())
        ]
    );
    let raw = &events.items[2].item;
    assert_eq!(raw.topic, "", "no topic is made up");
    assert_eq!(raw.payload, serde_json::Value::String(deep.clone()));
    let dead = tokio::time::timeout(LIMIT, inspect.dead_letters(&Query::oldest(10)))
        .await
        .unwrap()
        .expect("unreadable letters do not fail the page");
    assert_eq!(dead.items.len(), 4);
    assert!(
        dead.items
            .iter()
            .all(|l| l.event.is_none() && l.raw.is_some())
    );
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}
