//! A delivery that ends in a dead letter is logged once, at WARN, with what
//! an operator needs: the event, its topic, the listener, how many attempts,
//! why, and the command that replays it.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use soiree::{EventBus, EventQueue, MemoryStore};

const LIMIT: Duration = Duration::from_secs(20);

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

fn capture_logs<T>(f: impl FnOnce() -> T) -> (String, T) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    (logs, value)
}

#[test]
fn a_dead_lettered_delivery_is_logged_once_with_how_to_replay_it() {
    let (logs, (listener, event_id)) = capture_logs(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = Arc::new(MemoryStore::queue());
            let bus = EventBus::builder()
                .shared_store(store.clone())
                .poll_wait(Duration::from_millis(20))
                .build()
                .unwrap();
            let listener = bus
                .on("job.fail", |_ctx| async { Err("disk full".into()) })
                .unwrap();
            bus.start().unwrap();
            let mut emission = bus.emit("job.fail", 1);
            tokio::time::timeout(LIMIT, emission.persisted())
                .await
                .expect("persisted in time")
                .unwrap();
            tokio::time::timeout(LIMIT, bus.wait_for_idle())
                .await
                .expect("idle in time");
            assert_eq!(store.backlog().await.unwrap(), 0, "the delivery settled");
            let dead = store.dead_letters();
            assert_eq!(dead.len(), 1, "{dead:?}");
            tokio::time::timeout(LIMIT, bus.close())
                .await
                .expect("closed in time")
                .unwrap();
            (
                listener,
                dead[0].0.id().expect("stored events have ids").to_owned(),
            )
        })
    });
    let lines: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("dead-lettered"))
        .collect();
    assert_eq!(lines.len(), 1, "one dead-letter warning: {logs}");
    let line = lines[0];
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains(&event_id.to_string()),
        "event id {event_id}: {line}"
    );
    assert!(line.contains("job.fail"), "topic: {line}");
    assert!(
        line.contains(listener.as_str()),
        "listener {listener}: {line}"
    );
    assert!(line.contains("attempts=1"), "{line}");
    assert!(line.contains("disk full"), "reason: {line}");
    assert!(
        line.contains("soiree dead-letters replay --store <url> --event-id"),
        "replay command: {line}"
    );
    assert!(
        !logs.contains("listener error with no one to receive it"),
        "the generic warning is not repeated: {logs}"
    );
}
