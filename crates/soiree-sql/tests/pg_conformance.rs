//! The store conformance suite from soiree-test, hostile rows included,
//! against PostgresStore: one test per check, each on its own throwaway
//! server.

#![cfg(feature = "postgres")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use soiree_sql::PostgresStore;
use soiree_test::conformance::Conformance;
use support::{PostgresServer, fresh_schema, pg_builder_in};

/// The lease timeout, which is also about how soon an unacknowledged
/// delivery comes back.
const LEASE: Duration = Duration::from_secs(2);

fn config() -> Conformance {
    Conformance {
        // An abandoned delivery is kept for max_handler_time, then its lease expires.
        redelivery_after: Some(LEASE * 3),
        ..Conformance::default()
    }
}

/// A store reading for `group` from `schema`.
async fn store(server: &PostgresServer, schema: &str, group: &str) -> Arc<PostgresStore> {
    let store = pg_builder_in(server, schema, group)
        .group(group)
        .lease_timeout(LEASE)
        .max_handler_time(LEASE)
        .build()
        .await;
    Arc::new(store.unwrap())
}

soiree_test::conformance_suite! {
    setup: { let server = pg_or_skip!(); let schema = fresh_schema(); },
    store: store(&server, &schema, "soiree").await,
    groups: (store(&server, &schema, "first").await, store(&server, &schema, "second").await),
    inspect: store(&server, &schema, "soiree").await,
    config: config(),
}
