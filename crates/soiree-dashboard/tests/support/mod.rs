//! A store that has produced known counts: a bus run with one listener that
//! fails (the mail server is down) and one whose error and payload hold
//! markup.

#![allow(dead_code, unreachable_pub)]

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use soiree::{EventBus, EventStore, Inspect, Query};

/// Every await of the tests is bounded by this.
pub const STEP: Duration = Duration::from_secs(30);

/// Awaits `future`, panicking with `what` after [`STEP`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {STEP:?}: {what}"),
    }
}

/// The markup a hostile producer stores in a payload and an error.
pub const HOSTILE: &str =
    "<script>window.__pwned = true</script><img src=x onerror=\"window.__pwned = true\">";

/// Counts the fixture produces.
pub const ORDERS: usize = 6;
pub const USERS: usize = 3;
pub const INVOICES: usize = 3;
pub const PROBES: usize = 1;
pub const EVENTS: usize = ORDERS + USERS + INVOICES + PROBES;
/// Every invoice fails (the mail server is down) and so does the probe.
pub const DEAD_LETTERS: usize = INVOICES + PROBES;

/// A bus and its store after the fixture's run.
pub struct Fixture {
    pub bus: EventBus,
    pub store: Arc<dyn Inspect>,
    /// Set it to let the mailer succeed (the mail server is fixed).
    pub smtp_up: Arc<AtomicBool>,
    /// The event ids of the invoices, in emission order.
    pub invoice_ids: Vec<String>,
    /// The event id of the event whose payload and error hold markup.
    pub probe_id: String,
    pub order_ids: Vec<String>,
}

/// Runs the fixture's bus over `store` until every event was handled or
/// dead-lettered.
pub async fn populate(events: Arc<dyn EventStore>, store: Arc<dyn Inspect>) -> Fixture {
    let bus = EventBus::builder()
        .shared_store(events)
        .build()
        .expect("bus builds");
    let smtp_up = Arc::new(AtomicBool::new(false));
    bus.on_named("fulfilment", "order.paid", |_ctx| async { Ok(()) })
        .expect("listener registers");
    bus.on_named("welcome-mail", "user.created", |_ctx| async { Ok(()) })
        .expect("listener registers");
    let up = smtp_up.clone();
    bus.on_named("mailer", "invoice.sent", move |_ctx| {
        let up = up.load(Ordering::SeqCst);
        async move {
            if up {
                Ok(())
            } else {
                Err("smtp down: connection refused by mail.internal:25".into())
            }
        }
    })
    .expect("listener registers");
    bus.on_named("probe", "probe.markup", |_ctx| async {
        Err(format!("rejected {HOSTILE}").into())
    })
    .expect("listener registers");
    bus.start().expect("the bus starts");

    let mut order_ids = Vec::new();
    let mut invoice_ids = Vec::new();
    let mut probe_id = String::new();
    for i in 0..ORDERS {
        let payload =
            serde_json::json!({ "order": 1000 + i, "cents": 1250 * (i + 1), "currency": "EUR" });
        order_ids.push(emit(&bus, "order.paid", payload).await);
    }
    for i in 0..USERS {
        let payload = serde_json::json!({ "user": format!("user-{i}"), "plan": "team" });
        emit(&bus, "user.created", payload).await;
    }
    for i in 0..INVOICES {
        let payload = serde_json::json!({ "invoice": format!("INV-2024-{:04}", 17 + i), "to": "billing@example.com" });
        invoice_ids.push(emit(&bus, "invoice.sent", payload).await);
    }
    for _ in 0..PROBES {
        probe_id = emit(&bus, "probe.markup", serde_json::json!({ "note": HOSTILE })).await;
    }
    within("the bus settles", bus.wait_for_idle()).await;
    within("dead letters are stored", async {
        loop {
            let stats = store.stats().await.expect("stats");
            if stats.dead_letters as usize >= DEAD_LETTERS && stats.backlog == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    settle(&bus, store.as_ref()).await;
    Fixture {
        bus,
        store,
        smtp_up,
        invoice_ids,
        probe_id,
        order_ids,
    }
}

/// Waits until the bus is idle and the store's counts stand still.
pub async fn settle(bus: &EventBus, store: &dyn Inspect) {
    within("the store settles", async {
        let mut last = None;
        loop {
            bus.wait_for_idle().await;
            let stats = store.stats().await.expect("stats");
            let now = (
                stats.events,
                stats.results,
                stats.backlog,
                stats.in_flight,
                stats.dead_letters,
            );
            if stats.backlog == 0 && last == Some(now) {
                break;
            }
            last = Some(now);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

async fn emit(bus: &EventBus, topic: &str, payload: serde_json::Value) -> String {
    let mut emission = bus.emit(topic, payload);
    within("an event is persisted", emission.persisted())
        .await
        .expect("event persisted")
}

/// The dead letter holding this event id.
pub async fn dead_letter_of(store: &dyn Inspect, event_id: &str) -> Option<soiree::DeadLetter> {
    let query = Query::newest(100).filter(soiree::Filter::default().event_id(event_id));
    store
        .dead_letters(&query)
        .await
        .expect("dead letters")
        .items
        .into_iter()
        .next()
}
