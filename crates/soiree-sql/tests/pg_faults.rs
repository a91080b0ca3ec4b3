//! Faults against a real PostgreSQL: the server restarted mid-run.

#![cfg(feature = "postgres")]

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use soiree::{EventBus, EventQueue};
use support::{eventually, pg_builder, within};

const LIMIT: Duration = Duration::from_secs(60);

/// Emits `n` events one at a time; returns how many were stored (their
/// emission yielded nothing) and how many failed loudly.
async fn emit(bus: &EventBus, from: u64, n: u64) -> (u64, u64) {
    let (mut stored, mut failed) = (0, 0);
    for i in from..from + n {
        let errors: Vec<soiree::Error> = within(
            LIMIT,
            "an emission",
            bus.emit("fault.job", json!({ "n": i })).collect(),
        )
        .await;
        if errors.is_empty() {
            stored += 1;
        } else {
            assert!(
                errors.iter().all(|e| matches!(e, soiree::Error::Store(_))),
                "{errors:?}"
            );
            failed += 1;
        }
    }
    (stored, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_fails_emits_loudly_and_loses_nothing() {
    let mut server = pg_or_skip!();
    let store = pg_builder(&server, "faults")
        .lease_timeout(Duration::from_secs(1))
        .acquire_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let bus = EventBus::builder()
        .store(store.clone())
        .poll_wait(Duration::from_millis(200))
        .build()
        .unwrap();
    let handled = Arc::new(Mutex::new(HashSet::new()));
    let recorder = Arc::clone(&handled);
    bus.on_named("record", "fault.job", move |ctx| {
        let recorder = Arc::clone(&recorder);
        async move {
            let payload: serde_json::Value = ctx.payload().decode()?;
            recorder
                .lock()
                .unwrap()
                .insert(payload["n"].as_u64().unwrap_or(u64::MAX));
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();

    let (before, failed_before) = emit(&bus, 0, 100).await;
    assert_eq!(failed_before, 0);
    tokio::task::block_in_place(|| server.kill());
    let (while_down, failed) = emit(&bus, 1000, 3).await;
    assert_eq!(
        while_down, 0,
        "an emit reported success while the database was down"
    );
    assert_eq!(failed, 3);
    tokio::task::block_in_place(|| server.restart()).expect("restart");
    let (after, failed_after) = emit(&bus, 2000, 100).await;
    // The pool may hand out a connection cut by the restart once.
    assert!(
        failed_after <= 2,
        "{failed_after} emits failed after the restart"
    );

    let stored = before + after;
    let all = eventually(LIMIT, || async {
        let seen = handled.lock().unwrap();
        (0..100)
            .chain(2000..2100)
            .filter(|n| seen.contains(n))
            .count() as u64
            >= stored
    })
    .await;
    let seen = handled.lock().unwrap().len();
    println!(
        "emitted={} stored={stored} failed_loudly={} handled={seen}",
        203,
        failed + failed_after
    );
    assert!(all, "only {seen} of {stored} stored events were handled");
    assert!(
        handled
            .lock()
            .unwrap()
            .iter()
            .all(|n| *n < 1000 || *n >= 2000),
        "an event whose emit failed was handled"
    );
    let drained = eventually(LIMIT, || async { store.backlog().await.ok() == Some(0) }).await;
    assert!(drained, "the backlog did not drain after the restart");
    within(LIMIT, "close", bus.close()).await.unwrap();
}
