//! RedisStore as a bus's queue: enqueue, consume, results, dedup, recovery,
//! dead letters, close — each test against its own redis-server.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use soiree::{
    DeferredDelivery, Event, EventBus, EventQueue, EventStore, MetricsRegistry, PROPERTY_EVENT_ID,
    StoredEvent, StoredResult,
};
use soiree_redis::RedisStore;
use support::{builder, eventually, raw};

const LIMIT: Duration = Duration::from_secs(20);

fn stored(topic: &str, id: &str) -> StoredEvent {
    let event = Event::new(topic, serde_json::json!({ "id": id }));
    event.properties().set(PROPERTY_EVENT_ID, id);
    StoredEvent::from_event(&event).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitted_events_are_stored_consumed_and_acknowledged() {
    let server = server_or_skip!();
    let registry = MetricsRegistry::new();
    let store = RedisStore::builder(&server.url())
        .prefix("e2e")
        .metrics_registry(registry.clone())
        .build()
        .await
        .unwrap();
    let bus = EventBus::builder().store(store.clone()).build().unwrap();
    let seen = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let s = Arc::clone(&seen);
    bus.on_named("count", "user.created", move |ctx| {
        let s = Arc::clone(&s);
        async move {
            let n: u64 = ctx.payload_as::<serde_json::Value>().map_or_else(
                || serde_json::from_value(ctx.payload().to_json().unwrap()).unwrap(),
                |v| v.as_u64().unwrap(),
            );
            assert!(n < 100);
            *s.lock()
                .unwrap()
                .entry(ctx.event_id().unwrap())
                .or_default() += 1;
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();
    for i in 0..100u64 {
        let errors: Vec<_> = tokio::time::timeout(LIMIT, bus.emit("user.created", i).collect())
            .await
            .expect("the emission ends in time");
        assert!(errors.is_empty(), "emit {i}: {errors:?}");
    }
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .expect("wait_for_idle returns");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 100, "every event handled");
        assert!(seen.values().all(|&n| n == 1), "each once: {seen:?}");
    }
    assert_eq!(store.backlog().await.unwrap(), 0);
    assert!(store.pending(None, 10).await.unwrap().items.is_empty());

    // The stream holds the Go package's envelope: {topic, payload, properties}.
    let mut conn = raw(&server).await;
    let first: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg("{e2e}:events")
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&first[0].1["event"]).unwrap();
    assert_eq!(json["topic"], "user.created");
    assert_eq!(json["payload"], 0);
    assert!(json["properties"][PROPERTY_EVENT_ID].is_string());

    // History pages cover every event and result.
    let mut events = 0;
    let mut cursor = None;
    loop {
        let page = store.events(cursor.as_deref(), 30).await.unwrap();
        events += page.items.len();
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(events, 100);
    let results = store.results(None, 1000).await.unwrap();
    assert_eq!(results.items.len(), 100);
    assert!(
        results
            .items
            .iter()
            .all(|r| r.succeeded() && r.handler_id == "count")
    );

    let metrics = registry.encode();
    for line in [
        r#"soiree_store_events_persisted_total{backend="redis",store="{e2e}:events",group="soiree"} 100"#,
        r#"soiree_store_events_dequeued_total{backend="redis",store="{e2e}:events",group="soiree"} 100"#,
        r#"soiree_store_results_persisted_total{backend="redis",store="{e2e}:events",group="soiree"} 100"#,
        r#"soiree_store_queue_length{backend="redis",store="{e2e}:events",group="soiree"} 0"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_emit_yields_a_store_error() {
    let mut server = server_or_skip!();
    let store = builder(&server, "c1").build().await.unwrap();
    let bus = EventBus::builder()
        .store(store)
        .consume(false)
        .build()
        .unwrap();
    server.kill();
    let errors: Vec<_> = tokio::time::timeout(LIMIT, bus.emit("user.created", 1).collect())
        .await
        .unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(matches!(errors[0], soiree::Error::Store(_)), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_recorded_and_succeeded_listeners_skipped_on_replay() {
    let server = server_or_skip!();
    let store = builder(&server, "c1").build().await.unwrap();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let f = Arc::clone(&failures);
    let bus = EventBus::builder()
        .store(store.clone())
        .error_handler(move |_event, err| {
            f.lock().unwrap().push(err.to_string());
            None
        })
        .build()
        .unwrap();
    let (ok_runs, bad_runs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let ok = Arc::clone(&ok_runs);
    bus.on_named("ok", "order.paid", move |_ctx| {
        ok.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    })
    .unwrap();
    let bad = Arc::clone(&bad_runs);
    bus.on_named("bad", "order.paid", move |_ctx| {
        bad.fetch_add(1, Ordering::SeqCst);
        async { Err("card declined".into()) }
    })
    .unwrap();
    bus.start().unwrap();
    let event = Event::new("order.paid", 42);
    event.properties().set(PROPERTY_EVENT_ID, "evt-1");
    let errors: Vec<_> = tokio::time::timeout(LIMIT, bus.emit("order.paid", event).collect())
        .await
        .expect("the emission ends in time");
    assert!(
        errors.is_empty(),
        "the emission ends once stored: {errors:?}"
    );
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .unwrap();
    assert_eq!(
        (
            ok_runs.load(Ordering::SeqCst),
            bad_runs.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
    assert_eq!(failures.lock().unwrap().len(), 1);
    assert!(failures.lock().unwrap()[0].contains("card declined"));

    let dedup = store.dedup().unwrap();
    assert!(dedup.handler_succeeded("evt-1", "ok").await.unwrap());
    assert!(!dedup.handler_succeeded("evt-1", "bad").await.unwrap());
    assert!(!dedup.handler_succeeded("evt-2", "ok").await.unwrap());

    store.replay("evt-1").await.unwrap();
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .unwrap();
    assert_eq!(
        ok_runs.load(Ordering::SeqCst),
        1,
        "succeeded listener skipped on replay"
    );
    assert_eq!(
        bad_runs.load(Ordering::SeqCst),
        2,
        "failed listener runs again"
    );

    let results = store.results(None, 100).await.unwrap().items;
    let expected = [
        StoredResult::new("order.paid", "evt-1", "ok", 1, None),
        StoredResult::new(
            "order.paid",
            "evt-1",
            "bad",
            1,
            Some("card declined".into()),
        ),
        StoredResult::new(
            "order.paid",
            "evt-1",
            "bad",
            1,
            Some("card declined".into()),
        ),
    ];
    assert_eq!(results, expected);
    assert!(matches!(
        store.replay("nope").await,
        Err(soiree_redis::Error::NotFound(_))
    ));
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .expect("close returns in time")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_a_dead_consumer_are_claimed_counted_and_dead_lettered() {
    let server = server_or_skip!();
    let claim = Duration::from_millis(150);
    let registry = MetricsRegistry::new();
    let make = |name: &str| {
        builder(&server, name)
            .claim_timeout(claim)
            .max_deliveries(3)
            .metrics_registry(registry.clone())
            .build()
    };
    let (a, b) = (make("a").await.unwrap(), make("b").await.unwrap());
    a.enqueue(&stored("job.run", "evt-9")).await.unwrap();
    a.save_handler_result(&StoredResult::new(
        "job.run",
        "evt-9",
        "h",
        1,
        Some("boom".into()),
    ))
    .await
    .unwrap();

    let first = a.dequeue(10, Duration::from_millis(100)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].delivery_count, 1);
    // `a` dies without acknowledging; `b` claims after the claim timeout.
    let mut counts = vec![1];
    let mut consumers = [&b, &a].into_iter().cycle();
    for _ in 0..20 {
        tokio::time::sleep(claim + Duration::from_millis(50)).await;
        let consumer = consumers.next().unwrap();
        let got = consumer
            .dequeue(10, Duration::from_millis(50))
            .await
            .unwrap();
        if let Some(delivery) = got.first() {
            assert_eq!(delivery.receipt, first[0].receipt);
            assert_eq!(delivery.event.id(), Some("evt-9"));
            counts.push(delivery.delivery_count);
        } else if !a.dead_letters(None, 10).await.unwrap().items.is_empty() {
            break;
        }
    }
    assert_eq!(
        counts,
        vec![1, 2, 3],
        "delivery count tracked across consumers"
    );
    let letters = a.dead_letters(None, 10).await.unwrap().items;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].entry_id, first[0].receipt);
    assert_eq!(letters[0].deliveries, 4);
    assert!(
        letters[0].error.contains("boom"),
        "last error kept: {}",
        letters[0].error
    );
    assert_eq!(
        letters[0].event.as_ref().and_then(|e| e.id()),
        Some("evt-9")
    );
    assert!(
        a.pending(None, 10).await.unwrap().items.is_empty(),
        "acknowledged after the copy"
    );
    assert_eq!(a.backlog().await.unwrap(), 0);
    let metrics = registry.encode();
    for line in [
        r#"soiree_store_redeliveries_total{backend="redis",store="{soiree}:events",group="soiree"} 2"#,
        r#"soiree_store_dead_lettered_total{backend="redis",store="{soiree}:events",group="soiree"} 1"#,
        r#"soiree_store_events_dequeued_total{backend="redis",store="{soiree}:events",group="soiree"} 3"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }

    // Replaying the dead letter enqueues the event again with its id.
    assert_eq!(
        a.replay_dead_letters(|l| l.error.contains("boom"))
            .await
            .unwrap(),
        1
    );
    assert!(a.dead_letters(None, 10).await.unwrap().items.is_empty());
    let again = b.dequeue(10, Duration::from_millis(500)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event.id(), Some("evt-9"));
    assert_eq!(again[0].delivery_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_finishes_what_a_crashed_consumer_left() {
    let server = server_or_skip!();
    let claim = Duration::from_millis(200);
    let dead = builder(&server, "dead")
        .claim_timeout(claim)
        .build()
        .await
        .unwrap();
    for i in 0..5 {
        dead.enqueue(&stored("job.run", &format!("evt-{i}")))
            .await
            .unwrap();
    }
    assert_eq!(
        dead.dequeue(3, Duration::from_millis(100))
            .await
            .unwrap()
            .len(),
        3
    );
    drop(dead);

    let store = builder(&server, "live")
        .claim_timeout(claim)
        .build()
        .await
        .unwrap();
    let bus = EventBus::builder().store(store.clone()).build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    bus.on_named("h", "job.run", move |ctx| {
        s.lock().unwrap().push(ctx.event_id().unwrap());
        async { Ok(()) }
    })
    .unwrap();
    bus.start().unwrap();
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, (0..5).map(|i| format!("evt-{i}")).collect::<Vec<_>>());
    assert_eq!(store.backlog().await.unwrap(), 0);
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .expect("close returns in time")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_first_rereads_its_own_pending_entries() {
    let server = server_or_skip!();
    // A long claim timeout: only the re-read at start can deliver these.
    let make = || {
        builder(&server, "same")
            .claim_timeout(Duration::from_secs(600))
            .build()
    };
    let before = make().await.unwrap();
    before.enqueue(&stored("job.run", "evt-1")).await.unwrap();
    assert_eq!(
        before
            .dequeue(10, Duration::from_millis(100))
            .await
            .unwrap()
            .len(),
        1
    );
    drop(before);
    let after = make().await.unwrap();
    let again = after.dequeue(10, Duration::from_millis(100)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event.id(), Some("evt-1"));
    assert_eq!(again[0].delivery_count, 2);
    after.ack(&[again[0].receipt.clone()]).await.unwrap();
    assert_eq!(after.backlog().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_entries_are_dead_lettered_and_the_consumer_carries_on() {
    let server = server_or_skip!();
    let store = builder(&server, "c1").build().await.unwrap();
    let mut conn = raw(&server).await;
    for fields in [
        vec![("event", "not json")],
        vec![("other", "x")],
        vec![("event", r#"{"payload": 1}"#)],
    ] {
        let _: String = redis::cmd("XADD")
            .arg("{soiree}:events")
            .arg("*")
            .arg(&fields)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    store
        .enqueue(&stored("user.created", "good"))
        .await
        .unwrap();
    let bus = EventBus::builder().store(store.clone()).build().unwrap();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&handled);
    bus.on("**", move |ctx| {
        h.lock().unwrap().push(ctx.event_id());
        async { Ok(()) }
    })
    .unwrap();
    bus.start().unwrap();
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .unwrap();
    assert_eq!(*handled.lock().unwrap(), vec![Some("good".to_owned())]);
    let letters = store.dead_letters(None, 10).await.unwrap().items;
    assert_eq!(letters.len(), 3);
    assert!(
        letters.iter().all(|l| l.error.starts_with("parse error")),
        "{letters:?}"
    );
    assert_eq!(letters[0].raw.as_deref(), Some("not json"));
    assert!(letters[1].raw.as_deref().unwrap().contains("other"));
    assert!(letters.iter().all(|l| l.event.is_none()));
    assert_eq!(store.backlog().await.unwrap(), 0);
    // The history shows the malformed entries that hold an event field
    // lossily (they carry no readable id here) instead of failing on them;
    // the entry with no event field is no event at all.
    let history: Vec<_> = store
        .events(None, 10)
        .await
        .expect("history reads past malformed entries")
        .items
        .into_iter()
        .map(|event| event.id().map(str::to_owned))
        .collect();
    assert_eq!(history, [None, None, Some("good".to_owned())]);
    // Malformed letters cannot be replayed; they stay.
    assert_eq!(store.replay_dead_letters(|_| true).await.unwrap(), 0);
    assert_eq!(store.dead_letters(None, 10).await.unwrap().items.len(), 3);
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .expect("close returns in time")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_is_bounded_and_leaves_the_rest_for_other_consumers() {
    let server = server_or_skip!();
    let producer = EventBus::builder()
        .store(builder(&server, "producer").build().await.unwrap())
        .consume(false)
        .build()
        .unwrap();
    for i in 0..20 {
        let errors: Vec<_> = tokio::time::timeout(LIMIT, producer.emit("job.run", i).collect())
            .await
            .expect("the emission ends in time");
        assert!(errors.is_empty());
    }
    let handled = Arc::new(Mutex::new(Vec::new()));
    let slow_store = builder(&server, "slow").build().await.unwrap();
    // A long poll: close must not wait for the blocked read.
    let slow = EventBus::builder()
        .store(slow_store.clone())
        .workers(2)
        .poll_wait(Duration::from_secs(30))
        .build()
        .unwrap();
    let h = Arc::clone(&handled);
    slow.on_named("h", "job.run", move |ctx| {
        let h = Arc::clone(&h);
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            h.lock().unwrap().push(ctx.event_id().unwrap());
            Ok(())
        }
    })
    .unwrap();
    slow.start().unwrap();
    assert!(eventually(LIMIT, || async { !handled.lock().unwrap().is_empty() }).await);
    tokio::time::timeout(LIMIT, slow.close())
        .await
        .expect("close is bounded")
        .unwrap();
    let after_close = handled.lock().unwrap().len();
    let backlog = slow_store.backlog().await.unwrap();
    assert!(after_close < 20, "stopped early: {after_close}");
    assert_eq!(after_close as u64 + backlog, 20, "nothing lost at close");

    // Another consumer takes over the rest.
    let next_store = builder(&server, "next")
        .claim_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let next = EventBus::builder()
        .store(next_store.clone())
        .build()
        .unwrap();
    let h = Arc::clone(&handled);
    next.on_named("h", "job.run", move |ctx| {
        h.lock().unwrap().push(ctx.event_id().unwrap());
        async { Ok(()) }
    })
    .unwrap();
    next.start().unwrap();
    tokio::time::timeout(LIMIT, next.wait_for_idle())
        .await
        .unwrap();
    let mut ids = handled.lock().unwrap().clone();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "every event handled");
    assert_eq!(next_store.backlog().await.unwrap(), 0);
    tokio::time::timeout(LIMIT, next.close())
        .await
        .expect("close returns in time")
        .unwrap();
}

/// The issue's reproduction: purging `tenant-1` deleted `tenant-10events`,
/// `tenant-1:events` and `tenant-1-billing`. Now it deletes exactly the keys
/// the `tenant-1` store wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_only_the_stores_own_keys() {
    let server = server_or_skip!();
    let mut stores = Vec::new();
    for prefix in ["tenant-1", "tenant-10", "tenant-1-billing", "tenant-1:x"] {
        let store = builder(&server, "c1").prefix(prefix).build().await.unwrap();
        store.enqueue(&stored("job.run", "evt-1")).await.unwrap();
        for error in [None, Some("boom".to_owned())] {
            store
                .save_handler_result(&StoredResult::new("job.run", "evt-1", "h", 1, error))
                .await
                .unwrap();
        }
        stores.push(store);
    }
    // Dead letters too (`{p}:dead`), through the store's own path.
    let got = stores[0]
        .dequeue(1, Duration::from_millis(200))
        .await
        .unwrap();
    stores[0]
        .fail(&[soiree::FailedDelivery {
            receipt: got[0].receipt.clone(),
            error: "boom".into(),
        }])
        .await
        .unwrap();
    let mut conn = raw(&server).await;
    // Keys of the old layout and of other applications, including one
    // inside the `{tenant-1}:` namespace that the store never writes.
    let foreign = [
        "tenant-10events",
        "tenant-1:events",
        "tenant-1-billing",
        "tenant-1events",
        "{tenant-1}x",
        "{tenant-1}:other",
        "other",
    ];
    for key in foreign {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("x")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let all = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        async move {
            let mut keys: Vec<String> = redis::cmd("KEYS")
                .arg("*")
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.sort();
            keys
        }
    };
    let before = all(&mut conn).await;
    let own = [
        "{tenant-1}:dead",
        "{tenant-1}:dedup-legacy@6:soiree",
        "{tenant-1}:done@6:soiree:evt-1",
        "{tenant-1}:error:evt-1",
        "{tenant-1}:events",
        "{tenant-1}:results",
    ];
    for key in own {
        assert!(before.contains(&key.to_owned()), "{key} in {before:?}");
    }
    assert_eq!(stores[0].purge().await.unwrap(), own.len() as u64);
    let after = all(&mut conn).await;
    let expected: Vec<String> = before
        .iter()
        .filter(|key| !own.contains(&key.as_str()))
        .cloned()
        .collect();
    assert_eq!(after, expected, "only the store's own keys are gone");
    for key in foreign {
        assert!(after.contains(&key.to_owned()), "{key} kept");
    }
    // The neighbours still work.
    for store in &stores[1..] {
        assert_eq!(store.events(None, 10).await.unwrap().items.len(), 1);
        assert!(
            store
                .dedup()
                .unwrap()
                .handler_succeeded("evt-1", "h")
                .await
                .unwrap()
        );
    }
    assert_eq!(stores[0].purge().await.unwrap(), 0, "nothing left to purge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_prefixes_are_rejected_at_build() {
    let server = server_or_skip!();
    for prefix in ["", "a{b", "a}b", "t*", "a b", "shop:", "tenant\\1"] {
        let built = builder(&server, "c1").prefix(prefix).build().await;
        assert!(
            matches!(built, Err(soiree_redis::Error::InvalidConfig(_))),
            "{prefix:?}: {built:?}"
        );
    }
    let mut conn = raw(&server).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.is_empty(), "nothing written: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttls_drop_old_events_and_results() {
    let server = server_or_skip!();
    // Long enough that the new event outlives a few maintenance rounds (one
    // a second) even on a loaded host.
    let ttl = Duration::from_secs(4);
    let store = builder(&server, "c1")
        .events_ttl(Some(ttl))
        .results_ttl(Some(ttl))
        .build()
        .await
        .unwrap();
    for id in ["old-1", "old-2"] {
        store.enqueue(&stored("job.run", id)).await.unwrap();
        store
            .save_handler_result(&StoredResult::new("job.run", id, "h", 1, None))
            .await
            .unwrap();
    }
    tokio::time::sleep(ttl + Duration::from_millis(500)).await;
    store.enqueue(&stored("job.run", "new")).await.unwrap();
    // Housekeeping runs on the store's maintenance task, once a second:
    // the old entries go within a round or two, the new one (younger than
    // the ttl for a few rounds more) stays.
    let trimmed = eventually(LIMIT, || async {
        let ids: Vec<_> = store
            .events(None, 10)
            .await
            .unwrap()
            .items
            .iter()
            .map(|e| e.id().unwrap().to_owned())
            .collect();
        ids == ["new"] && store.results(None, 10).await.unwrap().items.is_empty()
    })
    .await;
    assert!(trimmed, "events and results older than the ttl are trimmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_trimmed_before_delivery_do_not_hold_the_backlog_forever() {
    let server = server_or_skip!();
    let store = builder(&server, "c1").build().await.unwrap();
    // One event delivered and acknowledged, so the group has a position.
    store.enqueue(&stored("job.run", "first")).await.unwrap();
    let first = store.dequeue(1, Duration::from_millis(200)).await.unwrap();
    store.ack(&[first[0].receipt.clone()]).await.unwrap();
    // Three more appended, then trimmed away before any delivery.
    for id in ["lost-1", "lost-2", "lost-3"] {
        store.enqueue(&stored("job.run", id)).await.unwrap();
    }
    let mut conn = raw(&server).await;
    let trimmed: u64 = redis::cmd("XTRIM")
        .arg("{soiree}:events")
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(trimmed, 4);
    // Redis still reports a lag of 3; nothing is left to deliver, so the
    // backlog is empty rather than stuck at 3.
    assert_eq!(store.backlog().await.unwrap(), 0);
    let bus = EventBus::builder()
        .shared_store(Arc::new(store))
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    bus.on("job.run", |_ctx| async { Ok(()) }).unwrap();
    bus.start().unwrap();
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .expect("wait_for_idle returns");
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .expect("close returns")
        .unwrap();
}

/// A deferred delivery (a snooze kept by the store) outlives its consumer:
/// another consumer of the group gets it once due, not before (though
/// deferred for longer than the claim timeout), with the delivery count
/// it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_delivery_outlives_its_consumer_and_keeps_its_count() {
    let server = server_or_skip!();
    let claim = Duration::from_millis(500);
    let first = builder(&server, "first")
        .prefix("deferred")
        .claim_timeout(claim)
        .build()
        .await
        .unwrap();
    let event = Event::new("report.build", 1);
    event.properties().set(PROPERTY_EVENT_ID, "deferred-1");
    let event = StoredEvent::from_event(&event).unwrap();
    first.enqueue(&event).await.unwrap();
    let taken = tokio::time::timeout(LIMIT, first.dequeue(1, LIMIT))
        .await
        .unwrap()
        .unwrap()
        .remove(0);
    let until = std::time::SystemTime::now() + 4 * claim;
    let deferral = DeferredDelivery {
        receipt: taken.receipt.clone(),
        until,
        reason: "soiree.snoozed: re-run after 2s".into(),
    };
    tokio::time::timeout(LIMIT, first.defer(&[deferral]))
        .await
        .unwrap()
        .unwrap();
    drop(first);
    let second = builder(&server, "second")
        .prefix("deferred")
        .claim_timeout(claim)
        .build()
        .await
        .unwrap();
    assert_eq!(
        second.backlog().await.unwrap(),
        1,
        "a deferred entry left the backlog"
    );
    let deadline = tokio::time::Instant::now() + LIMIT;
    let again = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deferred delivery never came back"
        );
        let mut got = tokio::time::timeout(LIMIT, second.dequeue(1, Duration::from_millis(100)))
            .await
            .unwrap()
            .unwrap();
        if let Some(delivery) = got.pop() {
            break delivery;
        }
    };
    assert!(
        std::time::SystemTime::now() >= until,
        "the deferred delivery came back before its due time"
    );
    assert_eq!(again.event.id(), Some("deferred-1"));
    assert_eq!(
        again.delivery_count, taken.delivery_count,
        "deferring counted a delivery"
    );
    second.ack(&[again.receipt]).await.unwrap();
    assert_eq!(second.backlog().await.unwrap(), 0);
}
