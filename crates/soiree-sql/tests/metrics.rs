//! The SQL store reports soiree's store series (`soiree_store_*`), labelled
//! with its backend, location and group.

#![cfg(feature = "sqlite")]

mod support;

use std::time::Duration;

use soiree::{EventBus, MetricsRegistry};
use support::{TempDir, sqlite_builder, within};

const LIMIT: Duration = Duration::from_secs(30);
const EVENTS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_counts_under_the_store_series_with_its_backend() {
    let dir = TempDir::new();
    let registry = MetricsRegistry::new();
    let store = sqlite_builder(&dir.db(), "metrics")
        .metrics_registry(registry.clone())
        .build()
        .await
        .unwrap();
    let bus = EventBus::builder()
        .store(store.clone())
        .poll_wait(Duration::from_millis(50))
        .build()
        .unwrap();
    bus.on_named("count", "job.run", |_ctx| async { Ok(()) })
        .unwrap();
    bus.start().unwrap();
    for n in 0..EVENTS {
        within(LIMIT, "an emit", bus.emit("job.run", n).persisted())
            .await
            .unwrap();
    }
    within(LIMIT, "the bus to go idle", bus.wait_for_idle()).await;
    within(LIMIT, "the bus to close", bus.close())
        .await
        .unwrap();

    let metrics = registry.encode();
    let labels = format!(
        r#"{{backend="sqlite",store="{}",group="{}"}}"#,
        store.location(),
        store.group()
    );
    for series in [
        "soiree_store_events_persisted_total",
        "soiree_store_events_dequeued_total",
        "soiree_store_results_persisted_total",
    ] {
        let line = format!("{series}{labels} {EVENTS}");
        assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    }
    assert!(
        !metrics.contains("soiree_sql_"),
        "no series under the old names:\n{metrics}"
    );
}
