//! Shared helpers of the Redis store tests.
#![allow(dead_code, unreachable_pub)]

use soiree::MetricsRegistry;
use soiree_redis::{RedisStore, RedisStoreBuilder};
pub use soiree_test::redis::RedisServer;
#[allow(unused_imports)]
pub use soiree_test::wait::eventually;

/// Starts a server, or skips the test (outside CI) when redis-server is missing.
#[macro_export]
macro_rules! server_or_skip {
    () => {
        match $crate::support::RedisServer::start_or_skip() {
            Some(server) => server,
            None => return,
        }
    };
}

/// A builder with test-friendly settings and its own metrics registry.
pub fn builder(server: &RedisServer, consumer: &str) -> RedisStoreBuilder {
    builder_at(&server.url(), consumer)
}

/// [`builder`] for another URL (credentials, another scheme).
pub fn builder_at(url: &str, consumer: &str) -> RedisStoreBuilder {
    RedisStore::builder(url)
        .consumer(consumer)
        .metrics_registry(MetricsRegistry::new())
}

/// A plain connection to the server, for setting up and checking raw keys.
pub async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}
