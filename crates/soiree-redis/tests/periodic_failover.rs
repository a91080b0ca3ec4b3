//! Periodic events fire each tick once across processes, through leader
//! failovers, on Redis (the check is `soiree_test::periodic::failover`):
//! processes run one schedule on one store, the leader is killed with
//! `kill -9` and replaced, and every tick from the first stored to the
//! last is stored exactly once.
//!
//! This test binary is its own child: started with `SOIREE_PERIODIC_CHILD`
//! set, it runs a bus with the schedule until killed.

mod support;

use soiree_redis::RedisStore;
use soiree_test::periodic::{failover, schedule_until_killed};
use soiree_test::process::{ChildProcess, plain_main};
use support::RedisServer;

const CHILD_ENV: &str = "SOIREE_PERIODIC_CHILD";
const PREFIX: &str = "periodic-failover";

fn main() {
    let Some(runtime) = plain_main("periodic_failover") else {
        return;
    };
    if std::env::var(CHILD_ENV).is_ok() {
        runtime.block_on(child());
        return;
    }
    let Some(server) = RedisServer::start_or_skip() else {
        return;
    };
    println!("test periodic_failover::redis ...");
    let url = server.url();
    runtime.block_on(async {
        let spawn = || {
            ChildProcess::start(
                ChildProcess::command()
                    .env(CHILD_ENV, "1")
                    .env("SOIREE_REDIS_URL", &url),
            )
        };
        failover(&store(&url, "observer").await, spawn).await;
    });
    println!("test result: ok. 1 passed; 0 failed");
}

async fn store(url: &str, consumer: &str) -> RedisStore {
    RedisStore::builder(url)
        .prefix(PREFIX)
        .consumer(consumer)
        .metrics_registry(soiree::MetricsRegistry::new())
        .build()
        .await
        .expect("redis store")
}

/// A process running the schedule until killed.
async fn child() {
    let url = std::env::var("SOIREE_REDIS_URL").expect("url");
    let store = store(&url, &format!("scheduler-{}", std::process::id())).await;
    schedule_until_killed(store).await;
}
