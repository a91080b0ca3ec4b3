//! Listener limits hold across processes: three consumer processes on one
//! store run a listener with `max_concurrent(2)`, one with
//! `max_concurrent_per_key("tenant", 1)` and one with `rate(4, 1 s)`. Each
//! run of the first two counts itself "in flight" in a row of the store
//! (one atomic `UPDATE` in, one out) and records the most it saw: the most
//! never passes the limit. Each rated run records when it started: by
//! `t0 + k × 250 ms` (`t0` taken before any consumer started) at most `k`
//! runs had started — a count per window boundary that a slow machine only
//! makes easier, never harder. Then a consumer is killed with `kill -9`
//! while it holds a slot (its run hangs): the others go on once the slot
//! expires (a short slot time to live), so a dead holder never keeps a
//! limit full.
//!
//! This binary is its own consumer (started with `SOIREE_LIMITS_CHILD`
//! set). It runs on SQLite, then on a throwaway PostgreSQL (skipped
//! outside CI when PostgreSQL is missing).

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use soiree::{EventBus, EventContext, ListenerBinding};
use soiree_sql::{Driver, PostgresStore, SqlStore, SqliteStore, sqlx};
use soiree_test::process::{ChildProcess, plain_main};
use sqlx::AssertSqlSafe;
use support::{PostgresServer, TempDir, fresh_schema, within};

const CHILD_ENV: &str = "SOIREE_LIMITS_CHILD";
const LIMIT: Duration = Duration::from_secs(120);
const CONCURRENT: i64 = 2;
const ALL_EVENTS: usize = 40;
const KEY_EVENTS: usize = 30;
const RATED_EVENTS: usize = 12;
/// `rate(4, 1 s)`: a run every 250 ms.
const RATE_INTERVAL_MS: i64 = 250;
const SLOT_TTL: Duration = Duration::from_millis(1500);
const PROCESSES: usize = 3;
/// Short, so that the killed consumer's delivery is soon delivered again.
const LEASE: Duration = Duration::from_secs(2);

fn main() {
    let Some(runtime) = plain_main("limits_processes") else {
        return;
    };
    if let Ok(kind) = std::env::var(CHILD_ENV) {
        runtime.block_on(child(&kind));
        return;
    }
    println!("test limits_processes::sqlite ...");
    runtime.block_on(sqlite_limits());
    match PostgresServer::start_or_skip() {
        Some(server) => {
            println!("test limits_processes::postgres ...");
            runtime.block_on(postgres_limits(&server));
            println!("test result: ok. 2 passed; 0 failed");
        }
        None => println!("test result: ok. 1 passed; 0 failed; 1 skipped (no postgres)"),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn sqlite_store(path: &str, consumer: &str) -> SqliteStore {
    SqliteStore::builder(path)
        .consumer(consumer)
        .lease_timeout(LEASE)
        .poll_interval(Duration::from_millis(20))
        .metrics_registry(soiree::MetricsRegistry::new())
        .build()
        .await
        .expect("sqlite store")
}

async fn pg_store(url: &str, schema: &str, consumer: &str) -> PostgresStore {
    PostgresStore::builder(url)
        .schema(schema)
        .consumer(consumer)
        .lease_timeout(LEASE)
        .poll_interval(Duration::from_millis(20))
        .metrics_registry(soiree::MetricsRegistry::new())
        .build()
        .await
        .expect("postgres store")
}

async fn child(kind: &str) {
    let at = std::env::var("SOIREE_LIMITS_AT").expect("at");
    let prefix = std::env::var("SOIREE_LIMITS_PREFIX").expect("prefix");
    let name = format!("consumer-{}", std::process::id());
    match kind {
        "sqlite" => consume(sqlite_store(&at, &name).await, prefix).await,
        _ => {
            let schema = std::env::var("SOIREE_SCHEMA").expect("schema");
            consume(pg_store(&at, &schema, &name).await, prefix).await;
        }
    }
}

/// Runs `sql` with the binds on the store's pool.
async fn exec<DB: Driver>(
    store: &SqlStore<DB>,
    sql: String,
    binds: Vec<String>,
) -> soiree_sql::sqlx::Result<()>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut conn = store.pool().acquire().await?;
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for bind in binds {
        query = query.bind(bind);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// A consumer until killed, with the three limited listeners (and a
/// fourth whose first run hangs, for the kill).
async fn consume<DB: Driver>(store: SqlStore<DB>, prefix: String)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let bus = EventBus::builder()
        .store(store.clone())
        .workers(4)
        .poll_wait(Duration::from_millis(100))
        .build()
        .expect("bus");
    let flight = format!("{prefix}flight");
    let done = format!("{prefix}done");
    // In: now + 1, and the most seen; out: now - 1. Each one atomic UPDATE.
    let enter = format!(
        "UPDATE {flight} SET now = now + 1, most = CASE WHEN now + 1 > most THEN now + 1 ELSE most END \
         WHERE id = $1"
    );
    let leave = format!("UPDATE {flight} SET now = now - 1 WHERE id = $1");
    let record = format!(
        "INSERT INTO {done} (event_id, listener, at_ms) VALUES ($1, $2, CAST($3 AS BIGINT))"
    );
    for (name, topic, row) in [
        ("all", "limit.all", None),
        ("per-key", "limit.key", Some("tenant")),
    ] {
        let (store, enter, leave, record) =
            (store.clone(), enter.clone(), leave.clone(), record.clone());
        let binding = ListenerBinding::new(topic, move |ctx: EventContext| {
            let (store, enter, leave, record) =
                (store.clone(), enter.clone(), leave.clone(), record.clone());
            async move {
                let id = match row {
                    None => "all".to_owned(),
                    Some(property) => ctx.property_str(property).unwrap_or_default(),
                };
                exec(&store, enter, vec![id.clone()]).await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                exec(&store, leave, vec![id]).await?;
                let at = now_ms().to_string();
                exec(
                    &store,
                    record,
                    vec![ctx.event_id().unwrap_or_default(), name.to_owned(), at],
                )
                .await?;
                Ok(())
            }
        })
        .named(name)
        .limit_slot_ttl(SLOT_TTL);
        let binding = match row {
            None => binding.max_concurrent(u32::try_from(CONCURRENT).unwrap()),
            Some(property) => binding.max_concurrent_per_key(property, 1),
        };
        binding.register(&bus).expect("register");
    }
    let (rated_store, rated_record) = (store.clone(), record.clone());
    ListenerBinding::new("limit.rate", move |ctx: EventContext| {
        let (store, record) = (rated_store.clone(), rated_record.clone());
        async move {
            let at = now_ms().to_string();
            exec(
                &store,
                record,
                vec![ctx.event_id().unwrap_or_default(), "rated".into(), at],
            )
            .await?;
            Ok(())
        }
    })
    .named("rated")
    .rate(4, Duration::from_secs(1))
    .register(&bus)
    .expect("register");
    // The kill: the first run of "hold" in a process hangs when told to.
    let hang = std::env::var_os("SOIREE_LIMITS_HANG").is_some();
    let (hold_store, hold_record) = (store.clone(), record.clone());
    ListenerBinding::new("limit.hold", move |ctx: EventContext| {
        let (store, record) = (hold_store.clone(), hold_record.clone());
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            let at = now_ms().to_string();
            exec(
                &store,
                record,
                vec![ctx.event_id().unwrap_or_default(), "hold".into(), at],
            )
            .await?;
            Ok(())
        }
    })
    .named("hold")
    .max_concurrent(1)
    .limit_slot_ttl(SLOT_TTL)
    .register(&bus)
    .expect("register");
    bus.start().expect("start");
    std::future::pending::<()>().await;
}

async fn limits<DB: Driver>(store: SqlStore<DB>, prefix: &str, spawn: impl Fn(bool) -> ChildProcess)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    String: for<'r> sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let (flight, done) = (format!("{prefix}flight"), format!("{prefix}done"));
    for sql in [
        format!(
            "CREATE TABLE {flight} (id TEXT PRIMARY KEY, now BIGINT NOT NULL, most BIGINT NOT NULL)"
        ),
        format!(
            "CREATE TABLE {done} (event_id TEXT NOT NULL, listener TEXT NOT NULL, at_ms BIGINT NOT NULL)"
        ),
    ] {
        exec(&store, sql, vec![]).await.expect("table");
    }
    for id in ["all", "a", "b", "c"] {
        exec(
            &store,
            format!("INSERT INTO {flight} (id, now, most) VALUES ($1, 0, 0)"),
            vec![id.into()],
        )
        .await
        .expect("row");
    }
    let emitter = EventBus::builder()
        .store(store.clone())
        .consume(false)
        .build()
        .expect("emitter");
    for n in 0..ALL_EVENTS {
        within(LIMIT, "emit", emitter.emit("limit.all", n).persisted())
            .await
            .expect("emit");
    }
    for n in 0..KEY_EVENTS {
        let event = soiree::Event::new("limit.key", n);
        event.properties().set("tenant", ["a", "b", "c"][n % 3]);
        within(LIMIT, "emit", emitter.emit("limit.key", event).persisted())
            .await
            .expect("emit");
    }
    for n in 0..RATED_EVENTS {
        within(LIMIT, "emit", emitter.emit("limit.rate", n).persisted())
            .await
            .expect("emit");
    }
    let t0 = now_ms();
    let children: Vec<ChildProcess> = (0..PROCESSES).map(|_| spawn(false)).collect();

    let count = |listener: &'static str| {
        let store = store.clone();
        let sql = format!("SELECT count(*) FROM {done} WHERE listener = '{listener}'");
        async move {
            let mut conn = store.pool().acquire().await.expect("connection");
            sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
                .fetch_one(&mut *conn)
                .await
                .expect("count")
        }
    };
    let finished = support::eventually(LIMIT, || async {
        count("all").await >= ALL_EVENTS as i64
            && count("per-key").await >= KEY_EVENTS as i64
            && count("rated").await >= RATED_EVENTS as i64
    })
    .await;
    assert!(finished, "the limited listeners did not handle every event");

    let mut conn = store.pool().acquire().await.expect("connection");
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, now, most FROM {flight} ORDER BY id"
    )))
    .fetch_all(&mut *conn)
    .await
    .expect("flight");
    let mut starts: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT at_ms FROM {done} WHERE listener = 'rated' ORDER BY at_ms"
    )))
    .fetch_all(&mut *conn)
    .await
    .expect("starts");
    drop(conn);
    starts.sort_unstable();
    println!(
        "in flight (id, now, most): {rows:?}; rated starts after t0: {:?}",
        starts.iter().map(|at| at - t0).collect::<Vec<_>>()
    );
    for (id, now, most) in &rows {
        assert_eq!(*now, 0, "{id}: runs still counted in flight");
        let bound = if id == "all" { CONCURRENT } else { 1 };
        assert!(
            *most <= bound,
            "{id}: {most} runs at once across processes, limit {bound}"
        );
        assert!(*most >= 1, "{id}: never ran");
    }
    for (k, at) in starts.iter().enumerate() {
        let earliest = t0 + i64::try_from(k).unwrap() * RATE_INTERVAL_MS;
        assert!(
            *at >= earliest,
            "rated run {k} started {} ms after t0: before t0 + {k} × {RATE_INTERVAL_MS} ms",
            at - t0
        );
    }

    drop(children);

    // The kill: a lone consumer's "hold" run hangs holding the one slot;
    // killed with -9, its slot expires and two fresh consumers run the rest
    // (event 0 too, once its lease expires).
    let mut hanging = spawn(true);
    within(LIMIT, "emit", emitter.emit("limit.hold", 0).persisted())
        .await
        .expect("emit");
    let slots = format!(
        "SELECT count(*) FROM {}soiree_limit_slots WHERE key LIKE '%hold'",
        prefix.strip_suffix("lim_").unwrap_or_default()
    );
    let held = support::eventually(LIMIT, || async {
        let mut conn = store.pool().acquire().await.expect("connection");
        let held: i64 = sqlx::query_scalar(AssertSqlSafe(slots.clone()))
            .fetch_one(&mut *conn)
            .await
            .expect("slots");
        held == 1
    })
    .await;
    assert!(held, "the hanging run never took its slot");
    hanging.kill();
    let _survivors: Vec<ChildProcess> = (0..2).map(|_| spawn(false)).collect();
    for n in 1..4 {
        within(LIMIT, "emit", emitter.emit("limit.hold", n).persisted())
            .await
            .expect("emit");
    }
    let recovered = support::eventually(LIMIT, || async { count("hold").await >= 4 }).await;
    assert!(recovered, "a killed holder kept the limit full");
    emitter.close().await.expect("close");
}

async fn sqlite_limits() {
    let dir = TempDir::new();
    let path = dir.db();
    let at = path.to_str().expect("utf-8 path").to_owned();
    let store = sqlite_store(&at, "producer").await;
    let spawn = |hang: bool| {
        let mut command = ChildProcess::command();
        command
            .env(CHILD_ENV, "sqlite")
            .env("SOIREE_LIMITS_AT", &at)
            .env("SOIREE_LIMITS_PREFIX", "lim_");
        if hang {
            command.env("SOIREE_LIMITS_HANG", "1");
        }
        ChildProcess::start(&mut command)
    };
    limits(store, "lim_", spawn).await;
}

async fn postgres_limits(server: &PostgresServer) {
    let schema = fresh_schema();
    let url = server.url();
    let store = pg_store(&url, &schema, "producer").await;
    let prefix = format!("\"{schema}\".lim_");
    let spawn = |hang: bool| {
        let mut command = ChildProcess::command();
        command
            .env(CHILD_ENV, "postgres")
            .env("SOIREE_LIMITS_AT", &url)
            .env("SOIREE_SCHEMA", &schema)
            .env("SOIREE_LIMITS_PREFIX", &prefix);
        if hang {
            command.env("SOIREE_LIMITS_HANG", "1");
        }
        ChildProcess::start(&mut command)
    };
    limits(store, &prefix, spawn).await;
}
