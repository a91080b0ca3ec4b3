//! Periodic events fire each tick once across processes, through leader
//! failovers, on Redis: three processes run one schedule on one store; the
//! leader (read from the lease hash: its holder starts with its pid) is
//! killed with `kill -9` and replaced, twice; then every tick from the
//! first stored to the last is stored exactly once (`MissedTicks::CatchUp`:
//! no tick lost).
//!
//! This test binary is its own child: started with `SOIREE_PERIODIC_CHILD`
//! set, it runs a bus with the schedule until killed.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use soiree::{EventBus, MissedTicks, PROPERTY_TICK, Schedule};
use soiree_redis::RedisStore;
use soiree_test::process::{ChildProcess, plain_main};
use soiree_test::wait::within;
use support::RedisServer;

const CHILD_ENV: &str = "SOIREE_PERIODIC_CHILD";
const PREFIX: &str = "periodic-failover";
const NAME: &str = "failover-tick";
const TOPIC: &str = "periodic.tick";
const INTERVAL: Duration = Duration::from_millis(500);
const TTL: Duration = Duration::from_millis(1500);
const LIMIT: Duration = Duration::from_secs(60);
const PROCESSES: usize = 3;
const KILLS: usize = 2;
/// Ticks stored after each kill before the next step.
const TICKS_BETWEEN: usize = 4;

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
    runtime.block_on(failover(&server));
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
    let bus = EventBus::builder().store(store).build().expect("bus");
    let schedule = Schedule::every(NAME, INTERVAL)
        .missed(MissedTicks::CatchUp { max: 10_000 })
        .lease_ttl(TTL);
    let _ticking = bus.schedule(schedule, TOPIC, "tick").expect("schedule");
    std::future::pending::<()>().await;
}

/// Every stored tick (Unix ms, from the event ids) with how many events it
/// has.
async fn stored_ticks(store: &RedisStore) -> BTreeMap<i64, usize> {
    let mut ticks = BTreeMap::new();
    let mut cursor: Option<String> = None;
    // Bounded: far more pages than a run stores.
    for _ in 0..1000 {
        let page = within(
            LIMIT,
            "a page of events",
            store.events(cursor.as_deref(), 500),
        )
        .await
        .expect("events");
        for event in page.items.iter().filter(|event| event.topic == TOPIC) {
            assert!(
                event.properties.get(PROPERTY_TICK).is_some(),
                "a tick without its time"
            );
            let ms: i64 = event
                .id()
                .and_then(|id| id.strip_prefix(&format!("{NAME}@")).map(str::to_owned))
                .and_then(|ms| ms.parse().ok())
                .expect("a tick's event id is made of its schedule and time");
            *ticks.entry(ms).or_insert(0) += 1;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return ticks,
        }
    }
    panic!("more than 1000 pages of events");
}

/// The pid of the process holding a live grant of the lease, from its
/// holder (`{pid}-{ulid}`).
async fn leader_pid(conn: &mut redis::aio::MultiplexedConnection) -> Option<u32> {
    let key = format!("{{{PREFIX}}}:lease:{NAME}");
    let (holder, expires): (Option<String>, Option<i64>) = redis::cmd("HMGET")
        .arg(&key)
        .arg("holder")
        .arg("expires_ms")
        .query_async(conn)
        .await
        .expect("the lease hash");
    let (seconds, micros): (i64, i64) = redis::cmd("TIME")
        .query_async(conn)
        .await
        .expect("the server's time");
    if expires? <= seconds * 1000 + micros / 1000 {
        return None;
    }
    holder?.split('-').next()?.parse().ok()
}

/// Waits (at most `LIMIT`) until `more` ticks beyond `after` are stored
/// and a live process leads; returns the count and the leader's pid.
async fn wait_for_ticks(
    store: &RedisStore,
    conn: &mut redis::aio::MultiplexedConnection,
    after: usize,
    more: usize,
) -> (usize, u32) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let count = stored_ticks(store).await.len();
        let leader = within(LIMIT, "the leader", leader_pid(conn)).await;
        if count >= after + more
            && let Some(pid) = leader
        {
            return (count, pid);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} ticks stored, {more} more than {after} awaited for {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn failover(server: &RedisServer) {
    let url = server.url();
    let store = store(&url, "observer").await;
    let mut conn = support::raw(server).await;
    let spawn = || {
        ChildProcess::start(
            ChildProcess::command()
                .env(CHILD_ENV, "1")
                .env("SOIREE_REDIS_URL", &url),
        )
    };
    let mut children: Vec<ChildProcess> = (0..PROCESSES).map(|_| spawn()).collect();
    let (mut count, mut leader) = wait_for_ticks(&store, &mut conn, 0, TICKS_BETWEEN).await;
    let mut killed = Vec::new();
    for _ in 0..KILLS {
        let Some(at) = children
            .iter_mut()
            .position(|child| child.child().id() == leader)
        else {
            panic!("the lease is held by pid {leader}, none of the children");
        };
        let mut dead = children.swap_remove(at);
        dead.kill();
        killed.push(leader);
        children.push(spawn());
        let (now, next) = wait_for_ticks(&store, &mut conn, count, TICKS_BETWEEN).await;
        assert!(
            !killed.contains(&next),
            "a killed process (pid {next}) still holds the lease"
        );
        count = now;
        leader = next;
    }
    for child in &mut children {
        child.kill();
    }
    let ticks = stored_ticks(&store).await;
    let twice: Vec<_> = ticks.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "ticks={} kills={KILLS} killed_leaders={killed:?} first={:?} last={:?}",
        ticks.len(),
        ticks.keys().next(),
        ticks.keys().next_back()
    );
    assert!(twice.is_empty(), "ticks stored twice: {twice:?}");
    let interval = i64::try_from(INTERVAL.as_millis()).expect("ms");
    let ms: Vec<i64> = ticks.keys().copied().collect();
    let gaps: Vec<_> = ms
        .windows(2)
        .filter(|pair| pair[1] - pair[0] != interval)
        .map(|pair| (pair[0], pair[1]))
        .collect();
    assert!(
        gaps.is_empty(),
        "ticks lost through the failovers: {gaps:?}"
    );
    assert!(
        ms.len() > (KILLS + 1) * TICKS_BETWEEN - 1,
        "too few ticks to say anything: {}",
        ms.len()
    );
}
