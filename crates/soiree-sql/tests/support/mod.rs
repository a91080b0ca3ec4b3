//! Shared helpers of the SQL store tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::MetricsRegistry;
#[cfg(feature = "postgres")]
use soiree_sql::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "postgres")]
pub use soiree_test::postgres::PostgresServer;
#[allow(unused_imports)]
pub use soiree_test::wait::{eventually, within};

/// Starts a server, or skips the test (outside CI) when PostgreSQL is missing.
#[macro_export]
macro_rules! pg_or_skip {
    () => {
        match $crate::support::PostgresServer::start_or_skip() {
            Some(server) => server,
            None => return,
        }
    };
}

/// A schema name unique in this process.
pub fn fresh_schema() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(feature = "postgres")]
/// A builder in a fresh schema, with test-friendly settings and its own
/// metrics registry.
pub fn pg_builder(server: &PostgresServer, consumer: &str) -> PostgresStoreBuilder {
    pg_builder_in(server, &fresh_schema(), consumer)
}

#[cfg(feature = "postgres")]
/// A builder in `schema`.
pub fn pg_builder_in(
    server: &PostgresServer,
    schema: &str,
    consumer: &str,
) -> PostgresStoreBuilder {
    PostgresStore::builder(&server.url())
        .schema(schema)
        .consumer(consumer)
        .poll_interval(Duration::from_millis(50))
        .metrics_registry(MetricsRegistry::new())
}

/// A temporary directory for SQLite files, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "soiree-sql-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    /// A fresh database file path in the directory.
    pub fn db(&self) -> std::path::PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        self.0
            .join(format!("db{}.sqlite", NEXT.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(feature = "sqlite")]
/// A SQLite store builder with test-friendly settings.
pub fn sqlite_builder(path: &std::path::Path, consumer: &str) -> soiree_sql::SqliteStoreBuilder {
    soiree_sql::SqliteStore::builder(path)
        .consumer(consumer)
        .metrics_registry(MetricsRegistry::new())
}

/// A named test of a [`process_test_main`] binary.
#[cfg(feature = "postgres")]
pub type ProcessTest<'a> = (
    &'a str,
    &'a dyn Fn(&tokio::runtime::Runtime, &PostgresServer),
);

/// The `main` of a test binary (`harness = false`) that is its own child
/// process: answers the test harness's `--list` and name filters without
/// running anything, runs `child` when `child_env` is set, and otherwise
/// starts a throwaway PostgreSQL (skipping outside CI when it is missing)
/// and runs each named test on it.
#[cfg(feature = "postgres")]
pub fn process_test_main<C>(
    binary: &str,
    child_env: &str,
    child: impl FnOnce() -> C,
    tests: &[ProcessTest<'_>],
) where
    C: Future<Output = ()>,
{
    let Some(runtime) = soiree_test::process::plain_main(binary) else {
        return;
    };
    if std::env::var(child_env).is_ok() {
        runtime.block_on(child());
        return;
    }
    let Some(server) = PostgresServer::start_or_skip() else {
        return;
    };
    for (name, test) in tests {
        println!("test {binary}::{name} ...");
        test(&runtime, &server);
    }
    println!("test result: ok. {} passed; 0 failed", tests.len());
}
