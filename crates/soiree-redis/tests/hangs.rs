//! A hung Redis (the server stopped with SIGSTOP: connections are accepted
//! and never answered) bounds every wait: an emit fails within its response
//! timeout naming the server, and `close` returns about one response
//! timeout after its listeners finished, leaving what it could not
//! acknowledge pending for another consumer.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use soiree::{Event, EventBus, EventQueue, PROPERTY_EVENT_ID, StoredEvent};
use support::{RedisServer, builder, eventually};

/// The stores' response timeout in these tests.
const RESPONSE: Duration = Duration::from_secs(1);
/// A bound for waits that must not depend on Redis.
const LIMIT: Duration = Duration::from_secs(30);

/// Resumes the server when the test ends, even when it fails.
struct Paused<'a>(&'a RedisServer);

impl<'a> Paused<'a> {
    fn pause(server: &'a RedisServer) -> Self {
        server.pause().expect("SIGSTOP redis-server");
        Self(server)
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        let _ = self.0.resume();
    }
}

fn event(id: &str) -> StoredEvent {
    let event = Event::new("job.run", id.to_owned());
    event.properties().set(PROPERTY_EVENT_ID, id);
    StoredEvent::from_event(&event).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emit_during_a_hang_fails_within_its_timeout_naming_the_server() {
    let server = server_or_skip!();
    let store = tokio::time::timeout(
        LIMIT,
        builder(&server, "c1").response_timeout(RESPONSE).build(),
    )
    .await
    .unwrap()
    .unwrap();
    let bus = EventBus::builder()
        .store(store.clone())
        .consume(false)
        .build()
        .unwrap();
    let emit = |id: usize| {
        let emission = bus.emit("job.run", id).collect::<Vec<_>>();
        // Generous: the documented bound is one response timeout.
        async move {
            let started = tokio::time::Instant::now();
            let errors = tokio::time::timeout(3 * RESPONSE, emission)
                .await
                .expect("an emit during a hang ends within about its response timeout");
            (errors, started.elapsed())
        }
    };
    assert!(emit(0).await.0.is_empty(), "stored before the hang");

    let paused = Paused::pause(&server);
    // Several at once: emits queued behind a hung pipeline are bounded too.
    let outcomes = futures::future::join_all((1..=20).map(emit)).await;
    let address = format!("127.0.0.1:{}", server.port());
    let slowest = outcomes.iter().map(|(_, took)| *took).max();
    println!(
        "emits during a hang failed after at most {slowest:?} (response timeout {RESPONSE:?})"
    );
    for (errors, _) in &outcomes {
        match errors.as_slice() {
            [soiree::Error::Store(err)] => {
                let message = err.to_string();
                assert!(message.contains(&address), "{message}");
                assert!(message.contains("did not answer"), "{message}");
            }
            other => panic!("an emit during a hang fails with a store error: {other:?}"),
        }
    }
    drop(paused);
    let recovered = eventually(LIMIT, || async { emit(21).await.0.is_empty() }).await;
    assert!(recovered, "emits succeed again once redis resumes");
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_during_a_hang_returns_and_the_unacknowledged_events_are_delivered_later() {
    let server = server_or_skip!();
    let first = tokio::time::timeout(
        LIMIT,
        builder(&server, "c1").response_timeout(RESPONSE).build(),
    )
    .await
    .unwrap()
    .unwrap();
    let ids: Vec<String> = (0..10).map(|i| format!("evt-{i}")).collect();
    for id in &ids {
        tokio::time::timeout(LIMIT, first.enqueue(&event(id)))
            .await
            .unwrap()
            .unwrap();
    }
    // One worker: the consumer reads all ten ahead, dispatches one, and
    // holds the rest pending under its name.
    let bus = EventBus::builder()
        .store(first.clone())
        .workers(1)
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handled_first = Arc::new(Mutex::new(HashSet::new()));
    let (g, h) = (Arc::clone(&gate), Arc::clone(&handled_first));
    bus.on_named("h", "job.run", move |ctx| {
        h.lock().unwrap().insert(ctx.event_id().unwrap());
        let gate = Arc::clone(&g);
        async move {
            let _ = tokio::time::timeout(LIMIT, gate.acquire()).await;
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();
    let started = eventually(LIMIT, || async {
        !handled_first.lock().unwrap().is_empty()
    })
    .await;
    assert!(started, "the first delivery runs");

    let paused = Paused::pause(&server);
    let closing = bus.clone();
    let close = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let closed = closing.close().await;
        (closed, started.elapsed())
    });
    // The gate opens once the consumer stopped taking deliveries (the bus
    // is closed before `close` first waits), so no other delivery runs.
    let closed = eventually(LIMIT, || async { bus.is_closed() }).await;
    assert!(closed);
    gate.add_permits(1);
    // Generous: the documented bound is the listeners' time (none left)
    // plus one response timeout.
    let (closed, took) = tokio::time::timeout(3 * RESPONSE, close)
        .await
        .expect("close returns within about one response timeout of a hung redis")
        .unwrap();
    closed.unwrap();
    println!("close with redis hung took {took:?} (response timeout {RESPONSE:?})");
    drop(bus);
    drop(first);
    drop(paused);

    // Another consumer takes over what was left pending once redis is back.
    let second = tokio::time::timeout(
        LIMIT,
        builder(&server, "c2")
            .claim_timeout(Duration::from_millis(200))
            .build(),
    )
    .await
    .unwrap()
    .unwrap();
    let bus = EventBus::builder()
        .store(second.clone())
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let handled_second = Arc::new(Mutex::new(HashSet::new()));
    let h = Arc::clone(&handled_second);
    bus.on_named("h", "job.run", move |ctx| {
        h.lock().unwrap().insert(ctx.event_id().unwrap());
        async { Ok(()) }
    })
    .unwrap();
    bus.start().unwrap();
    let ran_first = handled_first.lock().unwrap().clone();
    let not_run: HashSet<String> = ids
        .iter()
        .filter(|id| !ran_first.contains(*id))
        .cloned()
        .collect();
    assert_eq!(
        not_run.len(),
        9,
        "one delivery ran before the close: {ran_first:?}"
    );
    let delivered = eventually(LIMIT, || async {
        handled_second.lock().unwrap().is_superset(&not_run)
            && matches!(
                tokio::time::timeout(LIMIT, second.backlog()).await,
                Ok(Ok(0))
            )
    })
    .await;
    assert!(
        delivered,
        "the events the first bus did not run are delivered to the second: {:?}",
        handled_second.lock().unwrap()
    );
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}
