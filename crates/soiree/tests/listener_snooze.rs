//! Snoozes: a listener returning `Snooze` runs again after the delay, not
//! as a failure and not as an attempt; results record it as snoozed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use soiree::{Error, EventBus, EventQueue, MemoryStore, RetryPolicy, Snooze};
use tokio::time::Instant;

/// A listener that snoozes `times` times for `delay`, then succeeds;
/// returns the (instant, attempt) of every call.
fn snoozing(bus: &EventBus, times: usize, delay: Duration) -> Arc<Mutex<Vec<(Instant, u32)>>> {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    bus.on_named("builder", "report.build", move |ctx| {
        let seen = Arc::clone(&seen);
        async move {
            let mut calls = seen.lock().unwrap();
            calls.push((Instant::now(), ctx.attempt()));
            if calls.len() <= times {
                return Err(Snooze::after(delay).into());
            }
            Ok(())
        }
    })
    .unwrap();
    calls
}

#[tokio::test(start_paused = true)]
async fn a_snooze_runs_the_listener_again_after_the_delay_as_the_same_attempt() {
    // No retries at all: a snooze must not need one.
    let bus = EventBus::builder()
        .retry(RetryPolicy::attempts(1).unwrap())
        .build()
        .unwrap();
    let delay = Duration::from_secs(60);
    let calls = snoozing(&bus, 2, delay);
    let errors: Vec<Error> = bus.emit("report.build", ()).collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|(_, attempt)| *attempt == 1), "{calls:?}");
    for pair in calls.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= delay, "re-run before the delay");
    }
}

#[tokio::test(start_paused = true)]
async fn results_record_each_snooze_as_snoozed_then_the_success() {
    let store = Arc::new(MemoryStore::new());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .build()
        .unwrap();
    let _calls = snoozing(&bus, 1, Duration::from_secs(5));
    let errors: Vec<Error> = bus.emit("report.build", ()).collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    let outcomes: Vec<&str> = store.results().iter().map(|r| r.outcome()).collect();
    assert_eq!(outcomes, ["snoozed", "succeeded"]);
    let results = store.results();
    assert!(results[0].is_snoozed() && !results[0].succeeded());
    assert_eq!((results[0].attempt, results[1].attempt), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_listener_that_snoozes_forever_fails_after_the_limit() {
    let bus = EventBus::new();
    let calls = snoozing(&bus, usize::MAX, Duration::from_millis(1));
    let errors: Vec<Error> = bus.emit("report.build", ()).collect().await;
    let [Error::Listener { source, .. }] = errors.as_slice() else {
        panic!("expected one listener error, got {errors:?}");
    };
    assert!(source.is::<Snooze>());
    assert_eq!(
        calls.lock().unwrap().len(),
        Snooze::MAX_PER_RUN as usize + 1,
        "nothing is retried forever"
    );
}

#[tokio::test(start_paused = true)]
async fn a_snooze_cut_short_by_close_is_the_listeners_error() {
    let bus = EventBus::new();
    let _calls = snoozing(&bus, usize::MAX, Duration::from_secs(3600));
    let emission = bus.emit("report.build", ());
    tokio::time::sleep(Duration::from_secs(1)).await;
    bus.close().await.unwrap();
    let errors: Vec<Error> = emission.collect().await;
    assert!(
        matches!(errors.as_slice(), [Error::Listener { source, .. }] if source.is::<Snooze>()),
        "{errors:?}"
    );
}

/// The `soiree_listener_calls_total` count of the `builder` listener with
/// this outcome (0 when the series is absent).
fn calls_with_outcome(registry: &soiree::MetricsRegistry, outcome: &str) -> u64 {
    let outcome = format!(r#"outcome="{outcome}""#);
    registry
        .encode()
        .lines()
        .find(|line| {
            line.starts_with("soiree_listener_calls_total")
                && line.contains(r#"listener="builder""#)
                && line.contains(&outcome)
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn the_listener_metrics_count_a_snooze_as_snoozed_not_as_an_error() {
    let registry = soiree::MetricsRegistry::new();
    let bus = EventBus::builder()
        .metrics_registry(registry.clone())
        .build()
        .unwrap();
    let _calls = snoozing(&bus, 2, Duration::from_secs(1));
    let errors: Vec<Error> = bus.emit("report.build", ()).collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(calls_with_outcome(&registry, "snoozed"), 2);
    assert_eq!(calls_with_outcome(&registry, "error"), 0);
    assert_eq!(calls_with_outcome(&registry, "ok"), 1);
}

/// A counting listener named `name` on `report.build`; returns its count.
fn counting(bus: &EventBus, name: &str, fail: bool) -> Arc<Mutex<u32>> {
    let count = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&count);
    bus.on_named(name, "report.build", move |_ctx| {
        let seen = Arc::clone(&seen);
        async move {
            *seen.lock().unwrap() += 1;
            if fail {
                return Err("the printer is on fire".into());
            }
            Ok(())
        }
    })
    .unwrap();
    count
}

/// Polls (on the paused clock) until `done`, at most `limit`.
async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done()
}

#[tokio::test(start_paused = true)]
async fn a_long_snooze_of_a_queue_delivery_is_kept_by_the_store_and_skips_what_succeeded() {
    let store = Arc::new(MemoryStore::queue());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .workers(1)
        .build()
        .unwrap();
    let before = counting(&bus, "before", false);
    let delay = Duration::from_secs(3600);
    let calls = snoozing(&bus, 1, delay);
    let after = counting(&bus, "after", false);
    bus.start().unwrap();
    bus.emit("report.build", ()).persisted().await.unwrap();
    // The listener after the snoozer runs at once: the snooze holds
    // neither the worker nor the listeners after it.
    assert!(
        until(Duration::from_secs(60), || *after.lock().unwrap() == 1).await,
        "the listener after a long snooze waited for it"
    );
    assert_eq!(calls.lock().unwrap().len(), 1);
    assert_eq!(
        store.backlog().await.unwrap(),
        1,
        "the deferred delivery left the queue"
    );
    assert!(
        until(2 * delay, || calls.lock().unwrap().len() == 2).await,
        "the snoozed listener never ran again"
    );
    let calls = calls.lock().unwrap().clone();
    assert!(
        calls[1].0 - calls[0].0 >= delay,
        "re-run before the snooze ended"
    );
    assert_eq!(
        (calls[0].1, calls[1].1),
        (1, 1),
        "a snooze counted as an attempt"
    );
    bus.wait_for_idle().await;
    assert_eq!(
        (*before.lock().unwrap(), *after.lock().unwrap()),
        (1, 1),
        "listeners that succeeded ran again when the snoozed delivery came back"
    );
    assert!(store.dead_letters().is_empty());
    assert_eq!(store.backlog().await.unwrap(), 0);
    bus.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failure_of_another_listener_wins_over_a_snooze_kept_by_the_store() {
    let store = Arc::new(MemoryStore::queue());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .retry(RetryPolicy::attempts(1).unwrap())
        .build()
        .unwrap();
    let calls = snoozing(&bus, 1, Duration::from_secs(3600));
    let failed = counting(&bus, "failing", true);
    bus.start().unwrap();
    bus.emit("report.build", ()).persisted().await.unwrap();
    assert!(
        until(Duration::from_secs(60), || store.dead_letters().len() == 1).await,
        "the failed delivery was not failed"
    );
    assert_eq!(calls.lock().unwrap().len(), 1);
    assert_eq!(*failed.lock().unwrap(), 1);
    assert_eq!(
        store.backlog().await.unwrap(),
        0,
        "the failed delivery was deferred"
    );
    bus.close().await.unwrap();
}
