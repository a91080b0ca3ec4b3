//! Redis restarts under a running bus: emits fail loudly or succeed, and
//! the consumers reconnect, recreate the group and carry on.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use soiree::{Event, EventBus, EventQueue, PROPERTY_EVENT_ID};
use support::{builder, eventually};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_no_acknowledged_emit() {
    let mut server = server_or_skip!();
    let store = builder(&server, "c1").build().await.unwrap();
    let bus = EventBus::builder()
        .store(store.clone())
        .poll_wait(Duration::from_millis(200))
        .build()
        .unwrap();
    let handled = Arc::new(Mutex::new(HashSet::new()));
    let h = Arc::clone(&handled);
    bus.on_named("h", "job.run", move |ctx| {
        h.lock().unwrap().insert(ctx.event_id().unwrap());
        async { Ok(()) }
    })
    .unwrap();
    bus.start().unwrap();

    let emit = |id: String| {
        let event = Event::new("job.run", id.clone());
        event.properties().set(PROPERTY_EVENT_ID, id);
        let emission = bus.emit("job.run", event).collect::<Vec<_>>();
        async move {
            tokio::time::timeout(LIMIT, emission)
                .await
                .expect("an emit ends in time, stored or failed")
        }
    };
    let mut stored = HashSet::new();
    for i in 0..50 {
        let errors = emit(format!("before-{i}")).await;
        assert!(errors.is_empty(), "{errors:?}");
        stored.insert(format!("before-{i}"));
    }
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .unwrap();
    assert_eq!(*handled.lock().unwrap(), stored);

    // Redis goes away (and comes back empty: no persistence) mid-run.
    server.kill();
    let (mut failed, mut ok) = (0, 0);
    for i in 0..5 {
        let id = format!("down-{i}");
        let errors = emit(id.clone()).await;
        match errors.as_slice() {
            [] => {
                ok += 1;
                stored.insert(id);
            }
            [soiree::Error::Store(_)] => failed += 1,
            other => panic!("an emit must succeed or fail with a store error: {other:?}"),
        }
    }
    assert_eq!(failed, 5, "no server: every emit fails loudly");
    server.restart().unwrap();
    let mut after = 0;
    for i in 0..200 {
        let id = format!("after-{i}");
        match emit(id.clone()).await.as_slice() {
            [] => {
                after += 1;
                stored.insert(id);
            }
            [soiree::Error::Store(_)] => failed += 1,
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert!(after > 0, "emits succeed again after the restart");
    let everything_handled = eventually(LIMIT, || async {
        handled.lock().unwrap().is_superset(&stored)
    })
    .await;
    let handled_count = handled.lock().unwrap().len();
    println!(
        "redis restart: emitted ok={} (before=50 down={ok} after={after}) failed={failed} handled={handled_count}",
        stored.len()
    );
    assert!(
        everything_handled,
        "every stored event handled after the restart"
    );
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .unwrap();
    assert_eq!(store.backlog().await.unwrap(), 0);
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_group_is_recreated() {
    let server = server_or_skip!();
    let store = builder(&server, "c1").build().await.unwrap();
    let mut conn = support::raw(&server).await;
    let _: () = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg("{soiree}:events")
        .arg("soiree")
        .query_async(&mut conn)
        .await
        .unwrap();
    let event = soiree::StoredEvent::from_event(&Event::new("job.run", 1)).unwrap();
    store.enqueue(&event).await.unwrap();
    let got = store.dequeue(10, Duration::from_millis(200)).await.unwrap();
    assert_eq!(
        got.len(),
        1,
        "NOGROUP: the group is recreated and the entry read"
    );
    store.ack(&[got[0].receipt.clone()]).await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), 0);
}
