//! A delivery from a queue store that no listener of the bus hears is
//! counted and logged, and acknowledged (the default) or dead-lettered.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use soiree::{EventBus, EventQueue, MemoryStore, MetricsRegistry, UnheardDeliveries};

const LIMIT: Duration = Duration::from_secs(20);

fn unheard_count(registry: &MetricsRegistry) -> u64 {
    let text = registry.encode();
    text.lines()
        .find_map(|line| line.strip_prefix("soiree_deliveries_unheard_total{pool=\"unheard\"} "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no unheard counter in\n{text}"))
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

/// Emits 3 `nobody.hears` events and 1 `job.run` event on a started bus
/// with only a `job.run` listener, on a current-thread runtime; returns the
/// store, the metrics and the warnings logged.
fn run(policy: Option<UnheardDeliveries>) -> (Arc<MemoryStore>, MetricsRegistry, String) {
    let store = Arc::new(MemoryStore::queue());
    let registry = MetricsRegistry::new();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let (s, r) = (Arc::clone(&store), registry.clone());
    tracing::subscriber::with_default(subscriber, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut builder = EventBus::builder()
                .shared_store(s.clone())
                .metrics_registry(r)
                .pool_name("unheard")
                .poll_wait(Duration::from_millis(20));
            if let Some(policy) = policy {
                builder = builder.unheard_deliveries(policy);
            }
            let bus = builder.build().unwrap();
            let ran = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&ran);
            bus.on("job.run", move |_ctx| {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            })
            .unwrap();
            bus.start().unwrap();
            for n in 0..3 {
                bus.emit("nobody.hears", n).persisted().await.unwrap();
            }
            bus.emit("job.run", 0).persisted().await.unwrap();
            tokio::time::timeout(LIMIT, bus.wait_for_idle())
                .await
                .expect("idle in time");
            assert_eq!(s.backlog().await.unwrap(), 0, "every delivery settled");
            assert_eq!(ran.load(Ordering::SeqCst), 1, "the heard event ran");
            bus.close().await.unwrap();
        });
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    (store, registry, logs)
}

#[test]
fn unheard_deliveries_are_counted_logged_and_acknowledged_by_default() {
    let (store, registry, logs) = run(None);
    assert_eq!(unheard_count(&registry), 3);
    assert!(store.dead_letters().is_empty());
    assert!(
        logs.contains("delivery with no listener on this bus for its topic"),
        "{logs}"
    );
    assert!(logs.contains("topic=\"nobody.hears\""), "{logs}");
}

#[test]
fn unheard_deliveries_can_be_dead_lettered() {
    let (store, registry, logs) = run(Some(UnheardDeliveries::DeadLetter));
    assert_eq!(unheard_count(&registry), 3);
    let dead = store.dead_letters();
    assert_eq!(dead.len(), 3, "{dead:?}");
    for (event, error) in &dead {
        assert_eq!(event.topic, "nobody.hears");
        assert!(error.contains("no listener registered"), "{error}");
        assert!(error.contains("nobody.hears"), "{error}");
    }
    assert!(logs.contains("delivery with no listener"), "{logs}");
}
