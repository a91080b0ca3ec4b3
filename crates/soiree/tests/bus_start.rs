//! A bus with a queue store delivers nothing until `start`: listeners
//! registered one by one, with awaits between them, all see a backlog that
//! was waiting in the store; forgetting to start, or registering after it,
//! is logged. (The shared check of a backlog handled by listeners registered
//! with awaits between them runs in `store_conformance.rs`.)

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use soiree::{Error, EventBus, EventQueue, MemoryStore};

const LIMIT: Duration = Duration::from_secs(20);

/// A consuming bus over `store`, built but not started.
fn consumer(store: &Arc<MemoryStore>) -> EventBus {
    EventBus::builder()
        .shared_store(store.clone())
        .poll_wait(Duration::from_millis(20))
        .build()
        .unwrap()
}

/// Queues `count` events on `store` through a bus that only emits.
async fn backlog_of(store: &Arc<MemoryStore>, count: usize) {
    let producer = EventBus::builder()
        .shared_store(store.clone())
        .consume(false)
        .build()
        .unwrap();
    for n in 0..count {
        producer
            .emit("order.paid", n)
            .persisted()
            .await
            .expect("queued");
    }
    producer.close().await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), count as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_delivered_before_start() {
    let store = Arc::new(MemoryStore::queue());
    let bus = consumer(&store);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    bus.on("job.run", move |_ctx| {
        r.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    })
    .unwrap();
    for n in 0..5 {
        bus.emit("job.run", n).persisted().await.unwrap();
    }
    // Several poll waits: an auto-started consumer would have taken them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(store.backlog().await.unwrap(), 5);
    bus.start().unwrap();
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .expect("idle in time");
    assert_eq!(runs.load(Ordering::SeqCst), 5);
    bus.close().await.unwrap();
}

#[tokio::test]
async fn start_is_idempotent_and_refused_on_a_closed_bus() {
    let store = Arc::new(MemoryStore::queue());
    let bus = consumer(&store);
    bus.start().unwrap();
    bus.start().unwrap();
    bus.close().await.unwrap();
    assert!(matches!(bus.start(), Err(Error::Closed)));
}

#[test]
fn start_outside_a_runtime_is_refused() {
    let bus = EventBus::builder()
        .store(MemoryStore::queue())
        .build()
        .unwrap();
    assert!(matches!(bus.start(), Err(Error::NoRuntime)));
}

#[tokio::test]
async fn start_does_nothing_on_a_bus_without_a_queue() {
    for bus in [
        EventBus::new(),
        EventBus::builder()
            .store(MemoryStore::new())
            .build()
            .unwrap(),
        EventBus::builder()
            .store(MemoryStore::queue())
            .consume(false)
            .build()
            .unwrap(),
    ] {
        bus.start().unwrap();
        bus.close().await.unwrap();
    }
}

/// Log lines written while `f` runs on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` on a current-thread runtime (so every task logs on this
/// thread) and returns the warnings it logged.
///
/// tracing caches whether a call site is wanted once per process, asking
/// the subscriber of the thread that reaches it first: a test of this
/// binary running on another thread with no subscriber would make this
/// one's warnings vanish (seen once under load). A global subscriber that
/// wants warnings (and writes them nowhere) keeps every call site wanted.
fn warnings_of<F: std::future::Future<Output = ()>>(f: impl FnOnce() -> F) -> String {
    static ANCHOR: std::sync::Once = std::sync::Once::new();
    ANCHOR.call_once(|| {
        let sink = tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .with_max_level(tracing::Level::WARN)
            .finish();
        tracing::subscriber::set_global_default(sink).expect("no other global subscriber");
        tracing::callsite::rebuild_interest_cache();
    });
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { tokio::time::timeout(LIMIT, f()).await })
            .expect("done in time");
    });
    String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn emitting_on_a_bus_never_started_warns_once() {
    let logs = warnings_of(|| async {
        let bus = consumer(&Arc::new(MemoryStore::queue()));
        bus.on("job.run", |_ctx| async { Ok(()) }).unwrap();
        for n in 0..3 {
            bus.emit("job.run", n).persisted().await.unwrap();
        }
        bus.close().await.unwrap();
    });
    assert_eq!(
        logs.matches("event queued on a bus that was never started")
            .count(),
        1,
        "{logs}"
    );
    assert!(logs.contains("closed without start()"), "{logs}");
}

#[test]
fn a_started_bus_and_a_producer_bus_do_not_warn() {
    let logs = warnings_of(|| async {
        let store = Arc::new(MemoryStore::queue());
        let bus = consumer(&store);
        bus.on("job.run", |_ctx| async { Ok(()) }).unwrap();
        bus.start().unwrap();
        bus.emit("job.run", 1).persisted().await.unwrap();
        backlog_of(&Arc::new(MemoryStore::queue()), 1).await;
        bus.close().await.unwrap();
    });
    assert!(!logs.contains("never started"), "{logs}");
    assert!(!logs.contains("without start()"), "{logs}");
}

#[test]
fn a_listener_registered_after_start_warns() {
    let logs = warnings_of(|| async {
        let bus = consumer(&Arc::new(MemoryStore::queue()));
        bus.on_named("first", "job.run", |_ctx| async { Ok(()) })
            .unwrap();
        bus.start().unwrap();
        bus.on_named("late", "job.run", |_ctx| async { Ok(()) })
            .unwrap();
        bus.close().await.unwrap();
    });
    assert_eq!(
        logs.matches("listener registered after start()").count(),
        1,
        "{logs}"
    );
    assert!(logs.contains("listener=\"late\""), "{logs}");
}
