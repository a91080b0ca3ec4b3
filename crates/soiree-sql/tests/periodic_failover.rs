//! Periodic events fire each tick once across processes, through leader
//! failovers: three processes run one schedule on one store; the leader
//! (read from the lease row: its holder starts with its pid) is killed
//! with `kill -9` and replaced, twice; then every tick from the first
//! stored to the last is stored exactly once (`MissedTicks::CatchUp`: no
//! tick lost), whoever fired it and however often.
//!
//! This test binary is its own child: started with `SOIREE_PERIODIC_CHILD`
//! set, it runs a bus with the schedule until killed. It runs on SQLite,
//! then on a throwaway PostgreSQL (skipped outside CI when PostgreSQL is
//! missing; under `CI=true` a missing server fails).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use soiree::{EventBus, EventHistory, MissedTicks, PROPERTY_TICK, Schedule};
use soiree_sql::{Driver, PostgresStore, SqlStore, SqliteStore, sqlx};
use soiree_test::process::{ChildProcess, plain_main};
use sqlx::AssertSqlSafe;
use support::{PostgresServer, TempDir, fresh_schema, within};

const CHILD_ENV: &str = "SOIREE_PERIODIC_CHILD";
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
        "sqlite" => schedule(sqlite_store(&at, &name).await).await,
        _ => {
            let schema = std::env::var("SOIREE_SCHEMA").expect("schema");
            schedule(pg_store(&at, &schema, &name).await).await;
        }
    }
}

async fn schedule<DB: Driver>(store: SqlStore<DB>) {
    let bus = EventBus::builder().store(store).build().expect("bus");
    let schedule = Schedule::every(NAME, INTERVAL)
        .missed(MissedTicks::CatchUp { max: 10_000 })
        .lease_ttl(TTL);
    let _ticking = bus.schedule(schedule, TOPIC, "tick").expect("schedule");
    std::future::pending::<()>().await;
}

/// Every stored tick (Unix ms) with how many events it has.
async fn stored_ticks<DB: Driver>(store: &SqlStore<DB>) -> BTreeMap<i64, usize> {
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
        for event in &page.items {
            if event.topic != TOPIC {
                continue;
            }
            let tick = event
                .properties
                .get(PROPERTY_TICK)
                .and_then(|tick| tick.as_str())
                .expect("a tick property");
            let ms = tick
                .parse::<jiff::Timestamp>()
                .expect("an RFC 3339 tick")
                .as_millisecond();
            assert_eq!(
                event.id(),
                Some(format!("{NAME}@{ms}").as_str()),
                "a tick's event id is not made of its schedule and time"
            );
            *ticks.entry(ms).or_insert(0) += 1;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return ticks,
        }
    }
    panic!("more than 1000 pages of events");
}

/// The pid of the process holding the lease now, from its holder
/// (`{pid}-{ulid}`), if a live grant has one.
async fn leader_pid<DB: Driver>(store: &SqlStore<DB>, sql: &str) -> Option<u32>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    String: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let mut conn = store.pool().acquire().await.expect("connection");
    let holder: Option<String> = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .fetch_optional(&mut *conn)
        .await
        .expect("the lease row");
    holder?.split('-').next()?.parse().ok()
}

/// Waits (at most `LIMIT`) until `more` ticks beyond `after` are stored
/// and a live process leads; returns the count and the leader's pid.
async fn wait_for_ticks<DB: Driver>(
    store: &SqlStore<DB>,
    lease_sql: &str,
    after: usize,
    more: usize,
) -> (usize, u32)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    String: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let count = stored_ticks(store).await.len();
        let leader = within(LIMIT, "the leader", leader_pid(store, lease_sql)).await;
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

async fn failover<DB: Driver>(
    store: SqlStore<DB>,
    lease_sql: &str,
    spawn: impl Fn() -> ChildProcess,
) where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    String: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let mut children: Vec<ChildProcess> = (0..PROCESSES).map(|_| spawn()).collect();
    let (mut count, mut leader) = wait_for_ticks(&store, lease_sql, 0, TICKS_BETWEEN).await;
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
        let (now, next) = wait_for_ticks(&store, lease_sql, count, TICKS_BETWEEN).await;
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
    let sql = format!(
        "SELECT holder FROM soiree_leader_leases WHERE name = '{NAME}' \
         AND expires_ms > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
    );
    failover(store, &sql, spawn).await;
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
    let sql = format!(
        "SELECT holder FROM \"{schema}\".soiree_leader_leases WHERE name = '{NAME}' \
         AND expires_ms > (extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    );
    failover(store, &sql, spawn).await;
}
