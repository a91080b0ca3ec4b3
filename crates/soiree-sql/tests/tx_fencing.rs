//! Transactional listeners are fenced: a listener that outlives its lease
//! while another consumer takes its event over cannot commit. Its writes
//! roll back and its outcome says the lease was lost; the side effect is
//! committed exactly once, by the consumer that took the event over. On
//! PostgreSQL the takeover happens while the slow listener still runs; on
//! SQLite (whose listener transaction holds the write lock) right after.

#![cfg(all(feature = "postgres", feature = "sqlite"))]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::{Error as BusError, EventBus};
use soiree_sql::{Driver, Error, SqlStore, sqlx};
use support::{TempDir, eventually, pg_builder_in, sqlite_builder, within};
use tokio::sync::Notify;

const LIMIT: Duration = Duration::from_secs(30);
const LEASE: Duration = Duration::from_millis(300);
/// The keeper stops extending a delivery out for this long.
const HANDLER_TIME: Duration = Duration::from_millis(100);

/// A bus on `store` whose transactional listener `effect` inserts a row
/// naming `consumer` and then, on its first run only, waits for `release`
/// (at most `hold`); `fenced` counts its runs that ended with a lost lease.
fn bus_with_effect<DB: Driver>(
    store: &SqlStore<DB>,
    consumer: &'static str,
    started: Arc<Notify>,
    release: Arc<Notify>,
    hold: Duration,
    fenced: Arc<AtomicUsize>,
) -> EventBus
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    // One in-flight delivery: the slow consumer claims nothing (and takes
    // back nothing of its own) while its listener runs.
    let bus = EventBus::builder()
        .store(store.clone())
        .workers(1)
        .poll_wait(Duration::from_millis(50))
        .error_handler(move |_event, err: BusError| {
            if Error::is_lease_lost(&err) {
                fenced.fetch_add(1, Ordering::SeqCst);
            }
            Some(err)
        })
        .build()
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    store
        .on_tx(&bus, "effect", "order.paid", move |ctx, mut tx| {
            let (started, release) = (Arc::clone(&started), Arc::clone(&release));
            let first = runs.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                sqlx::query("INSERT INTO effects (event_id, consumer) VALUES ($1, $2)")
                    .bind(ctx.event_id().unwrap_or_default())
                    .bind(consumer.to_owned())
                    .execute(&mut *tx)
                    .await?;
                started.notify_one();
                if first {
                    let _ = tokio::time::timeout(hold, release.notified()).await;
                }
                Ok(tx)
            }
        })
        .unwrap();
    bus
}

/// The consumers named in the effects table, in insertion order.
async fn effects<DB: Driver>(store: &SqlStore<DB>) -> Vec<String>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    String: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::query_scalar("SELECT consumer FROM effects ORDER BY consumer")
        .fetch_all(&mut *conn)
        .await
        .unwrap()
}

/// `slow` claims the event and holds its listener's transaction open (at
/// most `slow_hold`) past its lease, and the event is taken over. Exactly
/// one effect commits (with `committer`, `fast`'s), and the slow run says
/// it was fenced.
async fn fenced_takeover<DB: Driver>(
    slow: SqlStore<DB>,
    fast: SqlStore<DB>,
    slow_hold: Duration,
    committer: Option<&str>,
) where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    String: for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let mut conn = slow.pool().acquire().await.unwrap();
    sqlx::raw_sql("CREATE TABLE effects (event_id TEXT NOT NULL, consumer TEXT NOT NULL)")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);

    let slow_fenced = Arc::new(AtomicUsize::new(0));
    let fast_fenced = Arc::new(AtomicUsize::new(0));
    let slow_started = Arc::new(Notify::new());
    // Released when the fast consumer has written its effect (PostgreSQL);
    // on SQLite the fast one waits for the slow one's write lock instead.
    let fast_wrote = Arc::new(Notify::new());
    let slow_bus = bus_with_effect(
        &slow,
        "slow",
        Arc::clone(&slow_started),
        Arc::clone(&fast_wrote),
        slow_hold,
        Arc::clone(&slow_fenced),
    );
    let fast_bus = bus_with_effect(
        &fast,
        "fast",
        Arc::clone(&fast_wrote),
        Arc::new(Notify::new()),
        Duration::ZERO,
        Arc::clone(&fast_fenced),
    );
    slow_bus.start().unwrap();
    let mut emission = slow_bus.emit("order.paid", serde_json::json!({ "order": 1 }));
    let persisted = within(LIMIT, "emit", emission.persisted()).await;
    assert!(persisted.is_ok(), "{persisted:?}");
    within(LIMIT, "the slow listener starts", slow_started.notified()).await;
    fast_bus.start().unwrap();

    let done = eventually(LIMIT, || async {
        slow_fenced.load(Ordering::SeqCst) >= 1 && !effects(&fast).await.is_empty()
    })
    .await;
    assert!(
        done,
        "the slow run is fenced ({} times) and the fast one commits ({:?})",
        slow_fenced.load(Ordering::SeqCst),
        effects(&fast).await
    );
    within(LIMIT, "close the fast bus", fast_bus.close())
        .await
        .unwrap();
    within(LIMIT, "close the slow bus", slow_bus.close())
        .await
        .unwrap();
    let effects = effects(&fast).await;
    assert_eq!(effects.len(), 1, "exactly one commit of the side effect");
    if let Some(committer) = committer {
        assert_eq!(effects, [committer]);
    }
    assert_eq!(
        slow_fenced.load(Ordering::SeqCst),
        1,
        "the slow run is fenced"
    );
    assert_eq!(fast_fenced.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_listener_past_its_lease_cannot_commit() {
    let server = pg_or_skip!();
    let schema = support::fresh_schema();
    let build = |consumer| {
        pg_builder_in(&server, &schema, consumer)
            .lease_timeout(LEASE)
            .max_handler_time(HANDLER_TIME)
            .build()
    };
    let slow = within(LIMIT, "slow store", build("slow")).await.unwrap();
    let fast = within(LIMIT, "fast store", build("fast")).await.unwrap();
    // Held until the fast consumer wrote: the takeover happens meanwhile.
    fenced_takeover(slow, fast, LIMIT, Some("fast")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_listener_past_its_lease_cannot_commit() {
    let dir = TempDir::new();
    let path = dir.db();
    let build = |consumer| {
        sqlite_builder(&path, consumer)
            .lease_timeout(LEASE)
            .max_handler_time(HANDLER_TIME)
            .poll_interval(Duration::from_millis(20))
            .build()
    };
    let slow = within(LIMIT, "slow store", build("slow")).await.unwrap();
    let fast = within(LIMIT, "fast store", build("fast")).await.unwrap();
    // The slow transaction holds the write lock: no consumer can take over
    // before it ends, so it ends on its own, past the lease; then either
    // consumer (the slow one too, with a new token) delivers it again.
    fenced_takeover(slow, fast, Duration::from_millis(1500), None).await;
}

/// `on_tx` refuses a bus that does not run on the store it is called on
/// (another store, even of the same database and group; no store at all):
/// its fence and acknowledgement need that store's own deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_tx_refuses_a_bus_of_another_store() {
    let dir = TempDir::new();
    let path = dir.db();
    let build = |consumer| sqlite_builder(&path, consumer).build();
    let ours = within(LIMIT, "store", build("ours")).await.unwrap();
    let other = within(LIMIT, "store", build("other")).await.unwrap();
    let noop = |_ctx, tx| async move { Ok(tx) };
    let refused = |bus: &EventBus, expected: &str| {
        let err = ours.on_tx(bus, "effect", "order.paid", noop).unwrap_err();
        let soiree::Error::Store(source) = &err else {
            panic!("not a store error: {err}");
        };
        assert!(
            matches!(
                source.downcast_ref::<Error>(),
                Some(Error::NotThisStore { bus_store, .. }) if bus_store.starts_with(expected)
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("register it through the store the bus was built with")
        );
    };
    let bus = EventBus::builder().store(other.clone()).build().unwrap();
    refused(&bus, "another store");
    refused(&EventBus::new(), "no store");
    let memory = EventBus::builder()
        .store(soiree::MemoryStore::queue())
        .build()
        .unwrap();
    refused(&memory, "a store of another kind");
    // The bus's own store, through a clone: accepted.
    let bus = EventBus::builder().store(ours.clone()).build().unwrap();
    ours.on_tx(&bus, "effect", "order.paid", noop).unwrap();
    assert!(other.on_tx(&bus, "effect2", "order.paid", noop).is_err());
}
