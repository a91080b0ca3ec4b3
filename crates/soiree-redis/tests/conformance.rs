//! The store conformance suite from soiree-test, hostile rows included,
//! against RedisStore: one test per check, each on its own redis-server.

mod support;

use std::sync::Arc;
use std::time::Duration;

use soiree_redis::RedisStore;
use soiree_test::conformance::Conformance;
use support::{RedisServer, builder};

/// The claim timeout, which is also how soon an unacknowledged delivery
/// comes back.
const CLAIM: Duration = Duration::from_secs(1);

fn config() -> Conformance {
    Conformance {
        redelivery_after: Some(CLAIM),
        ..Conformance::default()
    }
}

/// A store reading for `group` on `server`'s one key prefix.
async fn store(server: &RedisServer, group: &str) -> Arc<RedisStore> {
    let store = builder(server, "conformance")
        .group(group)
        .claim_timeout(CLAIM)
        .build()
        .await;
    Arc::new(store.unwrap())
}

soiree_test::conformance_suite! {
    setup: { let server = server_or_skip!(); },
    store: store(&server, "soiree").await,
    groups: (store(&server, "first").await, store(&server, "second").await),
    inspect: store(&server, "soiree").await,
    config: config(),
}
