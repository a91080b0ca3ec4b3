//! An emission's own failure — a store error, a serialization error, a full
//! queue — is reported by `persisted()` and the emission whatever the error
//! handler answers, and a detached emission's failure reaches the handler.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use soiree::{
    Delivery, Error, EventBus, EventQueue, EventStore, MemoryStore, MetricsRegistry, Result,
    StoredEvent, StoredResult, async_trait,
};
use tokio::sync::Semaphore;

const LIMIT: Duration = Duration::from_secs(20);

/// A store whose writes all fail; with `queued`, a queue store.
#[derive(Debug)]
struct Broken {
    queued: bool,
}

fn disk_on_fire() -> Error {
    Error::store("disk on fire at /var/lib/events")
}

#[async_trait]
impl EventStore for Broken {
    async fn save_event(&self, _event: &StoredEvent) -> Result<()> {
        Err(disk_on_fire())
    }

    async fn save_handler_result(&self, _result: &StoredResult) -> Result<()> {
        Err(disk_on_fire())
    }

    fn queue(&self) -> Option<&dyn EventQueue> {
        self.queued.then_some(self as &dyn EventQueue)
    }
}

#[async_trait]
impl EventQueue for Broken {
    async fn enqueue(&self, _event: &StoredEvent) -> Result<()> {
        Err(disk_on_fire())
    }

    async fn dequeue(&self, _max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        tokio::time::sleep(wait).await;
        Ok(Vec::new())
    }

    async fn ack(&self, _receipts: &[String]) -> Result<()> {
        Ok(())
    }

    async fn backlog(&self) -> Result<u64> {
        Ok(0)
    }
}

/// The errors an error handler saw, as text; it swallows every one.
type Seen = Arc<Mutex<Vec<String>>>;

fn swallowing(builder: soiree::EventBusBuilder) -> (EventBus, Seen) {
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    let bus = builder
        .error_handler(move |_event, err| {
            s.lock().unwrap().push(format!("{err:?}"));
            None
        })
        .build()
        .unwrap();
    (bus, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_is_reported_whatever_the_error_handler_does() {
    for queued in [false, true] {
        let (bus, seen) = swallowing(EventBus::builder().store(Broken { queued }));
        bus.on("job.run", |_ctx| async { Ok(()) }).unwrap();
        bus.start().unwrap();

        let mut emission = bus.emit("job.run", 1);
        let persisted = tokio::time::timeout(LIMIT, emission.persisted())
            .await
            .unwrap();
        match persisted {
            Err(Error::Store(source)) => {
                assert!(source.to_string().contains("disk on fire"), "{source}");
            }
            other => panic!("queued={queued}: {other:?}"),
        }

        let errors: Vec<Error> = tokio::time::timeout(LIMIT, bus.emit("job.run", 2).collect())
            .await
            .unwrap();
        assert!(
            matches!(errors.as_slice(), [Error::Store(_)]),
            "queued={queued}: {errors:?}"
        );
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "the handler is shown each: {seen:?}");
        assert!(seen.iter().all(|err| err.starts_with("Store(")), "{seen:?}");
        bus.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serialization_error_is_reported_whatever_the_error_handler_does() {
    for store in [MemoryStore::new(), MemoryStore::queue()] {
        let (bus, seen) = swallowing(EventBus::builder().store(store));
        bus.on("m.read", |_ctx| async { Ok(()) }).unwrap();
        bus.start().unwrap();
        let mut emission = bus.emit("m.read", f64::NAN);
        let persisted = tokio::time::timeout(LIMIT, emission.persisted())
            .await
            .unwrap();
        assert!(
            matches!(persisted, Err(Error::Serialization(_))),
            "{persisted:?}"
        );
        let errors: Vec<Error> =
            tokio::time::timeout(LIMIT, bus.emit("m.read", f64::INFINITY).collect())
                .await
                .unwrap();
        assert!(
            matches!(errors.as_slice(), [Error::Serialization(_)]),
            "{errors:?}"
        );
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen.iter().all(|err| err.starts_with("Serialization(")),
            "{seen:?}"
        );
        bus.close().await.unwrap();
    }
}

/// A bus of one worker and a queue of two whose `slow` listener waits for
/// a permit of the gate; its error handler swallows and records.
fn gated(registry: &MetricsRegistry) -> (EventBus, Seen, Arc<Semaphore>, Arc<AtomicUsize>) {
    let (bus, seen) = swallowing(
        EventBus::builder()
            .workers(1)
            .queue_capacity(2)
            .metrics_registry(registry.clone())
            .pool_name("gated"),
    );
    let gate = Arc::new(Semaphore::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let (g, r) = (Arc::clone(&gate), Arc::clone(&ran));
    bus.on("slow", move |_ctx| {
        let (gate, ran) = (Arc::clone(&g), Arc::clone(&r));
        async move {
            gate.acquire().await.unwrap().forget();
            ran.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .unwrap();
    (bus, seen, gate, ran)
}

fn rejected(registry: &MetricsRegistry) -> usize {
    let text = registry.encode();
    text.lines()
        .find_map(|line| line.strip_prefix("soiree_pool_tasks_rejected_total{pool=\"gated\"} "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rejected counter in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_emit_refused_for_a_full_queue_reaches_the_error_handler() {
    let registry = MetricsRegistry::new();
    let (bus, seen, gate, ran) = gated(&registry);
    for n in 0..10 {
        bus.emit("slow", n).detach();
    }
    let refused = rejected(&registry);
    assert!(
        refused >= 7,
        "one running and two queued at most: {refused}"
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), refused, "{seen:?}");
        assert!(seen.iter().all(|err| err == "QueueFull"), "{seen:?}");
    }
    gate.add_permits(10);
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 10 - refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_emit_refused_for_a_full_queue_yields_queue_full_whatever_the_handler_does() {
    let registry = MetricsRegistry::new();
    let (bus, seen, gate, _) = gated(&registry);
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for n in 0..10 {
        let emission = bus.emit("slow", n);
        if emission.is_finished() {
            refused.push(emission);
        } else {
            accepted.push(emission);
        }
    }
    assert!(refused.len() >= 7, "refused {}", refused.len());
    let mut persisted = refused.pop().unwrap();
    assert!(matches!(persisted.persisted().await, Err(Error::QueueFull)));
    for emission in refused.drain(..) {
        let errors: Vec<Error> = emission.collect().await;
        assert!(
            matches!(errors.as_slice(), [Error::QueueFull]),
            "{errors:?}"
        );
    }
    assert_eq!(seen.lock().unwrap().len(), rejected(&registry));
    gate.add_permits(10);
    for emission in accepted {
        let errors: Vec<Error> = tokio::time::timeout(LIMIT, emission.collect())
            .await
            .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
    }
    bus.close().await.unwrap();
}
