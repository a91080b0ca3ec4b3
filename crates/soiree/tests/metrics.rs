//! Metrics registries: a bus's pool metrics go to the registry it is given
//! (or the process-wide default), labelled by pool name.

use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use soiree::{Error, EventBus, MetricsRegistry, Pool, PoolOptions};

fn value(text: &str, prefix: &str) -> Option<i64> {
    text.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .and_then(|rest| rest.trim().parse().ok())
}

/// Asserts that each of `names` reads `expected` for `pool` in `text`.
fn assert_pool_metrics(text: &str, pool: &str, names: &[&str], expected: i64) {
    for name in names {
        assert_eq!(
            value(text, &format!("{name}{{pool=\"{pool}\"}} ")),
            Some(expected),
            "{name} in\n{text}"
        );
    }
}

/// A pool's job counters.
const JOB_COUNTS: [&str; 3] = [
    "soiree_pool_tasks_submitted_total",
    "soiree_pool_tasks_started_total",
    "soiree_pool_tasks_completed_total",
];

#[tokio::test]
async fn a_bus_reports_to_its_own_registry_under_its_pool_name() {
    let registry = MetricsRegistry::new();
    let bus = EventBus::builder()
        .metrics_registry(registry.clone())
        .pool_name("orders")
        .build()
        .unwrap();
    bus.on("order.placed", |_ctx| async { Ok(()) }).unwrap();
    for _ in 0..5 {
        let errors: Vec<Error> = bus.emit("order.placed", ()).collect().await;
        assert!(errors.is_empty());
    }
    bus.wait_for_idle().await;
    let text = registry.encode();
    assert_pool_metrics(&text, "orders", &JOB_COUNTS, 5);
    assert_eq!(
        value(&text, "soiree_pool_tasks_panicked_total{pool=\"orders\"} "),
        Some(0)
    );
    assert_eq!(
        value(&text, "soiree_pool_tasks_queued{pool=\"orders\"} "),
        Some(0)
    );
    assert_eq!(
        value(&text, "soiree_pool_tasks_running{pool=\"orders\"} "),
        Some(0)
    );
    // The text exposition is well formed: HELP and TYPE lines, an EOF marker.
    assert!(
        text.contains("# TYPE soiree_pool_tasks_submitted counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE soiree_pool_tasks_running gauge"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));
}

/// An emission awaited inside a listener, whose job its awaiting task takes
/// over from the queue, is one task: counted submitted, started and
/// completed once (the worker that later pops the taken job drops it
/// uncounted), so that nothing stays "running".
#[tokio::test]
async fn an_emission_run_by_its_awaiting_listener_counts_once() {
    let registry = MetricsRegistry::new();
    // One worker: it runs `outer`, so `inner` can only run in `outer`'s task.
    let bus = EventBus::builder()
        .workers(1)
        .metrics_registry(registry.clone())
        .pool_name("nested")
        .build()
        .unwrap();
    bus.on("inner", |_ctx| async { Ok(()) }).unwrap();
    bus.on("outer", |ctx| async move {
        let errors: Vec<Error> = ctx.bus().emit("inner", ()).collect().await;
        assert!(errors.is_empty());
        Ok(())
    })
    .unwrap();
    let errors: Vec<Error> = bus.emit("outer", ()).collect().await;
    assert!(errors.is_empty());
    // Behind the taken-over job in the one worker's queue: once it ran, the
    // worker has popped that one too.
    let errors: Vec<Error> = bus.emit("inner", ()).collect().await;
    assert!(errors.is_empty());
    bus.wait_for_idle().await;
    let text = registry.encode();
    assert_pool_metrics(&text, "nested", &JOB_COUNTS, 3);
    assert_pool_metrics(
        &text,
        "nested",
        &["soiree_pool_tasks_queued", "soiree_pool_tasks_running"],
        0,
    );
}

#[tokio::test]
async fn buses_and_pools_share_a_registry_by_label() {
    let registry = MetricsRegistry::new();
    let billing = EventBus::builder()
        .metrics_registry(registry.clone())
        .pool_name("billing")
        .build()
        .unwrap();
    let mail = EventBus::builder()
        .metrics_registry(registry.clone())
        .pool_name("mail")
        .build()
        .unwrap();
    let pool = Pool::new(
        PoolOptions::default()
            .name("jobs")
            .registry(registry.clone()),
    )
    .unwrap();
    billing.on("x", |_ctx| async { Ok(()) }).unwrap();
    mail.on("x", |_ctx| async { Ok(()) }).unwrap();
    for _ in 0..2 {
        let _: Vec<Error> = billing.emit("x", ()).collect().await;
    }
    let _: Vec<Error> = mail.emit("x", ()).collect().await;
    pool.submit_all_and_wait((0..3).map(|_| async {}))
        .await
        .unwrap();

    let text = registry.encode();
    let completed = |pool: &str| {
        value(
            &text,
            &format!("soiree_pool_tasks_completed_total{{pool=\"{pool}\"}} "),
        )
    };
    assert_eq!(completed("billing"), Some(2));
    assert_eq!(completed("mail"), Some(1));
    assert_eq!(completed("jobs"), Some(3));
    // Each family is registered once, whatever the number of pools.
    assert_eq!(
        text.matches("# TYPE soiree_pool_tasks_completed counter")
            .count(),
        1
    );
}

#[tokio::test]
async fn without_a_registry_a_bus_reports_to_the_global_one() {
    let bus = EventBus::builder()
        .pool_name("metrics-test-global")
        .build()
        .unwrap();
    bus.on("x", |_ctx| async { Ok(()) }).unwrap();
    let _: Vec<Error> = bus.emit("x", ()).collect().await;
    bus.wait_for_idle().await;
    let text = MetricsRegistry::global().encode();
    assert_eq!(
        value(
            &text,
            "soiree_pool_tasks_completed_total{pool=\"metrics-test-global\"} "
        ),
        Some(1),
        "{text}"
    );
}

#[test]
fn a_name_registered_with_another_type_does_not_panic() {
    let registry = MetricsRegistry::new();
    let counter: Counter = registry.metric("my_metric", "a counter", Counter::default);
    counter.inc();
    // Same name and type: the same metric.
    let again: Counter = registry.metric("my_metric", "a counter", Counter::default);
    assert_eq!(again.get(), 1);
    // Same name, another type: a fresh metric, never a panic.
    let gauge: Gauge = registry.metric("my_metric", "a gauge", Gauge::default);
    gauge.set(5);
    let text = registry.encode();
    assert!(text.contains("my_metric_total 1"), "{text}");
    assert_eq!(text.matches("# TYPE my_metric").count(), 1, "{text}");
}

#[test]
fn user_metrics_can_join_the_registry() {
    let registry = MetricsRegistry::new();
    let mine = Counter::<u64>::default();
    registry.with_registry(|r| r.register("app_requests", "requests", mine.clone()));
    mine.inc_by(3);
    assert!(registry.encode().contains("app_requests_total 3"));
}
