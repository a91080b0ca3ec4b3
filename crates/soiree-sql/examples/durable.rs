//! Durable events with no server: a SQLite file.
//!
//! A first store emits events (through a bus that only produces, and in a
//! transaction of its own with `emit_in`) and goes away before handling
//! them, as a process that stops would. A second store on the same file, as
//! after a restart, handles each of them once.
//!
//! `cargo run -p soiree-sql --example durable` (the file goes in a
//! temporary directory; set `SOIREE_DB` to keep it somewhere).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use soiree::EventBus;
use soiree_sql::SqliteStore;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (path, temporary) = match std::env::var_os("SOIREE_DB") {
        Some(path) => (std::path::PathBuf::from(path), None),
        None => {
            let dir = std::env::temp_dir().join(format!("soiree-durable-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            (dir.join("events.db"), Some(dir))
        }
    };
    println!("database: {}", path.display());

    // The first run: emit, and stop before anything is handled.
    {
        let store = SqliteStore::open(&path).await?;
        let producer = EventBus::builder()
            .store(store.clone())
            .consume(false)
            .build()?;
        for order in 1..=3 {
            // The emission ends once the event is committed to the file.
            let mut errors = producer.emit("order.paid", json!({ "order": order }));
            if let Some(err) = errors.next().await {
                return Err(err.into());
            }
        }
        // With your own data, in one transaction: both or neither.
        let mut tx = store.begin().await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY)")
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT OR IGNORE INTO orders (id) VALUES (4)")
            .execute(&mut *tx)
            .await?;
        store
            .emit_in(&mut tx, "order.paid", json!({ "order": 4 }))
            .await?;
        store.commit(tx).await?;
        producer.close().await?;
        println!("emitted 4 events; stopping before handling them");
    }

    // The restart: a new store on the same file handles what was left.
    let store = SqliteStore::builder(&path)
        .poll_interval(Duration::from_millis(10))
        .build()
        .await?;
    let handled = Arc::new(AtomicUsize::new(0));
    let bus = EventBus::builder().store(store.clone()).build()?;
    let counter = Arc::clone(&handled);
    bus.on_named("send-receipt", "order.paid", move |ctx| {
        let counter = Arc::clone(&counter);
        async move {
            let payload: serde_json::Value = ctx.payload().decode()?;
            println!("receipt for order {}", payload["order"]);
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })?;
    // The listener is registered: only now may the bus take the backlog.
    bus.start()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while handled.load(Ordering::SeqCst) < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bus.wait_for_idle().await;
    bus.close().await?;
    let handled = handled.load(Ordering::SeqCst);
    println!("handled {handled} events after the restart");
    drop(store);
    if let Some(dir) = temporary {
        std::fs::remove_dir_all(dir)?;
    }
    if handled != 4 {
        return Err(format!("expected 4 events handled, got {handled}").into());
    }
    Ok(())
}
