//! Metrics for every listener (bounded labels: pool, pattern, listener id),
//! emits nobody hears, and pools that share a name.

use std::time::Duration;

use futures::StreamExt;
use soiree::{Backoff, EventBus, MetricsRegistry, RetryPolicy};

fn value(registry: &MetricsRegistry, metric: &str, labels: &[&str]) -> u64 {
    let text = registry.encode();
    text.lines()
        .find(|line| line.starts_with(metric) && labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {metric} with {labels:?} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_counts_its_outcomes_and_retries() {
    let registry = MetricsRegistry::new();
    let retry = RetryPolicy::attempts(3)
        .unwrap()
        .with_backoff(Backoff::constant(Duration::from_millis(1)));
    let bus = EventBus::builder()
        .metrics_registry(registry.clone())
        .pool_name("counted")
        .retry(retry)
        .build()
        .unwrap();
    bus.on_named("greeter", "user.*", |_ctx| async { Ok(()) })
        .unwrap();
    bus.on_named("flaky", "user.created", |_ctx| async { Err("down".into()) })
        .unwrap();
    bus.on_named("crasher", "user.deleted", |_ctx| async { panic!("boom") })
        .unwrap();
    for topic in ["user.created", "user.created", "user.deleted"] {
        let _: Vec<_> = bus.emit(topic, ()).collect().await;
    }
    let labels =
        |pattern: &'static str, listener: &'static str| [r#"pool="counted""#, pattern, listener];
    let calls = "soiree_listener_calls_total";
    let ok = |p, l| {
        let mut with = labels(p, l).to_vec();
        with.push(r#"outcome="ok""#);
        value(&registry, calls, &with)
    };
    assert_eq!(ok(r#"pattern="user.*""#, r#"listener="greeter""#), 3);
    let errors = value(
        &registry,
        calls,
        &[
            r#"listener="flaky""#,
            r#"pattern="user.created""#,
            r#"outcome="error""#,
        ],
    );
    assert_eq!(errors, 6, "3 attempts for each of 2 events");
    assert_eq!(
        value(
            &registry,
            "soiree_listener_retries_total",
            &[r#"listener="flaky""#]
        ),
        4
    );
    assert_eq!(
        value(
            &registry,
            calls,
            &[r#"listener="crasher""#, r#"outcome="panic""#]
        ),
        1,
        "a panic is not retried"
    );
    assert_eq!(
        value(
            &registry,
            "soiree_events_emitted_total",
            &[r#"pool="counted""#]
        ),
        3
    );
    // No raw topic ever becomes a label.
    assert!(!registry.encode().contains("topic="));
    bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emit_nobody_hears_is_counted() {
    let registry = MetricsRegistry::new();
    let bus = EventBus::builder()
        .metrics_registry(registry.clone())
        .pool_name("void")
        .build()
        .unwrap();
    bus.on("user.created", |_ctx| async { Ok(()) }).unwrap();
    let errors: Vec<_> = bus.emit("user.craeted", ()).collect().await;
    assert!(errors.is_empty());
    assert_eq!(
        value(
            &registry,
            "soiree_events_unrouted_total",
            &[r#"pool="void""#]
        ),
        1
    );
    bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_buses_with_one_name_do_not_share_series() {
    let registry = MetricsRegistry::new();
    let make = || {
        EventBus::builder()
            .metrics_registry(registry.clone())
            .pool_name("twin")
            .build()
            .unwrap()
    };
    let (first, second) = (make(), make());
    assert_eq!(first.metrics_label(), "twin");
    assert_eq!(second.metrics_label(), "twin-2");
    second.on("a", |_ctx| async { Ok(()) }).unwrap();
    let _: Vec<_> = second.emit("a", ()).collect().await;
    assert_eq!(
        value(
            &registry,
            "soiree_pool_tasks_completed_total",
            &[r#"pool="twin-2""#]
        ),
        1
    );
    assert_eq!(
        value(
            &registry,
            "soiree_pool_tasks_completed_total",
            &[r#"pool="twin""#]
        ),
        0
    );
    first.close().await.unwrap();
    second.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_timing_records_every_call() {
    let registry = MetricsRegistry::new();
    let bus = EventBus::builder()
        .metrics_registry(registry.clone())
        .pool_name("timed")
        .listener_timing(true)
        .build()
        .unwrap();
    bus.on_named("sleeper", "job.run", |_ctx| async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok(())
    })
    .unwrap();
    for i in 0..5 {
        let _: Vec<_> = bus.emit("job.run", i).collect().await;
    }
    assert_eq!(
        value(
            &registry,
            "soiree_listener_call_duration_seconds_count",
            &[r#"listener="sleeper""#]
        ),
        5
    );
    bus.close().await.unwrap();
}
