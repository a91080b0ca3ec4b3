//! The outbox relay (feature `sql-relay`): events committed to a SQLite
//! outbox with `emit_in` reach the JetStream stream each exactly once,
//! across a relay killed mid-run (its runtime dropped with leases open).

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use soiree::{EventStore, Inspect, Query};
use soiree_nats::{NatsStore, Relay};
use soiree_sql::SqliteStore;
use support::{builder, eventually};

const WAIT: Duration = Duration::from_secs(60);
const N: usize = 300;

async fn outbox(db: &std::path::Path) -> SqliteStore {
    SqliteStore::builder(db)
        .group("nats-relay")
        .lease_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap()
}

async fn nats(url: &str) -> NatsStore {
    builder(url).prefix("relay").build().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_events_reach_the_stream_once_across_a_killed_relay() {
    let server = server_or_skip!();
    let url = server.url();
    let dir = std::env::temp_dir().join(format!("soiree-nats-relay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("outbox.db");

    // The application commits its events in its transactions.
    let app = outbox(&db).await;
    let mut ids = Vec::new();
    for chunk in 0..N / 50 {
        let mut tx = app.begin().await.unwrap();
        for i in 0..50 {
            let n = chunk * 50 + i;
            ids.push(
                app.emit_in(&mut tx, "order.paid", serde_json::json!(n))
                    .await
                    .unwrap(),
            );
        }
        app.commit(tx).await.unwrap();
    }

    // A first relay, killed once part of the events reached the stream:
    // its runtime is dropped, leases and publishes in flight with it.
    let (db1, url1) = (db.clone(), url.clone());
    let killed = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let relayed = runtime.block_on(async move {
            let target = nats(&url1).await;
            let relay = Relay::start(Arc::new(outbox(&db1).await), target.clone()).unwrap();
            let some = eventually(WAIT, || {
                let target = target.clone();
                async move { target.stats().await.unwrap().events >= 50 }
            })
            .await;
            std::mem::forget(relay);
            some
        });
        runtime.shutdown_background();
        relayed
    });
    assert!(killed.join().unwrap(), "the first relay relayed nothing");

    let target = nats(&url).await;
    let partial = target.stats().await.unwrap().events;
    assert!(
        partial < N as u64,
        "the first relay finished before the kill"
    );

    // The next relay resumes: every event reaches the stream, once.
    let source = Arc::new(outbox(&db).await);
    let relay = Relay::start(source.clone(), target.clone()).unwrap();
    let done = eventually(WAIT, || {
        let (source, target) = (source.clone(), target.clone());
        async move {
            let backlog = source.queue().unwrap().backlog().await.unwrap();
            backlog == 0 && target.stats().await.unwrap().events >= N as u64
        }
    })
    .await;
    assert!(done, "relayed {}", target.stats().await.unwrap().events);
    tokio::time::timeout(WAIT, relay.close())
        .await
        .unwrap()
        .unwrap();

    let page = target.events(&Query::oldest(N + 10)).await.unwrap();
    let relayed: Vec<String> = page
        .items
        .iter()
        .map(|r| soiree::inspect::event_id_text(&r.item).unwrap())
        .collect();
    assert_eq!(relayed.len(), N, "each event once in the stream");
    let unique: HashSet<&String> = relayed.iter().collect();
    assert_eq!(unique.len(), N);
    assert_eq!(
        unique,
        ids.iter().collect::<HashSet<_>>(),
        "with the outbox's ids"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
