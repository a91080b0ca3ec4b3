//! redis-durable: a Redis queue store, one counting listener; N events
//! emitted without awaiting, timed until every one is handled and nothing is
//! left pending.

use std::time::Duration;

use futures::FutureExt;
use soiree::{EventQueue, MetricsRegistry};
use soiree_redis::RedisStore;

use super::bus::count_through;
use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use crate::error::{Error, Result};

pub(super) const SCENARIO: Scenario = Scenario {
    name: "redis-durable",
    default_n: 50_000,
    needs: Needs::Redis,
    run: |setup| run(setup).boxed(),
};

const TOPIC: &str = "user.created";

/// Workers of the Redis scenarios' buses: the bus's default, as the
/// benchmark table asks (the speed a user gets without tuning).
pub(super) const REDIS_WORKERS: usize = 10;

async fn run(setup: Setup) -> Result<Report> {
    let store = connect(&setup, "durable").await?;
    let (elapsed, calls) = count_through(&store, REDIS_WORKERS, TOPIC, setup.n).await?;
    let backlog = store.backlog().await?;
    let _ = store.purge().await;
    Ok(Report::new(&setup, elapsed, setup.n)
        .count("workers", REDIS_WORKERS as u64)
        .count("backlog", backlog)
        .check(calls == setup.n, || {
            format!("the listener ran {calls} times for {} events", setup.n)
        })
        .check(backlog == 0, || format!("{backlog} events left pending")))
}

/// A store under a fresh key prefix (purged after the run), so that a
/// shared server is never disturbed.
pub(super) async fn connect(setup: &Setup, name: &str) -> Result<RedisStore> {
    let url = setup.redis.as_deref().unwrap_or("redis://127.0.0.1:6379");
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    RedisStore::builder(url)
        .prefix(format!(
            "soiree-bench:{name}:{}-{millis}",
            std::process::id()
        ))
        .dedup_ttl(Duration::from_secs(600))
        .metrics_registry(MetricsRegistry::new())
        .build()
        .await
        .map_err(|err| Error::Bus(err.into()))
}
