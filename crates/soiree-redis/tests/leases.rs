//! Leases follow the handler: while a delivery's listeners run, its consumer
//! keeps the entry, so a long handler runs once; a hung handler is cut off by
//! the bus's listener timeout and the other events flow.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use soiree::{EventBus, EventQueue};
use support::{builder, eventually};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_longer_than_the_claim_timeout_runs_once() {
    let server = server_or_skip!();
    let claim = Duration::from_millis(600);
    let runs = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let mut buses = Vec::new();
    for consumer in ["a", "b"] {
        let store = builder(&server, consumer)
            .claim_timeout(claim)
            .build()
            .await
            .unwrap();
        let bus = EventBus::builder()
            .store(store)
            .workers(1)
            .poll_wait(Duration::from_millis(100))
            .build()
            .unwrap();
        let r = Arc::clone(&runs);
        bus.on_named("slow", "job.run", move |ctx| {
            *r.lock()
                .unwrap()
                .entry(ctx.event_id().unwrap())
                .or_default() += 1;
            async {
                // Over three claim timeouts.
                tokio::time::sleep(Duration::from_millis(2_000)).await;
                Ok(())
            }
        })
        .unwrap();
        bus.start().unwrap();
        buses.push(bus);
    }
    for i in 0..4 {
        let mut emission = buses[0].emit("job.run", i);
        tokio::time::timeout(LIMIT, emission.persisted())
            .await
            .unwrap()
            .unwrap();
    }
    let store = builder(&server, "checker").build().await.unwrap();
    assert!(
        eventually(LIMIT, || async {
            runs.lock().unwrap().len() == 4 && store.backlog().await.unwrap() == 0
        })
        .await,
        "every event handled: {:?}",
        runs.lock().unwrap()
    );
    for bus in &buses {
        tokio::time::timeout(LIMIT, bus.close())
            .await
            .unwrap()
            .unwrap();
    }
    let runs = runs.lock().unwrap();
    assert!(
        runs.values().all(|&n| n == 1),
        "a running handler's entry is never claimed by the other consumer: {runs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_handler_is_timed_out_and_the_others_flow() {
    let server = server_or_skip!();
    let store = builder(&server, "hung")
        .claim_timeout(Duration::from_millis(600))
        .build()
        .await
        .unwrap();
    let bus = EventBus::builder()
        .store(store.clone())
        .workers(3)
        .poll_wait(Duration::from_millis(100))
        .listener_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let handled = Arc::new(Mutex::new(0_usize));
    let h = Arc::clone(&handled);
    bus.on("job.ok", move |_ctx| {
        *h.lock().unwrap() += 1;
        async { Ok(()) }
    })
    .unwrap();
    bus.on("job.hang", |_ctx| async {
        std::future::pending::<()>().await;
        Ok(())
    })
    .unwrap();
    bus.start().unwrap();
    bus.emit("job.hang", ()).detach();
    for i in 0..20 {
        bus.emit("job.ok", i).detach();
    }
    assert!(
        eventually(LIMIT, || async { *handled.lock().unwrap() == 20 }).await,
        "the other events flow: {}",
        handled.lock().unwrap()
    );
    assert!(
        eventually(LIMIT, || async {
            store
                .dead_letters(None, 10)
                .await
                .is_ok_and(|page| page.items.len() == 1)
        })
        .await,
        "the hung delivery is timed out and dead-lettered"
    );
    let dead = store.dead_letters(None, 10).await.unwrap();
    assert!(
        dead.items[0].error.contains("timed out"),
        "{:?}",
        dead.items[0]
    );
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}

fn idle_event() -> soiree::StoredEvent {
    soiree::StoredEvent {
        topic: "idle.job".into(),
        payload: serde_json::json!(1),
        properties: serde_json::Map::new(),
    }
}

/// The calls of the scripts the queue runs (`EVAL`, `EVALSHA`, `SCRIPT`)
/// the server has counted, from `INFO commandstats`.
async fn script_calls(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter(|line| line.starts_with("cmdstat_eval") || line.starts_with("cmdstat_script"))
        .filter_map(|line| {
            line.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// The bus calls `extend` every lease interval, with no receipts while
/// nothing runs: this store reads nothing ahead, so an empty extend sends
/// no command (its extension is a script; the server counts none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_extend_sends_no_command() {
    let server = server_or_skip!();
    // No idle-consumer cleanup: its script would run in the background.
    let store = builder(&server, "idle")
        .remove_idle_consumers(None)
        .build()
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, store.enqueue(&idle_event()))
        .await
        .unwrap()
        .unwrap();
    let held = tokio::time::timeout(LIMIT, store.dequeue(1, Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.len(), 1, "the event is delivered");
    let mut raw = support::raw(&server).await;
    let before = script_calls(&mut raw).await;
    for _ in 0..5 {
        tokio::time::timeout(LIMIT, store.extend(&[]))
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        script_calls(&mut raw).await,
        before,
        "an empty extend ran a script"
    );
    // The count does see an extend with work.
    tokio::time::timeout(LIMIT, store.extend(&[held[0].receipt.clone()]))
        .await
        .unwrap()
        .unwrap();
    assert!(
        script_calls(&mut raw).await > before,
        "an extend with a receipt runs its script"
    );
}
