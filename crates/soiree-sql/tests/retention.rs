//! Retention: consumed events leave the log only once every group's cursor
//! passed them, no lease covers them and they are older than the window;
//! the stats report the backlog, the oldest unconsumed event's age and (on
//! PostgreSQL) the xmin lag.

mod support;

use std::time::Duration;

use serde_json::json;
use soiree::{EventHistory, EventQueue, PROPERTY_EVENT_ID, StoredEvent};
use soiree_sql::QueueStats;
use support::{TempDir, within};

const LIMIT: Duration = Duration::from_secs(30);

fn event(n: u64) -> StoredEvent {
    let mut properties = serde_json::Map::new();
    properties.insert(PROPERTY_EVENT_ID.to_owned(), json!(format!("evt-{n}")));
    StoredEvent {
        topic: "test.kept".to_owned(),
        payload: json!({ "n": n }),
        properties,
    }
}

/// What the test needs of a store beyond the soiree traits.
#[soiree::async_trait]
trait Prunable: EventQueue + EventHistory {
    async fn prune(&self, older_than: Duration) -> u64;
    async fn snapshot(&self) -> QueueStats;
}

macro_rules! prunable {
    ($store:ty) => {
        #[soiree::async_trait]
        impl Prunable for $store {
            async fn prune(&self, older_than: Duration) -> u64 {
                within(LIMIT, "prune", self.prune_consumed(older_than))
                    .await
                    .unwrap()
            }
            async fn snapshot(&self) -> QueueStats {
                within(LIMIT, "stats", self.queue_stats()).await.unwrap()
            }
        }
    };
}
#[cfg(feature = "postgres")]
prunable!(soiree_sql::PostgresStore);
#[cfg(feature = "sqlite")]
prunable!(soiree_sql::SqliteStore);

async fn take_all(store: &impl Prunable, n: usize) -> Vec<String> {
    let mut receipts = Vec::new();
    while receipts.len() < n {
        let batch = within(LIMIT, "dequeue", store.dequeue(n, LIMIT))
            .await
            .unwrap();
        assert!(!batch.is_empty());
        receipts.extend(batch.into_iter().map(|d| d.receipt));
    }
    receipts
}

async fn logged(store: &impl Prunable) -> usize {
    within(LIMIT, "events", store.events(None, 1000))
        .await
        .unwrap()
        .items
        .len()
}

/// `a` and `b` are two groups on one database.
async fn consumed_events_are_pruned(a: impl Prunable, b: impl Prunable, xmin_lag: bool) {
    for n in 0..10 {
        within(LIMIT, "enqueue", a.enqueue(&event(n)))
            .await
            .unwrap();
    }
    let stats = a.snapshot().await;
    assert_eq!(stats.backlog, 10);
    assert!(stats.oldest_unconsumed_age.is_some());
    assert_eq!(stats.xmin_lag.is_some(), xmin_lag);

    let receipts = take_all(&a, 10).await;
    within(LIMIT, "ack", a.ack(&receipts)).await.unwrap();
    let stats = a.snapshot().await;
    assert_eq!(stats.backlog, 0);
    assert_eq!(stats.oldest_unconsumed_age, None);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Group b has not read them: nothing goes.
    assert_eq!(a.prune(Duration::ZERO).await, 0);
    // b leases them all and acknowledges half: the lease keeps them.
    let receipts = take_all(&b, 10).await;
    within(LIMIT, "ack", b.ack(&receipts[..5])).await.unwrap();
    assert_eq!(a.prune(Duration::ZERO).await, 0);
    within(LIMIT, "ack", b.ack(&receipts[5..])).await.unwrap();
    // Consumed by every group, but younger than the window: kept.
    assert_eq!(a.prune(Duration::from_secs(3600)).await, 0);
    assert_eq!(logged(&a).await, 10);
    assert_eq!(a.prune(Duration::ZERO).await, 10);
    assert_eq!(logged(&a).await, 0);
    // The log goes on.
    within(LIMIT, "enqueue", a.enqueue(&event(10)))
        .await
        .unwrap();
    let receipts = take_all(&a, 1).await;
    within(LIMIT, "ack", a.ack(&receipts)).await.unwrap();
    assert_eq!(logged(&a).await, 1);
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_consumed_events_are_pruned() {
    let dir = TempDir::new();
    let path = dir.db();
    let a = support::sqlite_builder(&path, "a")
        .group("a")
        .build()
        .await
        .unwrap();
    let b = support::sqlite_builder(&path, "b")
        .group("b")
        .build()
        .await
        .unwrap();
    consumed_events_are_pruned(a, b, false).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_consumed_events_are_pruned() {
    let server = pg_or_skip!();
    let schema = support::fresh_schema();
    let a = support::pg_builder_in(&server, &schema, "a")
        .group("a")
        .build()
        .await
        .unwrap();
    let b = support::pg_builder_in(&server, &schema, "b")
        .group("b")
        .build()
        .await
        .unwrap();
    let _ = TempDir::new;
    consumed_events_are_pruned(a, b, true).await;
}
