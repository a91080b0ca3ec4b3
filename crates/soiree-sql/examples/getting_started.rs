//! Getting started: durable events in a SQLite file, no server.
//!
//! An order row and its event are written in one transaction; the process
//! stops before the event is handled; after the restart a second store on
//! the same file delivers it. A wildcard listener confirms each order, and a
//! listener that fails sends its event to the dead letters.
//!
//! `cargo run -p soiree-sql --example getting-started`

use std::time::Duration;

use soiree::EventBus;
use soiree_sql::{SqliteStore, sqlx};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One file holds your tables and the event log.
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let file = format!("shop-{}-{}.db", std::process::id(), run.as_nanos());
    let path = std::env::temp_dir().join(file);

    // The first run: the order and its event in one transaction.
    let store = SqliteStore::open(&path).await?;
    sqlx::query(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, item TEXT NOT NULL, status TEXT NOT NULL)",
    )
    .execute(store.pool())
    .await?;
    let mut tx = store.begin().await?;
    sqlx::query("INSERT INTO orders (id, item, status) VALUES ($1, $2, 'placed')")
        .bind(1_i64)
        .bind("teapot")
        .execute(&mut *tx)
        .await?;
    let order = serde_json::json!({ "id": 1, "item": "teapot" });
    store.emit_in(&mut tx, "order.placed", order).await?;
    // Both or neither: the event exists if and only if the order committed.
    store.commit(tx).await?;
    // The process stops here, before any listener ran.
    drop(store);

    // The restart: a second store on the same file picks up the event.
    let store = SqliteStore::open(&path).await?;
    let bus = EventBus::builder().store(store.clone()).build()?;
    // A wildcard listener: every `order.…` event confirms its order. Named,
    // so that a listener which already succeeded for an event is skipped
    // when the event is delivered again.
    let pool = store.pool().clone();
    bus.on_named("confirm", "order.*", move |ctx| {
        let pool = pool.clone();
        async move {
            let order: serde_json::Value = ctx.payload().decode()?;
            sqlx::query("UPDATE orders SET status = 'confirmed' WHERE id = $1")
                .bind(order["id"].as_i64())
                .execute(&pool)
                .await?;
            Ok(())
        }
    })?;
    // A listener that fails: its event goes to the dead letters.
    bus.on_named("ship", "order.placed", |_ctx| async {
        Err("the warehouse is closed".into())
    })?;
    // Every listener is registered: only now does the bus take events.
    bus.start()?;

    // The listener's effect, in your table (waiting at most 10 s).
    let mut status = String::new();
    for _ in 0..200 {
        status = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
            .bind(1_i64)
            .fetch_one(store.pool())
            .await?;
        if status == "confirmed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("order 1 is {status}");
    // Close after the accepted events: their results are written first.
    bus.close().await?;

    // What failed, and why; from a shell:
    // soiree dead-letters list --store sqlite://<the file>
    let dead = store.sql_dead_letters(None, 10).await?;
    for letter in &dead.items {
        println!("dead letter: {:?} {}", letter.topic, letter.error);
    }
    println!(
        "soiree dead-letters list --store sqlite://{}",
        path.display()
    );

    assert_eq!(status, "confirmed");
    assert_eq!(dead.items.len(), 1);
    Ok(())
}
