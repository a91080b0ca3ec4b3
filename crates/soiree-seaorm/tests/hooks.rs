//! The SeaORM hooks on SQLite and on a throwaway PostgreSQL: mutations of
//! two entities staged on the same connection, committed with their
//! transaction, none for a rolled-back one. One process-wide capture at a
//! time, so the scenarios run one after the other (a plain main).

#[path = "../examples/seaorm/entities.rs"]
mod entities;
#[path = "../examples/seaorm/scenario.rs"]
mod scenario;

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use soiree::{EventBus, MetricsRegistry};
use soiree_sql::{PostgresStore, SqliteStore};
use soiree_test::postgres::PostgresServer;

const LIMIT: Duration = Duration::from_secs(120);

fn main() {
    let Some(runtime) = soiree_test::process::plain_main("hooks") else {
        return;
    };
    println!("test hooks::sqlite ...");
    runtime.block_on(async {
        tokio::time::timeout(LIMIT, sqlite())
            .await
            .expect("the SQLite scenario took too long");
    });
    let mut passed = 1;
    if let Some(server) = PostgresServer::start_or_skip() {
        println!("test hooks::postgres ...");
        runtime.block_on(async {
            tokio::time::timeout(LIMIT, postgres(&server))
                .await
                .expect("the PostgreSQL scenario took too long");
        });
        passed += 1;
    }
    println!("test result: ok. {passed} passed");
}

async fn sqlite() {
    let dir = std::env::temp_dir().join(format!("soiree-seaorm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("app.db");
    let store = SqliteStore::builder(&path)
        .metrics_registry(MetricsRegistry::new())
        .build()
        .await
        .unwrap();
    let bus = EventBus::builder().store(store.clone()).build().unwrap();
    let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    for table in entities::SCHEMA {
        db.execute_unprepared(table).await.unwrap();
    }
    let seen = scenario::run(&bus, &db, "public").await.unwrap();
    scenario::check(&seen).unwrap();
    bus.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn postgres(server: &PostgresServer) {
    let store = PostgresStore::builder(&server.url())
        .schema("events")
        .poll_interval(Duration::from_millis(50))
        .metrics_registry(MetricsRegistry::new())
        .build()
        .await
        .unwrap();
    let bus = EventBus::builder().store(store.clone()).build().unwrap();
    let db = Database::connect(server.url()).await.unwrap();
    for table in entities::SCHEMA {
        db.execute_unprepared(table).await.unwrap();
    }
    let seen = scenario::run(&bus, &db, "events").await.unwrap();
    scenario::check(&seen).unwrap();
    bus.close().await.unwrap();
}
