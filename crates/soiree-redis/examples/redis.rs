//! A durable event pipeline on Redis: emit, consume, inspect, replay.
//!
//! Run with a Redis server at `SOIREE_REDIS_URL` (default
//! `redis://127.0.0.1:6379`):
//!
//! ```text
//! cargo run -p soiree-redis --example redis
//! ```
//!
//! It writes only under a fresh key prefix (`{soiree-example-<pid>-<ms>}:`)
//! and deletes nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use soiree::{Event, EventBus, PROPERTY_EVENT_ID};
use soiree_redis::RedisStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("SOIREE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let millis = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let prefix = format!("soiree-example-{}-{millis}", std::process::id());

    let store = RedisStore::builder(&url)
        .prefix(prefix.clone())
        .claim_timeout(Duration::from_secs(30))
        .max_deliveries(5)
        .build()
        .await?;
    let bus = EventBus::builder()
        .store(store.clone())
        .workers(4)
        .build()?;

    // Named listeners keep their id across processes: a redelivered or
    // replayed event skips the ones that already succeeded.
    let receipts = Arc::new(AtomicUsize::new(0));
    let sent = Arc::clone(&receipts);
    bus.on_named("send-receipt", "order.paid", move |ctx| {
        sent.fetch_add(1, Ordering::SeqCst);
        println!("receipt for event {}", ctx.event_id().unwrap_or_default());
        async { Ok(()) }
    })?;
    bus.on_named("update-ledger", "order.paid", |ctx| async move {
        let order: serde_json::Value = ctx.payload().to_json()?;
        if order["amount"].as_u64() == Some(0) {
            return Err("zero amount".into());
        }
        Ok(())
    })?;
    // Both listeners are registered: only now may the bus take events from
    // the stream (a delivery runs the listeners registered when it is taken).
    bus.start()?;

    for (id, amount) in [("order-1", 30), ("order-2", 0)] {
        let event = Event::new(
            "order.paid",
            serde_json::json!({ "order": id, "amount": amount }),
        );
        event.properties().set(PROPERTY_EVENT_ID, id);
        // The emission ends once the event is durably appended.
        let errors: Vec<_> = bus.emit("order.paid", event).collect().await;
        assert!(errors.is_empty(), "not stored: {errors:?}");
    }
    bus.wait_for_idle().await;

    // Replay re-enqueues with the same event id: "send-receipt" already
    // succeeded for order-2 and is skipped; "update-ledger" runs again.
    store.replay("order-2").await?;
    bus.wait_for_idle().await;
    println!("receipts sent: {}", receipts.load(Ordering::SeqCst));

    let results = store.results(None, 100).await?;
    for result in &results.items {
        println!(
            "{} {} -> {}",
            result.event_id,
            result.handler_id,
            result.error.as_deref().unwrap_or("ok")
        );
    }
    println!("backlog: {}", soiree::EventQueue::backlog(&store).await?);
    println!("keys are under {prefix:?}");
    bus.close().await?;
    Ok(())
}
