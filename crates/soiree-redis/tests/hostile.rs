//! The hostile-row suite from soiree-test against RedisStore: one test per
//! check, each on its own redis-server.

mod support;

use std::sync::Arc;

use soiree::EventStore;
use soiree_test::conformance::{Conformance, Outcome, hostile};
use support::{RedisServer, builder};

async fn store(server: &RedisServer, prefix: &str) -> Arc<dyn EventStore> {
    Arc::new(
        builder(server, "hostile")
            .prefix(prefix)
            .build()
            .await
            .unwrap(),
    )
}

macro_rules! hostile_tests {
    ($($check:ident)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let server = server_or_skip!();
            let outcome = hostile::$check(store(&server, "soiree").await, &Conformance::default()).await;
            assert_eq!(outcome, Outcome::Passed);
        }
    )*};
}

hostile_tests! {
    hostile_nesting_depth
    hostile_odd_encodings
    hostile_oversized_names
    hostile_numbers
    hostile_payload_sizes
}

/// Every hostile check, so that a check added later is not missed here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_hostile_suite_passes() {
    let server = server_or_skip!();
    let mut n = 0;
    hostile::run_all(
        || {
            n += 1;
            let prefix = format!("hostile{n}");
            let server = &server;
            async move { store(server, &prefix).await }
        },
        &Conformance::default(),
    )
    .await;
}
