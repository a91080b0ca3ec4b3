//! Faults: a server of a 3-server cluster killed (SIGKILL) mid-run, the
//! whole cluster restarted, a consumer process killed mid-run. Every event
//! whose emission was acknowledged is handled at least once.

mod support;

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use soiree::{Event, EventBus, PROPERTY_EVENT_ID};
use soiree_nats::NatsStore;
use soiree_test::process::ChildProcess;
use support::{ONE_AT_A_TIME, builder, eventually};

/// Bound of every wait.
const WAIT: Duration = Duration::from_secs(60);

/// AckWait: how soon a delivery lost with a server or a process comes back.
const CLAIM: Duration = Duration::from_secs(2);

type Seen = Arc<Mutex<HashSet<String>>>;

async fn store(url: &str, prefix: &str) -> NatsStore {
    builder(url)
        .prefix(prefix)
        .group("faults")
        .replicas(3)
        .claim_timeout(CLAIM)
        .build()
        .await
        .unwrap()
}

/// A bus on `store` whose listener records the event ids it handled.
fn recording_bus(store: &NatsStore, seen: &Seen) -> EventBus {
    let bus = EventBus::builder().store(store.clone()).build().unwrap();
    let seen = seen.clone();
    bus.on_named("record", "fault.*", move |ctx| {
        let seen = seen.clone();
        async move {
            if let Some(id) = ctx.event_id() {
                seen.lock().unwrap().insert(id.to_string());
            }
            Ok(())
        }
    })
    .unwrap();
    bus
}

fn event(i: usize) -> (String, Event) {
    let id = format!("evt-{i}");
    let event = Event::new("fault.tick", serde_json::json!(i));
    event.properties().set(PROPERTY_EVENT_ID, id.clone());
    (id, event)
}

/// Emits event `i` until the stream acknowledged it, for at most 30 s
/// (a failover elects new stream leaders meanwhile; the same id each time:
/// a retried publish is stored once).
async fn emit_until_stored(bus: &EventBus, i: usize) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for _ in 0..100 {
        let (_, event) = event(i);
        let mut emission = bus.emit("fault.tick", event);
        let persisted = emission.persisted();
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(10), persisted).await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}

async fn all_seen(seen: &Seen, n: usize) -> bool {
    let seen = seen.clone();
    eventually(WAIT, || {
        let seen = seen.clone();
        async move { (0..n).all(|i| seen.lock().unwrap().contains(&format!("evt-{i}"))) }
    })
    .await
}

/// Asserts that the `n` events were all handled, then closes the bus.
async fn all_handled_then_close(bus: &EventBus, seen: &Seen, n: usize) {
    assert!(
        all_seen(seen, n).await,
        "handled: {}",
        seen.lock().unwrap().len()
    );
    tokio::time::timeout(WAIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_server_killed_mid_run_loses_no_event() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = cluster_or_skip!();
    let store = store(&cluster.url(), "kill1").await;
    let seen: Seen = Arc::default();
    let bus = recording_bus(&store, &seen);
    bus.start().unwrap();
    const N: usize = 300;
    let mut stored = 0;
    for i in 0..N {
        if i == N / 3 {
            cluster.server(0).kill();
        }
        if emit_until_stored(&bus, i).await {
            stored += 1;
        }
    }
    assert_eq!(stored, N, "every emit was acknowledged after retries");
    all_handled_then_close(&bus, &seen, N).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_restart_keeps_every_stored_event() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = cluster_or_skip!();
    let store = store(&cluster.url(), "restart").await;
    let seen: Seen = Arc::default();
    let bus = recording_bus(&store, &seen);
    const N: usize = 100;
    for i in 0..N {
        assert!(emit_until_stored(&bus, i).await, "event {i} not stored");
    }
    let restart = tokio::task::spawn_blocking(move || cluster.restart_all().map(|()| cluster));
    let cluster = tokio::time::timeout(WAIT, restart)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The same store, reconnected: the stream and the group survived.
    bus.start().unwrap();
    all_handled_then_close(&bus, &seen, N).await;
    drop(cluster);
}

/// The environment variables of the consumer child process.
const CHILD_URL: &str = "SOIREE_NATS_FAULT_CHILD_URL";
const CHILD_LOG: &str = "SOIREE_NATS_FAULT_CHILD_LOG";

/// Not a test of its own: the consumer process that
/// `a_consumer_process_killed_mid_run_loses_no_event` starts and kills.
/// Without its environment variables it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_child_consumer() {
    let (Ok(url), Ok(log)) = (std::env::var(CHILD_URL), std::env::var(CHILD_LOG)) else {
        return;
    };
    let store = store(&url, "killproc").await;
    let bus = EventBus::builder().store(store).build().unwrap();
    let log = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap(),
    ));
    bus.on_named("record", "fault.*", move |ctx| {
        let log = log.clone();
        async move {
            // Slow, so that the kill lands mid-run.
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Some(id) = ctx.event_id() {
                writeln!(log.lock().unwrap(), "{id}").unwrap();
            }
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();
    // Runs until killed; bounded all the same.
    tokio::time::sleep(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_process_killed_mid_run_loses_no_event() {
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = cluster_or_skip!();
    let url = cluster.url();
    let store = store(&url, "killproc").await;
    let seen: Seen = Arc::default();
    let bus = recording_bus(&store, &seen);
    const N: usize = 200;
    for i in 0..N {
        assert!(emit_until_stored(&bus, i).await, "event {i} not stored");
    }
    let log = std::env::temp_dir().join(format!("soiree-nats-child-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut child = ChildProcess::start(
        ChildProcess::command()
            .args([
                "--exact",
                "fault_child_consumer",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_URL, &url)
            .env(CHILD_LOG, &log)
            .stdout(std::process::Stdio::null()),
    );
    let read_log = |log: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let started = eventually(WAIT, || {
        let n = read_log(&log).len();
        async move { n >= 20 }
    })
    .await;
    child.kill(); // SIGKILL, reaped
    assert!(started, "the child consumer handled nothing");
    let by_child: HashSet<String> = read_log(&log).into_iter().collect();
    assert!(by_child.len() < N, "the child finished before the kill");
    // The rest, and whatever the child held, reach this consumer.
    bus.start().unwrap();
    let seen2 = seen.clone();
    let all = eventually(WAIT, || {
        let seen = seen2.clone();
        let by_child = by_child.clone();
        async move {
            let seen = seen.lock().unwrap();
            (0..N).all(|i| {
                let id = format!("evt-{i}");
                seen.contains(&id) || by_child.contains(&id)
            })
        }
    })
    .await;
    let _ = std::fs::remove_file(&log);
    assert!(
        all,
        "handled here {}, by the child {}",
        seen.lock().unwrap().len(),
        by_child.len()
    );
    tokio::time::timeout(WAIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}
