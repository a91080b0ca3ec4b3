//! Periodic events fire each tick once across processes, through leader
//! failovers, on a NATS store (the check is
//! `soiree_test::periodic::failover`): processes run one schedule, the
//! leader is killed with `kill -9` and replaced, and every tick from the
//! first stored to the last is stored exactly once.
//!
//! This test binary is its own child: started with `SOIREE_PERIODIC_CHILD`
//! set, it runs a bus with the schedule until killed. It starts its own
//! nats-server (skipped outside CI when nats-server is missing; under
//! `CI=true` a missing server fails).

mod support;

use soiree_nats::NatsStore;
use soiree_test::periodic::{failover, schedule_until_killed};
use soiree_test::process::{ChildProcess, plain_main};
use support::NatsServer;

const CHILD_ENV: &str = "SOIREE_PERIODIC_CHILD";
const PREFIX: &str = "failover";

fn main() {
    let Some(runtime) = plain_main("periodic_failover") else {
        return;
    };
    if let Ok(url) = std::env::var(CHILD_ENV) {
        let group = format!("scheduler-{}", std::process::id());
        runtime.block_on(async { schedule_until_killed(store(&url, &group).await).await });
        return;
    }
    println!("test periodic_failover::nats ...");
    match NatsServer::start_or_skip() {
        Some(server) => {
            let url = server.url();
            runtime.block_on(async {
                let spawn = || ChildProcess::start(ChildProcess::command().env(CHILD_ENV, &url));
                failover(&store(&url, "observer").await, spawn).await;
            });
            println!("test result: ok. 1 passed; 0 failed");
        }
        None => println!("test result: ok. 0 passed; 0 failed; 1 skipped (no nats-server)"),
    }
}

async fn store(url: &str, group: &str) -> NatsStore {
    support::builder(url)
        .prefix(PREFIX)
        .group(group)
        .metrics_registry(soiree::MetricsRegistry::new())
        .build()
        .await
        .expect("nats store")
}
