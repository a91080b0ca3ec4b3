//! Persistence first: with a store, an emitted event is persisted on a path
//! of its own, never behind listener jobs; `close` persists every accepted
//! event; a bus dropped or a runtime ended with work under way says so.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use soiree::{Error, EventBus, MemoryStore};
use tokio::sync::Semaphore;

const LIMIT: Duration = Duration::from_secs(20);

async fn persisted_while_listeners_hold_every_worker(store: Arc<MemoryStore>) {
    let bus = EventBus::builder()
        .workers(2)
        .shared_store(store.clone())
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let (g, r) = (Arc::clone(&gate), Arc::clone(&ran));
    bus.on("job.run", move |_ctx| {
        let (gate, ran) = (Arc::clone(&g), Arc::clone(&r));
        async move {
            gate.acquire().await.unwrap().forget();
            ran.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .unwrap();
    let mut emissions: Vec<_> = (0..20).map(|i| bus.emit("job.run", i)).collect();
    for emission in &mut emissions {
        let id = tokio::time::timeout(LIMIT, emission.persisted())
            .await
            .expect("persisting does not wait for the listeners")
            .unwrap();
        assert!(!id.is_empty());
    }
    // Every event is in the store while no listener has finished.
    assert_eq!(store.events().len(), 20);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    gate.add_permits(20);
    for emission in emissions {
        let errors: Vec<Error> = tokio::time::timeout(LIMIT, emission.collect())
            .await
            .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
    }
    bus.close().await.unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_persisted_while_listeners_hold_every_worker() {
    persisted_while_listeners_hold_every_worker(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_persists_every_detached_emit() {
    let store = Arc::new(MemoryStore::new());
    let bus = EventBus::builder()
        .workers(2)
        .shared_store(store.clone())
        .build()
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    bus.on("job.run", move |_ctx| {
        let ran = Arc::clone(&r);
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            ran.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .unwrap();
    for i in 0..20 {
        bus.emit("job.run", i).detach();
    }
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.events().len(), 20);
    assert_eq!(ran.load(Ordering::SeqCst), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_reports_the_refusal_of_a_closed_bus() {
    let bus = EventBus::builder()
        .store(MemoryStore::new())
        .build()
        .unwrap();
    bus.close().await.unwrap();
    let mut emission = bus.emit("job.run", 1);
    assert!(matches!(emission.persisted().await, Err(Error::Closed)));
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

fn capture_logs(f: impl FnOnce()) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn a_bus_dropped_with_queued_work_warns_with_counts() {
    let logs = capture_logs(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let bus = EventBus::builder().workers(1).build().unwrap();
            bus.on("job.run", |_ctx| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            })
            .unwrap();
            for i in 0..5 {
                bus.emit("job.run", i).detach();
            }
            drop(bus);
        });
    });
    assert!(logs.contains("dropped without close()"), "{logs}");
    assert!(logs.contains("pending=5"), "{logs}");
}

#[test]
fn a_runtime_ended_with_queued_jobs_warns() {
    let logs = capture_logs(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bus = runtime.block_on(async {
            let bus = EventBus::builder().workers(1).build().unwrap();
            bus.on("job.run", |_ctx| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            })
            .unwrap();
            for i in 0..100 {
                bus.emit("job.run", i).detach();
            }
            tokio::task::yield_now().await;
            bus
        });
        drop(runtime);
        // The bus outlives its runtime: its jobs cannot run, and a new emit
        // outside any runtime is refused rather than queued for good.
        let errors: Vec<Error> = futures::executor::block_on(bus.emit("job.run", 1).collect());
        assert!(
            matches!(errors.as_slice(), [Error::NoRuntime]),
            "{errors:?}"
        );
    });
    assert!(
        logs.contains("runtime shut down with jobs still queued"),
        "{logs}"
    );
    assert!(logs.contains("queued=99"), "{logs}");
}

#[test]
fn a_runtime_ended_before_events_were_persisted_warns() {
    let logs = capture_logs(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bus = runtime.block_on(async {
            let bus = EventBus::builder()
                .store(MemoryStore::new())
                .build()
                .unwrap();
            bus.on("job.run", |_ctx| async { Ok(()) }).unwrap();
            for i in 0..10 {
                bus.emit("job.run", i).detach();
            }
            bus
        });
        drop(runtime);
        drop(bus);
    });
    assert!(
        logs.contains("before accepted events were persisted"),
        "{logs}"
    );
}
