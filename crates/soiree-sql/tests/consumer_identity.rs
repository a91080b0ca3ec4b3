//! The default consumer name: two live stores of one group on one host get
//! different names; a store built after the previous holder of a name is
//! gone (as a restarted process) gets that name back and takes over its
//! leases at once, without waiting for them to expire.
//! (`pg_restart` does the same with a process killed by `kill -9`.)

mod support;

use std::time::Duration;

use soiree::{EventQueue, StoredEvent};

/// Far longer than any wait of these tests: a lease that had to expire
/// would fail them.
const LONG_LEASE: Duration = Duration::from_secs(3600);
const LIMIT: Duration = Duration::from_secs(20);

fn event(n: u64) -> StoredEvent {
    StoredEvent::from_event(&soiree::Event::new("identity.job", n)).unwrap()
}

/// Builds stores with `build` until one gets `name` back, within `LIMIT`:
/// a dropped store's background tasks let go of its name's slot shortly
/// after the drop (a killed process's operating system does at once).
async fn restarted<S, F>(name: &str, build: impl Fn() -> F, name_of: impl Fn(&S) -> &str) -> S
where
    F: std::future::Future<Output = S>,
{
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let store = build().await;
        if name_of(&store) == name || tokio::time::Instant::now() >= deadline {
            return store;
        }
        drop(store);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Dequeues until `want` deliveries came or `LIMIT` passed.
async fn dequeue_all(queue: &dyn EventQueue, want: usize) -> usize {
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut got = 0;
    while got < want && tokio::time::Instant::now() < deadline {
        got += queue
            .dequeue(want - got, Duration::from_millis(200))
            .await
            .unwrap()
            .len();
    }
    got
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use soiree_sql::SqliteStore;
    use support::TempDir;

    async fn store(db: &std::path::Path) -> SqliteStore {
        SqliteStore::builder(db)
            .lease_timeout(LONG_LEASE)
            .poll_interval(Duration::from_millis(20))
            .metrics_registry(soiree::MetricsRegistry::new())
            .build()
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn live_stores_get_distinct_names() {
        let dir = TempDir::new();
        let db = dir.db();
        let first = store(&db).await;
        let second = store(&db).await;
        assert_ne!(first.consumer_name(), second.consumer_name());
        // Another group's slots are its own.
        let other = SqliteStore::builder(&db)
            .group("other")
            .metrics_registry(soiree::MetricsRegistry::new())
            .build()
            .await
            .unwrap();
        assert_eq!(other.consumer_name(), first.consumer_name());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restarted_store_takes_over_its_leases_at_once() {
        let dir = TempDir::new();
        let db = dir.db();
        let before = store(&db).await;
        let name = before.consumer_name().to_owned();
        for n in 0..5 {
            before.enqueue(&event(n)).await.unwrap();
        }
        assert_eq!(dequeue_all(&before, 5).await, 5);
        // Gone without acknowledging or handing back (as killed).
        drop(before);
        let unexpired: i64 = {
            let peek = SqliteStore::builder(&db)
                .consumer("peek")
                .metrics_registry(soiree::MetricsRegistry::new())
                .build()
                .await
                .unwrap();
            sqlx::query_scalar(
                "SELECT count(*) FROM soiree_leases WHERE consumer = ?1 \
                 AND expires_at > CAST(strftime('%s', 'now') AS INTEGER) * 1000",
            )
            .bind(&name)
            .fetch_one(peek.pool())
            .await
            .unwrap()
        };
        assert!(
            unexpired > 0,
            "the leases were released, not left to take over"
        );

        let after = restarted(&name, || store(&db), SqliteStore::consumer_name).await;
        assert_eq!(after.consumer_name(), name, "a restart changed the name");
        assert_eq!(
            dequeue_all(&after, 5).await,
            5,
            "the restarted store did not get its leased events back within {LIMIT:?} \
             (the lease timeout is {LONG_LEASE:?})"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_named_consumer_does_not_take_over_leases() {
        let dir = TempDir::new();
        let db = dir.db();
        let named = |name: &'static str| {
            SqliteStore::builder(&db)
                .consumer(name)
                .lease_timeout(LONG_LEASE)
                .metrics_registry(soiree::MetricsRegistry::new())
                .build()
        };
        let before = named("worker").await.unwrap();
        before.enqueue(&event(1)).await.unwrap();
        assert_eq!(dequeue_all(&before, 1).await, 1);
        // Another live process may use the same explicit name.
        let twin = named("worker").await.unwrap();
        let got = twin.dequeue(1, Duration::from_millis(300)).await.unwrap();
        assert!(got.is_empty(), "a store took a live lease of its name");
        assert_eq!(twin.backlog().await.unwrap(), 1);
        drop(before);
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use soiree_sql::PostgresStore;
    use support::{PostgresServer, fresh_schema};

    async fn store(server: &PostgresServer, schema: &str) -> PostgresStore {
        PostgresStore::builder(&server.url())
            .schema(schema)
            .lease_timeout(LONG_LEASE)
            .poll_interval(Duration::from_millis(20))
            .metrics_registry(soiree::MetricsRegistry::new())
            .build()
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn live_stores_get_distinct_names_and_a_restart_takes_over() {
        let server = pg_or_skip!();
        let schema = fresh_schema();
        let first = store(&server, &schema).await;
        let second = store(&server, &schema).await;
        assert_ne!(first.consumer_name(), second.consumer_name());
        drop(second);

        let name = first.consumer_name().to_owned();
        for n in 0..5 {
            first.enqueue(&event(n)).await.unwrap();
        }
        assert_eq!(dequeue_all(&first, 5).await, 5);
        drop(first);
        let after = restarted(
            &name,
            || store(&server, &schema),
            PostgresStore::consumer_name,
        )
        .await;
        assert_eq!(after.consumer_name(), name, "a restart changed the name");
        assert_eq!(
            dequeue_all(&after, 5).await,
            5,
            "the restarted store did not get its leased events back within {LIMIT:?}"
        );
    }
}
