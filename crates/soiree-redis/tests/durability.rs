//! Persistence first against a real Redis: appends never wait behind
//! listener jobs, `persisted()` answers while every worker is busy, and
//! `close` persists every detached emit.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::{EventBus, EventQueue};
use support::{builder, eventually};

const LIMIT: Duration = Duration::from_secs(30);

/// The reproduction: 2 workers, listeners taking 1 s, 20 detached
/// emits, then `close`: all 20 are in Redis (the ones not handled yet stay
/// queued for the next consumer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_persists_twenty_detached_emits_behind_slow_listeners() {
    let server = server_or_skip!();
    let store = builder(&server, "slow").build().await.unwrap();
    let bus = EventBus::builder()
        .store(store.clone())
        .workers(2)
        .poll_wait(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&started);
    bus.on_named("slow", "job.run", move |_ctx| {
        s.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();
    // Both workers busy with slow listeners first.
    bus.emit("job.run", "first").detach();
    bus.emit("job.run", "second").detach();
    assert!(eventually(LIMIT, || async { started.load(Ordering::SeqCst) == 2 }).await);
    for i in 0..20 {
        bus.emit("job.run", i).detach();
    }
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .expect("close is bounded")
        .unwrap();
    let stored = store.events(None, 100).await.unwrap().items.len();
    assert_eq!(stored, 22, "every accepted event is in Redis after close");
    assert!(
        started.load(Ordering::SeqCst) < 22,
        "the slow listeners cannot all have run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_answers_while_every_worker_is_busy() {
    let server = server_or_skip!();
    let store = builder(&server, "busy").build().await.unwrap();
    let bus = EventBus::builder()
        .store(store.clone())
        .workers(2)
        .poll_wait(Duration::from_millis(200))
        .build()
        .unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (g, s) = (Arc::clone(&gate), Arc::clone(&started));
    bus.on_named("gated", "job.run", move |_ctx| {
        s.fetch_add(1, Ordering::SeqCst);
        let gate = Arc::clone(&g);
        async move {
            gate.acquire().await.unwrap().forget();
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();
    bus.emit("job.run", "first").detach();
    bus.emit("job.run", "second").detach();
    // Both workers are now held by listeners.
    assert!(eventually(LIMIT, || async { started.load(Ordering::SeqCst) == 2 }).await);
    let mut emissions: Vec<_> = (0..30).map(|i| bus.emit("job.run", i)).collect();
    for emission in &mut emissions {
        let id = tokio::time::timeout(LIMIT, emission.persisted())
            .await
            .expect("persisting does not wait for a worker")
            .unwrap();
        assert!(!id.is_empty());
    }
    assert_eq!(store.events(None, 100).await.unwrap().items.len(), 32);
    assert!(store.backlog().await.unwrap() >= 30);
    gate.add_permits(1_000);
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .unwrap();
    assert_eq!(started.load(Ordering::SeqCst), 32);
    assert_eq!(store.backlog().await.unwrap(), 0);
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}
