//! Scale-out: three consumer processes share one consumer group.
//!
//! This test binary is its own consumer: started with `SOIREE_SCALE_CHILD`
//! set, it runs a bus on the store until killed. The parent emits N events
//! through a producer-only bus and checks, from counters the children keep
//! in Redis, that a clean run handles each event id exactly once in total,
//! and that after `kill -9` of one consumer mid-run every event is still
//! handled, with duplicates only for what the killed one had in flight.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use soiree::{EventBus, EventQueue};
use soiree_redis::RedisStore;
use soiree_test::process::{ChildProcess, plain_main};
use support::{RedisServer, eventually};

const CHILD_ENV: &str = "SOIREE_SCALE_CHILD";
const N: usize = 1500;
const CONSUMERS: usize = 3;
const LIMIT: Duration = Duration::from_secs(90);

fn main() {
    let Some(runtime) = plain_main("scale_out") else {
        return;
    };
    if let Ok(name) = std::env::var(CHILD_ENV) {
        runtime.block_on(child(name));
        return;
    }
    let Some(server) = RedisServer::start_or_skip() else {
        return;
    };
    runtime.block_on(async {
        println!("test scale_out::clean_run ...");
        clean_run(&server).await;
        println!("test scale_out::kill_one_consumer ...");
        kill_one_consumer(&server).await;
    });
    println!("test result: ok. 2 passed");
}

/// A consumer process: two named listeners that count their runs per event id.
async fn child(name: String) {
    let url = std::env::var("SOIREE_REDIS_URL").expect("url");
    let prefix = std::env::var("SOIREE_PREFIX").expect("prefix");
    let store = RedisStore::builder(&url)
        .prefix(prefix.clone())
        .consumer(name)
        .claim_timeout(Duration::from_millis(
            std::env::var("SOIREE_CLAIM_MS")
                .ok()
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(30_000),
        ))
        .build()
        .await
        .expect("store");
    let client = redis::Client::open(url).expect("url");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let bus = EventBus::builder()
        .store(store)
        .workers(4)
        .poll_wait(Duration::from_millis(200))
        .build()
        .expect("bus");
    let by_consumer = format!("{prefix}:by-consumer");
    let counter = conn.clone();
    let me = std::env::var(CHILD_ENV).unwrap_or_default();
    bus.on_named("who", "job.run", move |_ctx| {
        let (key, me, mut conn) = (by_consumer.clone(), me.clone(), counter.clone());
        async move {
            redis::cmd("HINCRBY")
                .arg(&key)
                .arg(me)
                .arg(1)
                .query_async::<i64>(&mut conn)
                .await?;
            Ok(())
        }
    })
    .expect("listener");
    for listener in ["first", "second"] {
        let key = format!("{prefix}:runs:{listener}");
        let conn = conn.clone();
        bus.on_named(listener, "job.run", move |ctx| {
            let (key, mut conn) = (key.clone(), conn.clone());
            async move {
                let id = ctx.event_id().unwrap_or_default();
                redis::cmd("HINCRBY")
                    .arg(&key)
                    .arg(id)
                    .arg(1)
                    .query_async::<i64>(&mut conn)
                    .await?;
                // Some work, so that events are in flight when a consumer dies.
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok(())
            }
        })
        .expect("listener");
    }
    bus.start().expect("start");
    let mut ready = conn.clone();
    redis::cmd("INCR")
        .arg(format!("{prefix}:ready"))
        .query_async::<i64>(&mut ready)
        .await
        .expect("ready");
    // Killed by the parent; the bound only guards against an orphan.
    tokio::time::sleep(LIMIT * 2).await;
}

/// Starts the consumer processes; `claim` is their claim timeout: long in
/// the clean run (so that a loaded machine cannot make a slow entry look
/// abandoned), short in the crash run (so that the dead consumer's entries
/// come back soon). Killed when dropped.
fn consumers(server: &RedisServer, prefix: &str, claim: Duration) -> Vec<ChildProcess> {
    (0..CONSUMERS)
        .map(|i| {
            ChildProcess::start(
                ChildProcess::command()
                    .env(CHILD_ENV, format!("consumer-{i}"))
                    .env("SOIREE_CLAIM_MS", claim.as_millis().to_string())
                    .env("SOIREE_REDIS_URL", server.url())
                    .env("SOIREE_PREFIX", prefix),
            )
        })
        .collect()
}

/// Waits until every consumer process has registered its listeners (and so
/// started consuming). Redis lists a consumer only once it read something.
async fn wait_consumers(server: &RedisServer, prefix: &str) {
    let joined = eventually(LIMIT, || async {
        let mut conn = support::raw(server).await;
        let ready: redis::RedisResult<Option<usize>> = redis::cmd("GET")
            .arg(format!("{prefix}:ready"))
            .query_async(&mut conn)
            .await;
        ready.ok().flatten() == Some(CONSUMERS)
    })
    .await;
    assert!(joined, "consumers started");
}

async fn emit_all(server: &RedisServer, prefix: &str) -> (RedisStore, usize) {
    wait_consumers(server, prefix).await;
    let store = RedisStore::builder(&server.url())
        .prefix(prefix)
        .consumer("producer")
        .build()
        .await
        .expect("store");
    let bus = EventBus::builder()
        .store(store.clone())
        .consume(false)
        .build()
        .expect("bus");
    let mut emitted = 0;
    for i in 0..N {
        let errors: Vec<_> = bus.emit("job.run", i).collect().await;
        assert!(errors.is_empty(), "emit {i}: {errors:?}");
        emitted += 1;
    }
    (store, emitted)
}

async fn runs(server: &RedisServer, prefix: &str, listener: &str) -> HashMap<String, u64> {
    let mut conn = support::raw(server).await;
    redis::cmd("HGETALL")
        .arg(match listener {
            "by-consumer" => format!("{prefix}:by-consumer"),
            _ => format!("{prefix}:runs:{listener}"),
        })
        .query_async(&mut conn)
        .await
        .expect("runs")
}

async fn wait_all_handled(server: &RedisServer, prefix: &str, store: &RedisStore) -> bool {
    eventually(LIMIT, || async {
        runs(server, prefix, "first").await.len() == N
            && runs(server, prefix, "second").await.len() == N
            && store.backlog().await.ok() == Some(0)
    })
    .await
}

async fn clean_run(server: &RedisServer) {
    let prefix = "clean";
    let _children = consumers(server, prefix, Duration::from_secs(60));
    let (store, emitted) = emit_all(server, prefix).await;
    let done = wait_all_handled(server, prefix, &store).await;
    let (first, second) = (
        runs(server, prefix, "first").await,
        runs(server, prefix, "second").await,
    );
    let total: u64 = first.values().sum();
    println!(
        "scale-out clean: consumers={CONSUMERS} emitted={emitted} handled_ids={} handled_total={total}",
        first.len()
    );
    assert!(done, "all handled in time");
    assert_eq!(
        total, N as u64,
        "each event id handled exactly once in total"
    );
    assert!(first.values().chain(second.values()).all(|&n| n == 1));
    // The work was shared: every consumer handled some of it.
    let shares = runs(server, prefix, "by-consumer").await;
    println!("scale-out clean: events per consumer {shares:?}");
    assert_eq!(shares.len(), CONSUMERS, "{shares:?}");
    assert_eq!(shares.values().sum::<u64>(), N as u64);
}

async fn kill_one_consumer(server: &RedisServer) {
    let prefix = "crash";
    let mut children = consumers(server, prefix, Duration::from_secs(1));
    let (store, emitted) = emit_all(server, prefix).await;
    let started = eventually(LIMIT, || async {
        runs(server, prefix, "first").await.len() >= N / 4
    })
    .await;
    assert!(started, "consumers started");
    // kill -9 one consumer mid-run.
    children[0].kill();
    let stranded = store
        .pending(None, 10_000)
        .await
        .expect("pending")
        .items
        .iter()
        .filter(|p| p.consumer == "consumer-0")
        .count();
    let done = wait_all_handled(server, prefix, &store).await;
    let (first, second) = (
        runs(server, prefix, "first").await,
        runs(server, prefix, "second").await,
    );
    let dup =
        |runs: &HashMap<String, u64>| runs.values().map(|&n| n.saturating_sub(1)).sum::<u64>();
    println!(
        "scale-out kill -9: consumers={CONSUMERS} emitted={emitted} handled_ids={} first_runs={} second_runs={} \
         stranded_at_kill={stranded} duplicate_first={} duplicate_second={}",
        first.len(),
        first.values().sum::<u64>(),
        second.values().sum::<u64>(),
        dup(&first),
        dup(&second),
    );
    assert!(done, "every event handled after the kill");
    assert_eq!(first.len(), N);
    assert_eq!(second.len(), N);
    // Dedup: a redelivered event skips the listeners that had succeeded, so
    // a listener runs twice only when the kill fell between its effect and
    // the record of its success.
    assert!(dup(&first) + dup(&second) <= 2 * stranded as u64);
    assert_eq!(store.backlog().await.expect("backlog"), 0);
}
