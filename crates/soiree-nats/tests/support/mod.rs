//! Shared helpers of the NATS store tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use soiree_nats::{NatsStore, NatsStoreBuilder};
#[allow(unused_imports)]
pub use soiree_test::nats::{NatsCluster, NatsServer};
#[allow(unused_imports)]
pub use soiree_test::wait::eventually;

/// Starts a server, or skips the test (outside CI) when nats-server is missing.
#[macro_export]
macro_rules! server_or_skip {
    () => {
        match $crate::support::NatsServer::start_or_skip() {
            Some(server) => server,
            None => return,
        }
    };
}

/// Starts a 3-server cluster, or skips the test (outside CI) when
/// nats-server is missing.
#[macro_export]
macro_rules! cluster_or_skip {
    () => {
        match $crate::support::NatsCluster::start_or_skip() {
            Some(cluster) => cluster,
            None => return,
        }
    };
}

/// One server or cluster at a time within a test binary: nine nats-servers
/// electing leaders at once on two cores time out requests that one cluster
/// answers at once (a whole-cluster restart's stream creation did, in CI).
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A builder with test-friendly settings.
pub fn builder(url: &str) -> NatsStoreBuilder {
    NatsStore::builder(url).request_timeout(Duration::from_secs(5))
}
