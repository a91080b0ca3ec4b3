//! The stores' futures can run in spawned tasks (they are `Send` for any
//! lifetime): checked at compile time.

#![allow(dead_code)]

use soiree::EventQueue;

#[cfg(feature = "postgres")]
fn postgres(store: soiree_sql::PostgresStore) {
    tokio::spawn(async { soiree_sql::PostgresStore::connect("postgres://x").await });
    tokio::spawn(async move {
        let mut tx = store.begin().await?;
        store.emit_in(&mut tx, "a.b", 1).await?;
        store.emit_all_in(&mut tx, [("a.b", 2)]).await?;
        store.commit(tx).await?;
        let _ = store.dequeue(1, std::time::Duration::ZERO).await;
        Ok::<_, soiree_sql::Error>(())
    });
}

#[cfg(feature = "sqlite")]
fn sqlite(store: soiree_sql::SqliteStore) {
    tokio::spawn(async { soiree_sql::SqliteStore::open("x.db").await });
    tokio::spawn(async move {
        let mut tx = store.begin().await?;
        store.emit_in(&mut tx, "a.b", 1).await?;
        store.emit_all_in(&mut tx, [("a.b", 2)]).await?;
        store.commit(tx).await?;
        let _ = store.dequeue(1, std::time::Duration::ZERO).await;
        Ok::<_, soiree_sql::Error>(())
    });
}

#[test]
fn compiles() {}
