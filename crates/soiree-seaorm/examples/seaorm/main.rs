//! SeaORM entities whose hooks stage mutation events in the SQLite outbox,
//! on the same connection as the change: an organization and its billing
//! setting created in one transaction, one rolled back (no event), an
//! update, and a delete on a plain connection (best effort).
//!
//! `cargo run -p soiree-seaorm --example seaorm`

mod entities;
mod scenario;

use sea_orm::{ConnectionTrait, Database};
use soiree::EventBus;
use soiree_sql::SqliteStore;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = std::env::temp_dir().join(format!("soiree-seaorm-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("app.db");
    let outcome = run(&path).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn run(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The store creates the outbox tables; SeaORM writes into the same file.
    let store = SqliteStore::open(path).await?;
    let bus = EventBus::builder().store(store.clone()).build()?;
    let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display())).await?;
    for table in entities::SCHEMA {
        db.execute_unprepared(table).await?;
    }
    let seen = scenario::run(&bus, &db, "public").await?;
    scenario::check(&seen)?;
    bus.close().await?;
    println!("4 mutations captured through SeaORM hooks, none for the rolled-back insert");
    Ok(())
}
