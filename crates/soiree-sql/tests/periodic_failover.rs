//! Periodic events fire each tick once across processes, through leader
//! failovers (the check is `soiree_test::periodic::failover`): processes
//! run one schedule on one store, the leader is killed with `kill -9` and
//! replaced, and every tick from the first stored to the last is stored
//! exactly once.
//!
//! This test binary is its own child: started with `SOIREE_PERIODIC_CHILD`
//! set, it runs a bus with the schedule until killed. It runs on SQLite,
//! then on a throwaway PostgreSQL (skipped outside CI when PostgreSQL is
//! missing; under `CI=true` a missing server fails).

mod support;

use soiree_sql::{PostgresStore, SqliteStore};
use soiree_test::periodic::{failover, schedule_until_killed};
use soiree_test::process::{ChildProcess, plain_main};
use support::{PostgresServer, TempDir, fresh_schema};

const CHILD_ENV: &str = "SOIREE_PERIODIC_CHILD";

fn main() {
    let Some(runtime) = plain_main("periodic_failover") else {
        return;
    };
    if let Ok(kind) = std::env::var(CHILD_ENV) {
        runtime.block_on(child(&kind));
        return;
    }
    println!("test periodic_failover::sqlite ...");
    runtime.block_on(sqlite_failover());
    match PostgresServer::start_or_skip() {
        Some(server) => {
            println!("test periodic_failover::postgres ...");
            runtime.block_on(postgres_failover(&server));
            println!("test result: ok. 2 passed; 0 failed");
        }
        None => println!("test result: ok. 1 passed; 0 failed; 1 skipped (no postgres)"),
    }
}

async fn sqlite_store(path: &str, consumer: &str) -> SqliteStore {
    SqliteStore::builder(path)
        .consumer(consumer)
        .metrics_registry(soiree::MetricsRegistry::new())
        .build()
        .await
        .expect("sqlite store")
}

async fn pg_store(url: &str, schema: &str, consumer: &str) -> PostgresStore {
    PostgresStore::builder(url)
        .schema(schema)
        .consumer(consumer)
        .metrics_registry(soiree::MetricsRegistry::new())
        .build()
        .await
        .expect("postgres store")
}

/// A process running the schedule until killed.
async fn child(kind: &str) {
    let at = std::env::var("SOIREE_PERIODIC_AT").expect("at");
    let name = format!("scheduler-{}", std::process::id());
    match kind {
        "sqlite" => schedule_until_killed(sqlite_store(&at, &name).await).await,
        _ => {
            let schema = std::env::var("SOIREE_SCHEMA").expect("schema");
            schedule_until_killed(pg_store(&at, &schema, &name).await).await;
        }
    }
}

async fn sqlite_failover() {
    let dir = TempDir::new();
    let path = dir.db();
    let at = path.to_str().expect("utf-8 path").to_owned();
    let store = sqlite_store(&at, "observer").await;
    let spawn = || {
        ChildProcess::start(
            ChildProcess::command()
                .env(CHILD_ENV, "sqlite")
                .env("SOIREE_PERIODIC_AT", &at),
        )
    };
    failover(&store, spawn).await;
}

async fn postgres_failover(server: &PostgresServer) {
    let schema = fresh_schema();
    let url = server.url();
    let store = pg_store(&url, &schema, "observer").await;
    let spawn = || {
        ChildProcess::start(
            ChildProcess::command()
                .env(CHILD_ENV, "postgres")
                .env("SOIREE_PERIODIC_AT", &url)
                .env("SOIREE_SCHEMA", &schema),
        )
    };
    failover(&store, spawn).await;
}
