//! Listener limits in one process: `max_concurrent`, `max_concurrent_per_key`
//! and `rate` bound the runs; a run waiting on a limit holds no worker and
//! starves nobody.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use soiree::{EventBus, EventContext, ListenerBinding, MemoryStore};
use tokio::sync::Notify;
use tokio::time::{Instant, timeout};

/// Runs in flight now, and the most seen.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
    done: AtomicUsize,
}

impl InFlight {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
    }
}

const BOUND: Duration = Duration::from_secs(30);

#[tokio::test(start_paused = true)]
async fn max_concurrent_bounds_the_runs_at_once() {
    let bus = EventBus::builder().workers(8).build().unwrap();
    let flight = Arc::new(InFlight::default());
    let seen = Arc::clone(&flight);
    ListenerBinding::new("job.run", move |_ctx: EventContext| {
        let seen = Arc::clone(&seen);
        async move {
            seen.enter();
            tokio::time::sleep(Duration::from_millis(10)).await;
            seen.leave();
            Ok(())
        }
    })
    .max_concurrent(2)
    .register(&bus)
    .unwrap();
    for n in 0..20 {
        bus.emit("job.run", n).detach();
    }
    timeout(BOUND, bus.wait_for_idle()).await.expect("idle");
    assert_eq!(flight.done.load(Ordering::SeqCst), 20, "every run ran");
    assert_eq!(
        flight.max.load(Ordering::SeqCst),
        2,
        "at most 2 at once, and 2 reached"
    );
    bus.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn max_concurrent_per_key_bounds_each_key_alone() {
    let bus = EventBus::builder().workers(8).build().unwrap();
    let per_key: Arc<Mutex<HashMap<String, (usize, usize)>>> = Arc::default();
    let all = Arc::new(InFlight::default());
    let (keys, flight) = (Arc::clone(&per_key), Arc::clone(&all));
    ListenerBinding::new("invoice.issued", move |ctx: EventContext| {
        let (keys, flight) = (Arc::clone(&keys), Arc::clone(&flight));
        async move {
            let tenant = ctx.property_str("tenant").unwrap_or_default();
            {
                let mut keys = keys.lock().unwrap();
                let (now, max) = keys.entry(tenant.clone()).or_default();
                *now += 1;
                *max = (*max).max(*now);
            }
            flight.enter();
            tokio::time::sleep(Duration::from_millis(10)).await;
            flight.leave();
            keys.lock().unwrap().get_mut(&tenant).unwrap().0 -= 1;
            Ok(())
        }
    })
    .max_concurrent_per_key("tenant", 1)
    .register(&bus)
    .unwrap();
    for n in 0..30 {
        let event = soiree::Event::new("invoice.issued", n);
        event.properties().set("tenant", ["a", "b", "c"][n % 3]);
        bus.emit("invoice.issued", event).detach();
    }
    timeout(BOUND, bus.wait_for_idle()).await.expect("idle");
    assert_eq!(all.done.load(Ordering::SeqCst), 30);
    let keys = per_key.lock().unwrap().clone();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.values().all(|(_, max)| *max == 1),
        "one run per key at once: {keys:?}"
    );
    assert_eq!(
        all.max.load(Ordering::SeqCst),
        3,
        "the keys ran side by side"
    );
    bus.close().await.unwrap();
}

/// Under `rate(4, 1 s)` runs start 250 ms apart: no window of a second
/// holds more than 4 starts (on tokio's paused clock: no machine speed in it).
#[tokio::test(start_paused = true)]
async fn rate_spaces_the_runs_so_no_period_holds_more_than_count() {
    let bus = EventBus::builder().workers(4).build().unwrap();
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = Arc::clone(&starts);
    ListenerBinding::new("sms.send", move |_ctx: EventContext| {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().unwrap().push(Instant::now());
            Ok(())
        }
    })
    .rate(4, Duration::from_secs(1))
    .register(&bus)
    .unwrap();
    let begun = Instant::now();
    for n in 0..10 {
        bus.emit("sms.send", n).detach();
    }
    timeout(BOUND, bus.wait_for_idle()).await.expect("idle");
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 10, "every run ran");
    assert!(
        starts
            .windows(5)
            .all(|w| w[4] - w[0] >= Duration::from_secs(1)),
        "5 starts within a second: {:?}",
        starts.iter().map(|t| *t - begun).collect::<Vec<_>>()
    );
    // Windows [k s, (k+1) s) from the first start: 4, 4, then the last 2.
    let per_window = |k: u32| {
        starts
            .iter()
            .filter(|t| {
                let at = **t - starts[0];
                at >= Duration::from_secs(k.into()) && at < Duration::from_secs((k + 1).into())
            })
            .count()
    };
    assert_eq!([per_window(0), per_window(1), per_window(2)], [4, 4, 2]);
    bus.close().await.unwrap();
}

/// A limited listener whose one run hangs has a backlog; meanwhile the
/// listener after it on the same events, and a listener of other events,
/// handle theirs all, on two workers — all but the hung event's: listeners
/// of one event run in order, so that one waits for the hung run itself.
async fn limited_listener_starves_nobody(bus: EventBus) {
    let gate = Arc::new(Notify::new());
    let limited = Arc::new(AtomicUsize::new(0));
    let same = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(AtomicUsize::new(0));
    let (g, l) = (Arc::clone(&gate), Arc::clone(&limited));
    ListenerBinding::new("order.placed", move |_ctx: EventContext| {
        let (gate, limited) = (Arc::clone(&g), Arc::clone(&l));
        async move {
            if limited.fetch_add(1, Ordering::SeqCst) == 0 {
                gate.notified().await;
            }
            Ok(())
        }
    })
    .named("slow")
    .max_concurrent(1)
    .register(&bus)
    .unwrap();
    let s = Arc::clone(&same);
    bus.on_named("fast", "order.placed", move |_ctx| {
        let same = Arc::clone(&s);
        async move {
            same.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .unwrap();
    let o = Arc::clone(&other);
    bus.on_named("other", "user.created", move |_ctx| {
        let other = Arc::clone(&o);
        async move {
            other.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();
    for n in 0..50 {
        let mut emission = bus.emit("order.placed", n);
        timeout(BOUND, emission.persisted())
            .await
            .expect("emit")
            .unwrap();
        emission.detach();
    }
    for n in 0..20 {
        let mut emission = bus.emit("user.created", n);
        timeout(BOUND, emission.persisted())
            .await
            .expect("emit")
            .unwrap();
        emission.detach();
    }
    let all_handled = async {
        while same.load(Ordering::SeqCst) < 49 || other.load(Ordering::SeqCst) < 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    timeout(BOUND, all_handled)
        .await
        .expect("the other listeners handled every event while the limited one hung");
    assert_eq!(
        limited.load(Ordering::SeqCst),
        1,
        "the limited listener ran once (it hangs)"
    );
    assert_eq!(
        same.load(Ordering::SeqCst),
        49,
        "the hung event's next listener waits"
    );
    gate.notify_one();
    let drained = async {
        while limited.load(Ordering::SeqCst) < 50 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    timeout(BOUND, drained)
        .await
        .expect("the backlog drains once the run returns");
    assert_eq!(same.load(Ordering::SeqCst), 50);
    timeout(BOUND, bus.wait_for_idle()).await.expect("idle");
    timeout(BOUND, bus.close()).await.expect("close").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_listener_starves_nobody_in_process() {
    limited_listener_starves_nobody(EventBus::builder().workers(2).build().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_listener_starves_nobody_on_a_queue() {
    let bus = EventBus::builder()
        .workers(2)
        .store(MemoryStore::queue())
        .build()
        .unwrap();
    limited_listener_starves_nobody(bus).await;
}

/// Two buses on one memory store share the limit: the store's slots bound
/// the runs of both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buses_sharing_a_store_share_the_limit() {
    let store = Arc::new(MemoryStore::queue());
    let flight = Arc::new(InFlight::default());
    let mut buses = Vec::new();
    for _ in 0..2 {
        let bus = EventBus::builder()
            .workers(4)
            .shared_store(Arc::clone(&store) as Arc<dyn soiree::EventStore>)
            .build()
            .unwrap();
        let seen = Arc::clone(&flight);
        ListenerBinding::new("job.run", move |_ctx: EventContext| {
            let seen = Arc::clone(&seen);
            async move {
                seen.enter();
                tokio::time::sleep(Duration::from_millis(5)).await;
                seen.leave();
                Ok(())
            }
        })
        .named("runner")
        .max_concurrent(1)
        .register(&bus)
        .unwrap();
        bus.start().unwrap();
        buses.push(bus);
    }
    for n in 0..30 {
        let mut emission = buses[n % 2].emit("job.run", n);
        timeout(BOUND, emission.persisted())
            .await
            .expect("emit")
            .unwrap();
        emission.detach();
    }
    let drained = async {
        while flight.done.load(Ordering::SeqCst) < 30 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    timeout(BOUND, drained).await.expect("every run ran");
    assert_eq!(
        flight.max.load(Ordering::SeqCst),
        1,
        "one run at once over both buses"
    );
    for bus in buses {
        timeout(BOUND, bus.close()).await.expect("close").unwrap();
    }
}

#[tokio::test]
async fn a_limit_of_zero_is_refused() {
    let bus = EventBus::new();
    let err = ListenerBinding::new("t", |_ctx| async { Ok(()) })
        .max_concurrent(0)
        .register(&bus)
        .unwrap_err();
    assert!(matches!(err, soiree::Error::InvalidConfig(_)), "{err}");
    let err = ListenerBinding::new("t", |_ctx| async { Ok(()) })
        .rate(0, Duration::from_secs(1))
        .register(&bus)
        .unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
}

/// The time parked runs waited is in `soiree_listener_limit_wait_seconds`:
/// with `max_concurrent(1)` and 3 runs of 1 s each (paused clock), two
/// runs were parked, for 1 s and 2 s.
#[tokio::test(start_paused = true)]
async fn waits_on_a_limit_are_measured() {
    let registry = soiree::MetricsRegistry::new();
    let bus = EventBus::builder()
        .workers(4)
        .pool_name("limited")
        .metrics_registry(registry.clone())
        .build()
        .unwrap();
    ListenerBinding::new("job.run", |_ctx: EventContext| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    })
    .named("one-at-a-time")
    .max_concurrent(1)
    .register(&bus)
    .unwrap();
    for n in 0..3 {
        bus.emit("job.run", n).detach();
    }
    timeout(BOUND, bus.wait_for_idle()).await.expect("idle");
    let text = registry.encode();
    let line = |suffix: &str| {
        text.lines()
            .find(|line| {
                line.starts_with(&format!("soiree_listener_limit_wait_seconds_{suffix}"))
                    && line.contains("listener=\"one-at-a-time\"")
            })
            .unwrap_or_else(|| panic!("no {suffix} line in:\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    assert_eq!(line("count"), 2.0, "two runs were parked");
    let waited = line("sum");
    assert!(
        (2.9..=3.1).contains(&waited),
        "they waited 1 s + 2 s, not {waited}"
    );
    bus.close().await.unwrap();
}
