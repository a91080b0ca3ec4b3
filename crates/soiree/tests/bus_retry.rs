//! Retries: attempts counted by `ctx.attempt()`, delays from the backoff
//! (driven by tokio's paused clock), one final error, and async sleeps that
//! leave the workers free.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use soiree::{Backoff, Error, EventBus, MemoryStore, Permanent, RetryPolicy, permanent};
use tokio::sync::Notify;
use tokio::time::Instant;

/// A listener on `pattern` that fails until attempt `succeed_on` (never when
/// 0) and records each attempt's number and (virtual) start time.
fn flaky(bus: &EventBus, pattern: &str, succeed_on: u32) -> Arc<Mutex<Vec<(u32, Instant)>>> {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&attempts);
    bus.on_named("flaky", pattern, move |ctx| {
        let attempt = ctx.attempt();
        log.lock().unwrap().push((attempt, Instant::now()));
        async move {
            if attempt == succeed_on {
                Ok(())
            } else {
                Err(format!("attempt {attempt} failed").into())
            }
        }
    })
    .unwrap();
    attempts
}

fn gaps(attempts: &[(u32, Instant)]) -> Vec<Duration> {
    attempts.windows(2).map(|w| w[1].1 - w[0].1).collect()
}

fn assert_gap(gap: Duration, expected: Duration) {
    // The paused clock jumps straight to each timer, in whole milliseconds.
    assert!(
        gap >= expected && gap < expected + Duration::from_millis(5),
        "waited {gap:?}, expected {expected:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn success_on_the_third_attempt_yields_no_error() {
    let handled = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&handled);
    let bus = EventBus::builder()
        .retry(
            RetryPolicy::attempts(5)
                .unwrap()
                .with_backoff(Backoff::constant(Duration::from_secs(2))),
        )
        .error_handler(move |_event, err| {
            count.fetch_add(1, Ordering::SeqCst);
            Some(err)
        })
        .build()
        .unwrap();
    let attempts = flaky(&bus, "job.run", 3);
    let errors: Vec<Error> = bus.emit("job.run", ()).collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    let attempts = attempts.lock().unwrap().clone();
    let numbers: Vec<u32> = attempts.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [1, 2, 3]);
    for gap in gaps(&attempts) {
        assert_gap(gap, Duration::from_secs(2));
    }
    assert_eq!(
        handled.load(Ordering::SeqCst),
        0,
        "intermediate failures are not reported"
    );
}

#[tokio::test(start_paused = true)]
async fn exhausting_the_attempts_yields_one_listener_error() {
    let handled = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&handled);
    let bus = EventBus::builder()
        .retry(
            RetryPolicy::attempts(4).unwrap().with_backoff(
                Backoff::exponential(Duration::from_millis(100), Duration::from_millis(300), 2.0)
                    .unwrap()
                    .with_jitter(false),
            ),
        )
        .error_handler(move |_event, err| {
            count.fetch_add(1, Ordering::SeqCst);
            Some(err)
        })
        .build()
        .unwrap();
    let attempts = flaky(&bus, "job.run", 0);
    let errors: Vec<Error> = bus.emit("job.run", ()).collect().await;
    match errors.as_slice() {
        [
            Error::Listener {
                listener_id,
                source,
                ..
            },
        ] => {
            assert_eq!(listener_id, "flaky");
            assert_eq!(
                source.to_string(),
                "attempt 4 failed",
                "the last attempt's error"
            );
        }
        other => panic!("expected one listener error, got {other:?}"),
    }
    assert_eq!(
        handled.load(Ordering::SeqCst),
        1,
        "the error handler saw the final error once"
    );
    let attempts = attempts.lock().unwrap().clone();
    assert_eq!(
        attempts.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    // 100 ms, doubled, capped at 300 ms.
    let expected = [100, 200, 300].map(Duration::from_millis);
    for (gap, expected) in gaps(&attempts).into_iter().zip(expected) {
        assert_gap(gap, expected);
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_policy_a_listener_runs_once() {
    let bus = EventBus::new();
    let attempts = flaky(&bus, "job.run", 2);
    let errors: Vec<Error> = bus.emit("job.run", ()).collect().await;
    assert_eq!(errors.len(), 1);
    assert_eq!(attempts.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn each_listener_gets_its_own_attempts() {
    let bus = EventBus::builder()
        .retry(
            RetryPolicy::attempts(3)
                .unwrap()
                .with_backoff(Backoff::constant(Duration::from_millis(10))),
        )
        .build()
        .unwrap();
    let first = flaky(&bus, "a.b", 2);
    let second = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&second);
    bus.on("a.*", move |ctx| {
        log.lock().unwrap().push(ctx.attempt());
        async { Ok(()) }
    })
    .unwrap();
    let errors: Vec<Error> = bus.emit("a.b", ()).collect().await;
    assert!(errors.is_empty());
    assert_eq!(first.lock().unwrap().len(), 2);
    assert_eq!(
        *second.lock().unwrap(),
        [1],
        "the next listener starts at attempt 1"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_sleep_does_not_hold_up_other_emissions() {
    // Two workers: one emission waits 10 s (virtual) to retry while another
    // completes, without the clock moving: the wait is an async sleep.
    let bus = EventBus::builder()
        .workers(2)
        .retry(
            RetryPolicy::attempts(2)
                .unwrap()
                .with_backoff(Backoff::constant(Duration::from_secs(10))),
        )
        .build()
        .unwrap();
    let first_attempt = Arc::new(Notify::new());
    let attempts = Arc::new(AtomicUsize::new(0));
    {
        let (first_attempt, attempts) = (Arc::clone(&first_attempt), Arc::clone(&attempts));
        bus.on("slow", move |ctx| {
            attempts.fetch_add(1, Ordering::SeqCst);
            if ctx.attempt() == 1 {
                first_attempt.notify_one();
            }
            let attempt = ctx.attempt();
            async move {
                if attempt == 1 {
                    Err("try again later".into())
                } else {
                    Ok(())
                }
            }
        })
        .unwrap();
    }
    let fast_ran = Arc::new(AtomicUsize::new(0));
    {
        let fast_ran = Arc::clone(&fast_ran);
        bus.on("fast", move |_ctx| {
            fast_ran.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .unwrap();
    }

    let start = Instant::now();
    let slow = bus.emit("slow", ());
    first_attempt.notified().await;
    let errors: Vec<Error> = bus.emit("fast", ()).collect().await;
    assert!(errors.is_empty());
    assert_eq!(fast_ran.load(Ordering::SeqCst), 1);
    assert!(
        Instant::now() - start < Duration::from_secs(10),
        "the other emission did not wait for the retry"
    );
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "the retry is still waiting"
    );

    let errors: Vec<Error> = slow.collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert!(Instant::now() - start >= Duration::from_secs(10));
}

#[test]
fn policies_and_backoffs_reject_bad_settings() {
    assert!(matches!(
        RetryPolicy::attempts(0),
        Err(Error::InvalidConfig(_))
    ));
    assert_eq!(RetryPolicy::never().max_attempts(), 1);
    assert_eq!(RetryPolicy::default().max_attempts(), 1);
    assert!(matches!(
        Backoff::exponential(Duration::from_secs(1), Duration::from_secs(2), 0.5),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        Backoff::exponential(Duration::from_secs(1), Duration::from_secs(2), f32::NAN),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        Backoff::exponential(Duration::from_secs(3), Duration::from_secs(2), 2.0),
        Err(Error::InvalidConfig(_))
    ));
    let constant: Vec<Duration> = Backoff::constant(Duration::from_millis(7))
        .delays()
        .take(3)
        .collect();
    assert_eq!(constant, [Duration::from_millis(7); 3]);
    let none: Vec<Duration> = Backoff::none().delays().take(2).collect();
    assert_eq!(none, [Duration::ZERO; 2]);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_context_stops_the_retries() {
    use tokio_util::sync::CancellationToken;
    let bus = EventBus::builder()
        .retry(
            RetryPolicy::attempts(10)
                .unwrap()
                .with_backoff(Backoff::constant(Duration::from_secs(1))),
        )
        .build()
        .unwrap();
    let token = CancellationToken::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    {
        let (token, attempts) = (token.clone(), Arc::clone(&attempts));
        bus.on("x", move |_ctx| {
            // Cancel during the second attempt.
            if attempts.fetch_add(1, Ordering::SeqCst) == 1 {
                token.cancel();
            }
            async { Err("still failing".into()) }
        })
        .unwrap();
    }
    let context = soiree::Context::new().with_cancellation(token);
    let errors: Vec<Error> = bus.emit_with_context(context, "x", ()).collect().await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "no attempt after the cancellation"
    );
    assert!(
        matches!(errors.as_slice(), [Error::Listener { .. }]),
        "{errors:?}"
    );
}

/// A bus with five attempts, a store, and a listener `fails` on `job.run`
/// that fails every attempt, permanently when `permanent_error`; returns the
/// bus, its store and the listener's attempt count.
fn always_failing(permanent_error: bool) -> (EventBus, Arc<MemoryStore>, Arc<AtomicUsize>) {
    let store = Arc::new(MemoryStore::new());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .retry(
            RetryPolicy::attempts(5)
                .unwrap()
                .with_backoff(Backoff::constant(Duration::from_secs(1))),
        )
        .build()
        .unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&attempts);
    bus.on_named("fails", "job.run", move |_ctx| {
        count.fetch_add(1, Ordering::SeqCst);
        async move {
            if permanent_error {
                Err(permanent("the job is gone"))
            } else {
                Err("try again".into())
            }
        }
    })
    .unwrap();
    (bus, store, attempts)
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_not_retried() {
    let (bus, store, attempts) = always_failing(true);
    let start = Instant::now();
    let errors: Vec<Error> = bus.emit("job.run", ()).collect().await;
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "one attempt of five");
    assert_eq!(Instant::now(), start, "no backoff waited");
    match errors.as_slice() {
        [
            Error::Listener {
                listener_id,
                source,
                ..
            },
        ] => {
            assert_eq!(listener_id, "fails");
            let permanent = source
                .downcast_ref::<Permanent>()
                .expect("the source is the Permanent");
            assert_eq!(permanent.to_string(), "the job is gone");
        }
        other => panic!("expected one listener error, got {other:?}"),
    }
    let results = store.results();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].handler_id, "fails");
    assert_eq!(results[0].attempt, 1);
    assert_eq!(results[0].error.as_deref(), Some("the job is gone"));
}

#[tokio::test(start_paused = true)]
async fn a_transient_error_is_still_retried() {
    let (bus, store, attempts) = always_failing(false);
    let errors: Vec<Error> = bus.emit("job.run", ()).collect().await;
    assert_eq!(attempts.load(Ordering::SeqCst), 5);
    match errors.as_slice() {
        [Error::Listener { source, .. }] => {
            assert!(!source.is::<Permanent>());
            assert_eq!(source.to_string(), "try again");
        }
        other => panic!("expected one listener error, got {other:?}"),
    }
    let attempts: Vec<u32> = store.results().iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4, 5]);
}

#[test]
fn permanent_is_transparent() {
    let err = Permanent::new(std::io::Error::other("disk gone"));
    assert_eq!(err.to_string(), "disk gone");
    assert!(err.get_ref().is::<std::io::Error>());
    let wrapped = permanent(err);
    let permanent = wrapped.downcast::<Permanent>().unwrap();
    assert!(!permanent.get_ref().is::<Permanent>(), "not nested");
    assert!(permanent.into_inner().is::<std::io::Error>());
}
