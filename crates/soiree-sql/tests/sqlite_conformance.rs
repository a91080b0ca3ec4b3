//! The store conformance suite from soiree-test, hostile rows included,
//! against SqliteStore: one test per check, each on its own database file.

#![cfg(feature = "sqlite")]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use soiree_sql::SqliteStore;
use soiree_test::conformance::Conformance;
use support::{TempDir, sqlite_builder};

const LEASE: Duration = Duration::from_secs(2);

fn config() -> Conformance {
    Conformance {
        // An abandoned delivery is kept for max_handler_time, then its lease expires.
        redelivery_after: Some(LEASE * 3),
        ..Conformance::default()
    }
}

/// A store reading for `group` from the database at `db`.
async fn store(db: &Path, group: &str) -> Arc<SqliteStore> {
    let store = sqlite_builder(db, group)
        .group(group)
        .lease_timeout(LEASE)
        .max_handler_time(LEASE)
        .build()
        .await;
    Arc::new(store.unwrap())
}

soiree_test::conformance_suite! {
    setup: { let dir = TempDir::new(); let db = dir.db(); },
    store: store(&db, "soiree").await,
    groups: (store(&db, "first").await, store(&db, "second").await),
    inspect: store(&db, "soiree").await,
    config: config(),
}
