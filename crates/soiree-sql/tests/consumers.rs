//! Consumers mean the same on both databases: a store that consumes is
//! listed by its heartbeat whether or not it holds a lease, and is no longer
//! listed a lease timeout after it stopped; a store opened `read_only`
//! lists it and cannot write.

mod support;

use std::sync::Arc;
use std::time::Duration;

use soiree::{DeadLetterSelection, EventBus, EventStore, Filter, Inspect};
use support::{TempDir, eventually, within};

const LIMIT: Duration = Duration::from_secs(30);
const LEASE: Duration = Duration::from_millis(600);

/// `consumer` (a store that consumes, named `worker`) is listed by
/// `inspector` while its bus runs and holds nothing, and not once it closed.
async fn listed_by_heartbeat(consumer: Arc<dyn EventStore>, inspector: Arc<dyn Inspect>) {
    let bus = EventBus::builder()
        .shared_store(consumer)
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    bus.on_named("noop", "job.run", |_ctx| async { Ok(()) })
        .unwrap();
    bus.start().unwrap();
    let listed = || async {
        let consumers = within(LIMIT, "consumers", inspector.consumers())
            .await
            .unwrap();
        consumers
            .iter()
            .any(|consumer| consumer.name == "worker" && consumer.pending == 0)
    };
    assert!(
        eventually(LIMIT, listed).await,
        "the idle consumer is listed"
    );
    let stats = within(LIMIT, "stats", inspector.stats()).await.unwrap();
    assert_eq!((stats.consumers, stats.in_flight), (1, 0), "{stats:?}");
    within(LIMIT, "close", bus.close()).await.unwrap();
    assert!(
        eventually(LIMIT, || async { !listed().await }).await,
        "a consumer gone for a lease timeout is not listed"
    );
    let stats = within(LIMIT, "stats", inspector.stats()).await.unwrap();
    assert_eq!(stats.consumers, 0, "{stats:?}");
    // Read-only: a repair is refused, saying why.
    let err = within(
        LIMIT,
        "purge",
        inspector.purge_dead_letters(&DeadLetterSelection::Matching(Filter::default())),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("purge dead letters needs"),
        "{err}"
    );
    assert!(err.to_string().contains("read-only"), "{err}");
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_consumers_by_heartbeat() {
    let dir = TempDir::new();
    let path = dir.db();
    let consumer = support::sqlite_builder(&path, "worker")
        .lease_timeout(LEASE)
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let inspector = support::sqlite_builder(&path, "inspector")
        .read_only(true)
        .build()
        .await
        .unwrap();
    within(
        Duration::from_secs(120),
        "checks",
        listed_by_heartbeat(Arc::new(consumer), Arc::new(inspector)),
    )
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_consumers_by_heartbeat() {
    let Some(server) = soiree_test::postgres::PostgresServer::start_or_skip() else {
        return;
    };
    let schema = support::fresh_schema();
    let consumer = support::pg_builder_in(&server, &schema, "worker")
        .lease_timeout(LEASE)
        .build()
        .await
        .unwrap();
    let inspector = support::pg_builder_in(&server, &schema, "inspector")
        .read_only(true)
        .listen(false)
        .build()
        .await
        .unwrap();
    within(
        Duration::from_secs(120),
        "checks",
        listed_by_heartbeat(Arc::new(consumer), Arc::new(inspector)),
    )
    .await;
}
