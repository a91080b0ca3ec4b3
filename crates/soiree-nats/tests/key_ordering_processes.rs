//! Per-key ordering across processes (`ordered_by_key`): three consumer
//! processes of one group, each a bus of 4 workers, run keyed events; one
//! is killed with SIGKILL mid-run. Each key's events still start one at a
//! time, in order (an event the killed process held runs again, before the
//! key's next), and every event runs at least once.
//!
//! A plain `main` (`harness = false`): the binary starts itself as the
//! consumers (`soiree_test::process`). The consumers append one line per
//! listener start and end to a shared file (`O_APPEND`: the lines keep the
//! order the kernel saw them in, across processes).

mod support;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::Duration;

use serde_json::json;
use soiree::{EventBus, EventQueue, StoredEvent};
use soiree_nats::{NatsStore, PROPERTY_KEY};
use soiree_test::process::{ChildProcess, plain_main};
use soiree_test::wait::{until_drained, within};
use support::{NatsServer, builder, eventually};

const CHILD_ENV: &str = "SOIREE_NATS_KEY_ORDER_CHILD";
const URL_ENV: &str = "SOIREE_NATS_KEY_ORDER_URL";
const FILE_ENV: &str = "SOIREE_NATS_KEY_ORDER_FILE";
const LIMIT: Duration = Duration::from_secs(90);
const KEYS: u64 = 6;
const PER_KEY: u64 = 40;
const PARTITIONS: u16 = 4;
const CLAIM: Duration = Duration::from_secs(2);

async fn open(url: &str) -> NatsStore {
    within(
        LIMIT,
        "build",
        builder(url)
            .prefix("procs")
            .group("ordered")
            .claim_timeout(CLAIM)
            .ordered_by_key(PARTITIONS)
            .build(),
    )
    .await
    .unwrap()
}

fn main() {
    let Some(runtime) = plain_main("key_ordering_processes") else {
        return;
    };
    if let Some(name) = std::env::var_os(CHILD_ENV) {
        let name = name.to_string_lossy().into_owned();
        runtime.block_on(child(&name));
        return;
    }
    // Outside CI a missing nats-server skips the test; in CI it fails.
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    runtime.block_on(parent(server));
    println!("key_ordering_processes: ok");
}

/// A consumer: runs keyed events until killed (or for at most `LIMIT`).
async fn child(name: &str) {
    let url = std::env::var(URL_ENV).unwrap();
    let path = std::env::var(FILE_ENV).unwrap();
    let store = open(&url).await;
    let bus = EventBus::builder()
        .store(store)
        .workers(4)
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let name = name.to_owned();
    bus.on_named("record", "test.keyed", move |ctx| {
        let payload = ctx.payload().to_json().unwrap();
        let line = |what: &str| {
            format!(
                "{what} {} {} {name}\n",
                payload["key"].as_str().unwrap(),
                payload["seq"]
            )
        };
        let (start, end) = (line("S"), line("E"));
        let path = path.clone();
        async move {
            append(&path, &start);
            tokio::time::sleep(Duration::from_millis(5)).await;
            append(&path, &end);
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();
    tokio::time::sleep(LIMIT).await;
}

/// One line, in one write to a file opened for appending.
fn append(path: &str, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    file.write_all(line.as_bytes()).unwrap();
}

/// The lines written so far: (start?, key, seq, consumer).
fn lines(path: &std::path::Path) -> Vec<(bool, String, u64, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let what = parts.next()? == "S";
            let key = parts.next()?.to_owned();
            let seq = parts.next()?.parse().ok()?;
            let who = parts.next()?.to_owned();
            Some((what, key, seq, who))
        })
        .collect()
}

fn ended(path: &std::path::Path) -> HashSet<(String, u64)> {
    lines(path)
        .into_iter()
        .filter(|(start, ..)| !start)
        .map(|(_, key, seq, _)| (key, seq))
        .collect()
}

async fn parent(server: NatsServer) {
    let url = server.url();
    let dir = std::env::temp_dir().join(format!("soiree-nats-key-order-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("runs.log");
    let _ = std::fs::remove_file(&path);

    // The stream and the group's consumers exist before the consumers start.
    let store = open(&url).await;
    for seq in 0..PER_KEY {
        for k in 0..KEYS {
            let mut properties = serde_json::Map::new();
            properties.insert(PROPERTY_KEY.to_owned(), format!("k{k}").into());
            let event = StoredEvent {
                topic: "test.keyed".into(),
                payload: json!({ "key": format!("k{k}"), "seq": seq }),
                properties,
            };
            within(LIMIT, "enqueue", store.enqueue(&event))
                .await
                .unwrap();
        }
    }
    let mut children: Vec<ChildProcess> = (0..3)
        .map(|i| {
            ChildProcess::start(
                ChildProcess::command()
                    .env(CHILD_ENV, format!("c{i}"))
                    .env(URL_ENV, &url)
                    .env(FILE_ENV, &path),
            )
        })
        .collect();

    // Kill one consumer once a quarter of the events ran.
    let total = (KEYS * PER_KEY) as usize;
    assert!(
        eventually(LIMIT, || async { ended(&path).len() >= total / 4 }).await,
        "a quarter of the events ran"
    );
    children[0].kill();
    assert!(
        eventually(LIMIT, || async { ended(&path).len() >= total }).await,
        "{} of {total} events ran after a consumer was killed",
        ended(&path).len()
    );
    until_drained(LIMIT, &store).await;
    drop(children);

    // Per key: starts in order (an event run again right after itself),
    // and no start while another live consumer's run of the key is open.
    let mut open_runs: HashMap<String, (u64, String)> = HashMap::new();
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut killed_runs = 0;
    for (start, key, seq, who) in lines(&path) {
        if !start {
            open_runs.remove(&key);
            continue;
        }
        if let Some((open_seq, open_who)) = open_runs.get(&key) {
            // Only the killed consumer leaves a run open for ever.
            assert_eq!(
                open_who, "c0",
                "{key}: seq {seq} started while {open_who} ran seq {open_seq}"
            );
            killed_runs += 1;
        }
        let in_order = match last.get(&key) {
            None => seq == 0,
            Some(before) => seq == *before || seq == before + 1,
        };
        assert!(
            in_order,
            "{key}: seq {seq} started after seq {:?}",
            last.get(&key)
        );
        last.insert(key.clone(), seq);
        open_runs.insert(key, (seq, who));
    }
    for k in 0..KEYS {
        assert_eq!(last.get(&format!("k{k}")), Some(&(PER_KEY - 1)));
    }
    println!("runs of the killed consumer left open: {killed_runs}");
    let _ = std::fs::remove_dir_all(&dir);
    drop(server);
}
