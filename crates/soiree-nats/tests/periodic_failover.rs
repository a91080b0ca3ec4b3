//! Periodic events fire each tick once across processes, through leader
//! failovers, on a NATS store: three processes run one schedule; the
//! leader (read from the lease's KV entry: its holder starts with its pid)
//! is killed with `kill -9` and replaced, twice; then every tick from the
//! first stored to the last is stored exactly once (`MissedTicks::CatchUp`:
//! no tick lost), whoever fired it and however often.
//!
//! This test binary is its own child: started with `SOIREE_PERIODIC_CHILD`
//! set, it runs a bus with the schedule until killed. It starts its own
//! nats-server (skipped outside CI when nats-server is missing; under
//! `CI=true` a missing server fails).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use soiree::{EventBus, EventHistory, MissedTicks, Schedule};
use soiree_nats::NatsStore;
use soiree_test::process::{ChildProcess, plain_main};
use support::NatsServer;

const CHILD_ENV: &str = "SOIREE_PERIODIC_CHILD";
const PREFIX: &str = "failover";
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
    if let Ok(url) = std::env::var(CHILD_ENV) {
        runtime.block_on(child(&url));
        return;
    }
    println!("test periodic_failover::nats ...");
    match NatsServer::start_or_skip() {
        Some(server) => {
            runtime.block_on(failover(&server.url()));
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

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {LIMIT:?}"))
}

/// A process running the schedule until killed.
async fn child(url: &str) {
    let group = format!("scheduler-{}", std::process::id());
    let bus = EventBus::builder()
        .store(store(url, &group).await)
        .build()
        .expect("bus");
    let schedule = Schedule::every(NAME, INTERVAL)
        .missed(MissedTicks::CatchUp { max: 10_000 })
        .lease_ttl(TTL);
    let _ticking = bus.schedule(schedule, TOPIC, "tick").expect("schedule");
    std::future::pending::<()>().await;
}

/// Every stored tick (Unix ms, from its event id `<name>@<ms>`) with how
/// many events it has.
async fn stored_ticks(store: &NatsStore) -> BTreeMap<i64, usize> {
    let mut ticks = BTreeMap::new();
    let mut cursor: Option<String> = None;
    // Bounded: far more pages than a run stores.
    for _ in 0..1000 {
        let page = within("a page of events", store.events(cursor.as_deref(), 500))
            .await
            .expect("events");
        for event in &page.items {
            if event.topic != TOPIC {
                continue;
            }
            let id = event.id().expect("a tick's event id");
            let ms = id
                .strip_prefix(&format!("{NAME}@"))
                .and_then(|ms| ms.parse::<i64>().ok())
                .unwrap_or_else(|| panic!("a tick's event id {id:?} is not <schedule>@<ms>"));
            *ticks.entry(ms).or_insert(0) += 1;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return ticks,
        }
    }
    panic!("more than 1000 pages of events");
}

/// The pid of the process holding the lease now, from its KV entry (a
/// live grant's holder is `{pid}-{ulid}`), if a live grant has one.
async fn leader_pid(kv: &async_nats::jetstream::kv::Store) -> Option<u32> {
    let key: String = NAME.bytes().map(|b| format!("{b:02x}")).collect();
    let entry = within("the lease entry", kv.entry(key)).await.ok()??;
    let grant: serde_json::Value = serde_json::from_slice(&entry.value).ok()?;
    let ttl = Duration::from_millis(grant["ttl_ms"].as_u64()?);
    let live = !grant["released"].as_bool().unwrap_or(false)
        && SystemTime::from(entry.created) + ttl > SystemTime::now();
    if !live {
        return None;
    }
    grant["holder"].as_str()?.split('-').next()?.parse().ok()
}

/// Waits (at most `LIMIT`) until `more` ticks beyond `after` are stored
/// and a live process leads; returns the count and the leader's pid.
async fn wait_for_ticks(
    store: &NatsStore,
    kv: &async_nats::jetstream::kv::Store,
    after: usize,
    more: usize,
) -> (usize, u32) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let count = stored_ticks(store).await.len();
        if count >= after + more
            && let Some(pid) = leader_pid(kv).await
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

async fn failover(url: &str) {
    let store = store(url, "observer").await;
    let js = async_nats::jetstream::new(store.client().clone());
    let kv = within(
        "the lease bucket",
        js.get_key_value(format!("SOIREE_{PREFIX}_LEASES")),
    )
    .await
    .expect("the lease bucket");
    let spawn = || ChildProcess::start(ChildProcess::command().env(CHILD_ENV, url));
    let mut children: Vec<ChildProcess> = (0..PROCESSES).map(|_| spawn()).collect();
    let (mut count, mut leader) = wait_for_ticks(&store, &kv, 0, TICKS_BETWEEN).await;
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
        let (now, next) = wait_for_ticks(&store, &kv, count, TICKS_BETWEEN).await;
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
