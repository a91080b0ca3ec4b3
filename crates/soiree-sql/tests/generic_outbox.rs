//! Outbox code written once, generic over the database (`DB: Driver`), run
//! on SQLite and on PostgreSQL: the row and its event are committed
//! together, or neither is.

#![cfg(all(feature = "postgres", feature = "sqlite"))]

mod support;

use std::time::Duration;

use soiree::EventHistory;
use soiree_sql::{Driver, SqlStore, sqlx};
use support::{TempDir, pg_builder, sqlite_builder, within};

const LIMIT: Duration = Duration::from_secs(30);

/// Inserts an order and emits `order.placed` in one transaction, then
/// commits it or rolls it back; returns the event's id.
async fn place_order<DB: Driver>(store: &SqlStore<DB>, order: i64, commit: bool) -> String
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut tx = store.begin().await.unwrap();
    sqlx::query("INSERT INTO orders (id) VALUES ($1)")
        .bind(order)
        .execute(&mut *tx)
        .await
        .unwrap();
    let id = store
        .emit_in(
            &mut tx,
            "order.placed",
            serde_json::json!({ "order": order }),
        )
        .await
        .unwrap();
    if commit {
        store.commit(tx).await.unwrap();
    } else {
        tx.rollback().await.unwrap();
    }
    id
}

/// The ids of the orders table and of the events in the log.
async fn contents<DB: Driver>(store: &SqlStore<DB>) -> (Vec<i64>, Vec<String>)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let mut conn = store.pool().acquire().await.unwrap();
    let orders: Vec<i64> = sqlx::query_scalar("SELECT id FROM orders ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let events = store.events(None, 100).await.unwrap();
    let ids = events
        .items
        .iter()
        .map(|event| event.id().unwrap_or_default().to_owned())
        .collect();
    (orders, ids)
}

/// The scenario, once for any database.
async fn row_and_event_commit_together<DB: Driver>(store: SqlStore<DB>)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    sqlx::raw_sql("CREATE TABLE orders (id BIGINT PRIMARY KEY)")
        .execute(store.pool())
        .await
        .unwrap();
    let committed = within(LIMIT, "commit", place_order(&store, 42, true)).await;
    within(LIMIT, "rollback", place_order(&store, 43, false)).await;
    let (orders, events) = within(LIMIT, "read", contents(&store)).await;
    assert_eq!(orders, [42], "the rolled back order is gone");
    assert_eq!(events, [committed], "only the committed order's event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_outbox_code_runs_on_sqlite() {
    let dir = TempDir::new();
    let store = sqlite_builder(&dir.db(), "generic").build().await.unwrap();
    row_and_event_commit_together(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_outbox_code_runs_on_postgres() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "generic").build().await.unwrap();
    row_and_event_commit_together(store).await;
}
