//! The inbox table comes with the store's migrations: `store.inbox(group)`
//! records receipts in the store's database (its schema on PostgreSQL)
//! without `create_table`, once per group, listener and event; an
//! `Inbox::create_table` made earlier in the same place does not stop the
//! migration.

#![cfg(all(feature = "postgres", feature = "sqlite"))]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::EventBus;
use soiree_sql::{Driver, Inbox, SqlStore, sqlx};
use support::{TempDir, eventually, pg_builder, sqlite_builder, within};

const LIMIT: Duration = Duration::from_secs(30);

/// A bus on `store` whose listener records each run through `inbox` in a
/// transaction on the store's pool, twice per run, counting the first
/// receipts: the event is received once.
async fn received_once<DB: Driver>(store: SqlStore<DB>, inbox: Inbox<DB>, rows: &str)
where
    Inbox<DB>: Receive<DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let bus = EventBus::builder().store(store.clone()).build().unwrap();
    let first = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let (counted, ran) = (Arc::clone(&first), Arc::clone(&runs));
    let pool = store.pool().clone();
    bus.on_named("invoice", "order.paid", move |ctx| {
        let (pool, inbox) = (pool.clone(), inbox.clone());
        let (counted, ran) = (Arc::clone(&counted), Arc::clone(&ran));
        async move {
            ran.fetch_add(1, Ordering::SeqCst);
            // Twice, as a redelivery would: the second finds the first.
            for _ in 0..2 {
                let mut tx = pool.begin().await?;
                if inbox.receive_in(&mut tx, &ctx).await? {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                tx.commit().await?;
            }
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();
    within(
        LIMIT,
        "persisted",
        bus.emit("order.paid", serde_json::json!({})).persisted(),
    )
    .await
    .unwrap();
    assert!(eventually(LIMIT, || async { runs.load(Ordering::SeqCst) == 1 }).await);
    within(LIMIT, "idle", bus.wait_for_idle()).await;
    assert_eq!(first.load(Ordering::SeqCst), 1, "received once");
    let mut conn = store.pool().acquire().await.unwrap();
    let count: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {rows}")))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(count, 1);
    within(LIMIT, "close", bus.close()).await.unwrap();
}

/// `receive` on either database's transaction.
trait Receive<DB: Driver> {
    fn receive_in<'a>(
        &'a self,
        tx: &'a mut sqlx::Transaction<'static, DB>,
        ctx: &'a soiree::EventContext,
    ) -> impl std::future::Future<Output = soiree_sql::Result<bool>> + Send + 'a;
}

impl Receive<sqlx::Sqlite> for Inbox<sqlx::Sqlite> {
    fn receive_in<'a>(
        &'a self,
        tx: &'a mut sqlx::Transaction<'static, sqlx::Sqlite>,
        ctx: &'a soiree::EventContext,
    ) -> impl std::future::Future<Output = soiree_sql::Result<bool>> + Send + 'a {
        self.receive(tx, ctx)
    }
}

impl Receive<sqlx::Postgres> for Inbox<sqlx::Postgres> {
    fn receive_in<'a>(
        &'a self,
        tx: &'a mut sqlx::Transaction<'static, sqlx::Postgres>,
        ctx: &'a soiree::EventContext,
    ) -> impl std::future::Future<Output = soiree_sql::Result<bool>> + Send + 'a {
        self.receive(tx, ctx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_migrations_create_the_inbox() {
    let dir = TempDir::new();
    let path = dir.db();
    // An inbox table made earlier by `create_table`: the migration keeps it.
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    Inbox::<sqlx::Sqlite>::new("other")
        .unwrap()
        .create_table(&mut pool.acquire().await.unwrap())
        .await
        .unwrap();
    pool.close().await;
    let store = within(LIMIT, "store", sqlite_builder(&path, "one").build())
        .await
        .unwrap();
    let inbox = store.inbox("billing").unwrap();
    received_once(store, inbox, "soiree_inbox").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_migrations_create_the_inbox_in_the_schema() {
    let server = pg_or_skip!();
    let store = within(LIMIT, "store", pg_builder(&server, "one").build())
        .await
        .unwrap();
    let schema = store.schema().to_owned();
    assert_ne!(schema, "public");
    let inbox = store.inbox("billing").unwrap();
    let rows = format!("\"{schema}\".soiree_inbox");
    received_once(store, inbox, &rows).await;
}
