//! No log line shows a password: every log record (tracing and `log`, at
//! trace level) of a store with an ACL user through a connection failure
//! and a refused login is captured and searched. One test per binary: it
//! installs the global subscriber.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use soiree::EventBus;
use support::{builder_at, eventually};

const LIMIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "s3cret-Pa55word";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_shows_the_password() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only subscriber of this test binary");

    let mut server = server_or_skip!();
    let mut conn = support::raw(&server).await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(format!(">{PASSWORD}"))
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .query_async(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let url = format!("redis://app:{PASSWORD}@127.0.0.1:{}/", server.port());
    let builder = builder_at(&url, "c1");
    tracing::debug!(?builder, "building the store");
    let store = tokio::time::timeout(LIMIT, builder.build())
        .await
        .expect("connects in time")
        .expect("the ACL user is accepted");
    tracing::debug!(?store, "built");
    let bus = EventBus::builder()
        .store(store.clone())
        .poll_wait(Duration::from_millis(50))
        .build()
        .unwrap();
    bus.on("job.run", |_ctx| async { Ok(()) }).unwrap();
    bus.start().unwrap();
    let errors: Vec<_> = tokio::time::timeout(LIMIT, bus.emit("job.run", 1).collect())
        .await
        .expect("emitted in time");
    assert!(errors.is_empty(), "{errors:?}");

    // The connection fails: the consumer logs its failed reads, emits fail.
    server.kill();
    let errors: Vec<_> = tokio::time::timeout(LIMIT, bus.emit("job.run", 2).collect())
        .await
        .expect("the emit ends in time");
    assert_eq!(errors.len(), 1, "{errors:?}");
    for err in &errors {
        tracing::error!(%err, ?err, "emit failed");
    }
    assert!(
        eventually(LIMIT, || async {
            capture.text().contains("dequeue failed")
        })
        .await,
        "the consumer logged its failed reads"
    );

    // A refused login.
    server.restart().unwrap();
    let wrong = format!("redis://app:wrong-{PASSWORD}@127.0.0.1:{}/", server.port());
    let err = tokio::time::timeout(LIMIT, builder_at(&wrong, "c2").build())
        .await
        .expect("fails in time")
        .expect_err("the user is gone with the restart");
    tracing::error!(%err, ?err, "build failed");
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .expect("close in time")
        .ok();

    let logs = capture.text();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "captured at trace level"
    );
    let lines = logs.lines().count();
    let leaks: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains(PASSWORD))
        .collect();
    println!(
        "captured {lines} log lines, {} with the password",
        leaks.len()
    );
    assert!(leaks.is_empty(), "password in the logs: {leaks:#?}");
    assert!(logs.contains("***"), "the masked url was logged");
}
