//! What one event costs on the wire: the messages the store's connection
//! sends and receives per event handled through a bus, counted by the
//! server (`/connz`), so that a request per listener per event, or per
//! dequeue, shows as a count rather than as a slower bench.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::{EventBus, EventQueue, StoredEvent};
use support::{NatsServer, builder, eventually};

const WAIT: Duration = Duration::from_secs(60);
const EVENTS: usize = 300;
const LISTENERS: [&str; 2] = ["first", "second"];

/// `(in_msgs, out_msgs)` of the connection `cid`, as the server counts them.
fn counters(server: &NatsServer, cid: u64) -> (u64, u64) {
    let body = server
        .monitor(&format!("/connz?cid={cid}"))
        .expect("connz answers");
    let json: serde_json::Value = serde_json::from_str(&body).expect("connz is json");
    let conn = &json["connections"][0];
    assert_eq!(conn["cid"].as_u64(), Some(cid), "connz: {body}");
    (
        conn["in_msgs"].as_u64().expect("in_msgs"),
        conn["out_msgs"].as_u64().expect("out_msgs"),
    )
}

fn event(i: usize) -> StoredEvent {
    let mut properties = serde_json::Map::new();
    properties.insert(soiree::PROPERTY_EVENT_ID.into(), format!("rt-{i}").into());
    StoredEvent {
        topic: "order.paid".into(),
        payload: serde_json::json!(i),
        properties,
    }
}

/// Events already in the stream, handled by two named listeners: the
/// consumer's connection sends per event one dedup lookup (for the whole
/// event, not per listener), a dedup record per listener and one
/// acknowledgement, plus a share of the pull requests and of the result
/// batches and confirmations sent once per flush; it receives the event
/// and the lookup's answer, plus a share of the pull statuses and
/// confirmations. Before, it sent a result per listener per event too
/// (6.1 sent), and earlier a lookup per listener per event and a pull
/// request per dequeue, and received a confirmation per record and per
/// acknowledgement: 7.4 sent and 8.0 received per event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handled_event_costs_a_bounded_number_of_messages() {
    let server = server_or_skip!();
    let producer = builder(&server.url()).prefix("rt").build().await.unwrap();
    let producer_cid = producer.client().server_info().client_id;
    let (before_in, before_out) = counters(&server, producer_cid);
    let mut sent = futures::stream::FuturesUnordered::new();
    for i in 0..EVENTS {
        let producer = producer.clone();
        sent.push(async move { producer.enqueue(&event(i)).await });
    }
    while let Some(done) = futures::StreamExt::next(&mut sent).await {
        done.unwrap();
    }
    let (after_in, after_out) = counters(&server, producer_cid);
    let publish_in = (after_in - before_in) as f64 / EVENTS as f64;
    let publish_out = (after_out - before_out) as f64 / EVENTS as f64;

    let store = builder(&server.url()).prefix("rt").build().await.unwrap();
    let cid = store.client().server_info().client_id;
    let bus = EventBus::builder().store(store.clone()).build().unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    for name in LISTENERS {
        let handled = handled.clone();
        bus.on_named(name, "order.*", move |_| {
            let handled = handled.clone();
            async move {
                handled.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .unwrap();
    }
    let (start_in, start_out) = counters(&server, cid);
    bus.start().unwrap();
    let want = EVENTS * LISTENERS.len();
    assert!(
        eventually(WAIT, || async { handled.load(Ordering::SeqCst) >= want }).await,
        "handled {} of {want} in time",
        handled.load(Ordering::SeqCst)
    );
    tokio::time::timeout(WAIT, bus.close())
        .await
        .expect("close in time")
        .unwrap();
    assert_eq!(handled.load(Ordering::SeqCst), want, "each listener once");
    let (end_in, end_out) = counters(&server, cid);
    let consume_in = (end_in - start_in) as f64 / EVENTS as f64;
    let consume_out = (end_out - start_out) as f64 / EVENTS as f64;
    println!(
        "per event: publish {publish_in:.2} in / {publish_out:.2} out; \
         consume ({} listeners) {consume_in:.2} in / {consume_out:.2} out",
        LISTENERS.len()
    );
    assert_eq!(store.backlog().await.unwrap(), 0, "nothing left pending");
    // One publish and its acknowledgement.
    assert!(
        publish_in <= 1.05 && publish_out <= 1.05,
        "publish costs {publish_in} / {publish_out}"
    );
    // 1 lookup + 2 dedup records + 1 ack = 4, plus pulls, result batches
    // and confirmations shared by a batch.
    assert!(
        consume_in <= 4.5,
        "consuming sends {consume_in} messages per event"
    );
    // The event + 1 lookup answer = 2, plus pull statuses and
    // confirmations shared by a batch.
    assert!(
        consume_out <= 2.5,
        "consuming receives {consume_out} messages per event"
    );
}
