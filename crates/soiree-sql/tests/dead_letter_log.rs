//! A delivery that the SQL store dead-letters is logged once, as a dead
//! letter with how to replay it; the failures before it (delivered again)
//! are logged as listener errors.

#![cfg(feature = "sqlite")]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use soiree::EventBus;
use soiree_sql::FailurePolicy;
use support::{TempDir, eventually, sqlite_builder, within};

const LIMIT: Duration = Duration::from_secs(30);

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

#[test]
fn the_last_failure_before_the_dead_letters_is_logged_as_a_dead_letter() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let dir = TempDir::new();
    let listener = tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = within(
                LIMIT,
                "open",
                sqlite_builder(&dir.db(), "c1")
                    .on_failure(FailurePolicy::Redeliver)
                    .retry_backoff(Duration::from_millis(20))
                    .max_deliveries(2)
                    .build(),
            )
            .await
            .unwrap();
            let bus = EventBus::builder()
                .shared_store(Arc::new(store.clone()))
                .poll_wait(Duration::from_millis(20))
                .build()
                .unwrap();
            let listener = bus
                .on("order.paid", |_ctx| async { Err("card declined".into()) })
                .unwrap();
            bus.start().unwrap();
            let mut emission = bus.emit("order.paid", 1);
            within(LIMIT, "persisted", emission.persisted())
                .await
                .unwrap();
            let dead = eventually(LIMIT, || async {
                !store
                    .sql_dead_letters(None, 10)
                    .await
                    .unwrap()
                    .items
                    .is_empty()
            })
            .await;
            assert!(dead, "dead-lettered after max_deliveries");
            within(LIMIT, "close", bus.close()).await.unwrap();
            listener
        })
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let dead: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("dead-lettered"))
        .collect();
    assert_eq!(dead.len(), 1, "one dead-letter warning: {logs}");
    let line = dead[0];
    for field in [
        "topic=\"order.paid\"",
        "attempts=2",
        "card declined",
        "soiree dead-letters replay --store <url> --event-id",
    ] {
        assert!(line.contains(field), "{field}: {line}");
    }
    assert!(
        line.contains(listener.as_str()),
        "listener {listener}: {line}"
    );
    let retried = logs
        .lines()
        .filter(|line| line.contains("listener error with no one to receive it"))
        .count();
    assert_eq!(retried, 1, "the first failure, delivered again: {logs}");
}
