//! Store-specific behaviour: topics with characters subjects forbid,
//! tenant prefixes, dead letters (list, replay with the id kept, purge),
//! server-side filters, secrets kept out of Debug and errors.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::{DeadLetterSelection, EventBus, EventQueue, EventStore, Inspect, Query, StoredEvent};
use support::{builder, eventually};

const WAIT: Duration = Duration::from_secs(20);

fn event(topic: &str, id: &str) -> StoredEvent {
    let mut properties = serde_json::Map::new();
    properties.insert(soiree::PROPERTY_EVENT_ID.into(), id.into());
    StoredEvent {
        topic: topic.into(),
        payload: serde_json::json!({ "id": id }),
        properties,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_with_forbidden_characters_round_trip() {
    let server = server_or_skip!();
    let store = builder(&server.url()).prefix("odd").build().await.unwrap();
    let topics = [
        "with space.x",
        "gt.>",
        "a>b.c",
        "tilde~.x",
        "é.ü",
        "tab\there",
        &"t".repeat(soiree::limits::MAX_TOPIC_LEN),
    ];
    for (i, topic) in topics.iter().enumerate() {
        store
            .enqueue(&event(topic, &format!("e{i}")))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..20 {
        let batch = tokio::time::timeout(WAIT, store.dequeue(10, Duration::from_millis(200)))
            .await
            .expect("dequeue in time")
            .unwrap();
        store
            .ack(&batch.iter().map(|d| d.receipt.clone()).collect::<Vec<_>>())
            .await
            .unwrap();
        got.extend(batch.into_iter().map(|d| d.event.topic));
        if got.len() == topics.len() {
            break;
        }
    }
    let want: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    // Lengths only in the message: one topic is 64 KiB.
    assert!(
        got == want,
        "got {:?}",
        got.iter().map(String::len).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_retried_with_the_same_id_is_stored_once() {
    let server = server_or_skip!();
    let store = builder(&server.url()).prefix("dup").build().await.unwrap();
    let e = event("order.paid", "same-id");
    store.enqueue(&e).await.unwrap();
    store.enqueue(&e).await.unwrap();
    assert_eq!(store.stats().await.unwrap().events, 1);
    assert_eq!(store.backlog().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_see_each_other() {
    let server = server_or_skip!();
    let a = builder(&server.url())
        .prefix("tenant-a")
        .build()
        .await
        .unwrap();
    let b = builder(&server.url())
        .prefix("tenant-b")
        .build()
        .await
        .unwrap();
    a.enqueue(&event("x.y", "a1")).await.unwrap();
    assert!(
        b.dequeue(10, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty(),
        "b took a's event"
    );
    assert_eq!(b.stats().await.unwrap().events, 0);
    // A dead letter of a's, purged through b: nothing happens to it.
    let delivery = a.dequeue(1, WAIT).await.unwrap().pop().unwrap();
    a.fail(&[soiree::FailedDelivery {
        receipt: delivery.receipt,
        error: "boom".into(),
    }])
    .await
    .unwrap();
    let all = DeadLetterSelection::Matching(soiree::Filter::default());
    assert_eq!(b.purge_dead_letters(&all).await.unwrap(), 0);
    assert_eq!(a.stats().await.unwrap().dead_letters, 1);
    assert_eq!(a.purge_dead_letters(&all).await.unwrap(), 1);
    assert_eq!(a.stats().await.unwrap().dead_letters, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_events_are_dead_lettered_and_replayed_with_their_id() {
    let server = server_or_skip!();
    let store = builder(&server.url()).prefix("dead").build().await.unwrap();
    let bus = EventBus::builder()
        .store(store.clone())
        .retry(soiree::RetryPolicy::never())
        .build()
        .unwrap();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let ran = Arc::new(AtomicUsize::new(0));
    let (f, r) = (fail.clone(), ran.clone());
    bus.on_named("mailer", "invoice.sent", move |ctx| {
        let (f, r) = (f.clone(), r.clone());
        async move {
            assert_eq!(ctx.event_id().as_deref(), Some("inv-1"));
            r.fetch_add(1, Ordering::SeqCst);
            if f.load(Ordering::SeqCst) {
                Err("smtp down".into())
            } else {
                Ok(())
            }
        }
    })
    .unwrap();
    bus.start().unwrap();
    let e = soiree::Event::new("invoice.sent", serde_json::json!(1));
    e.properties().set(soiree::PROPERTY_EVENT_ID, "inv-1");
    bus.emit("invoice.sent", e).persisted().await.unwrap();
    assert!(
        eventually(WAIT, || async {
            store.stats().await.unwrap().dead_letters == 1
        })
        .await
    );
    let letters = store.dead_letters(&Query::oldest(10)).await.unwrap();
    assert!(
        letters.items[0].error.contains("smtp down"),
        "{:?}",
        letters.items[0]
    );
    assert_eq!(letters.items[0].event_id().as_deref(), Some("inv-1"));
    fail.store(false, Ordering::SeqCst);
    let replayed = store
        .replay_dead_letters(&DeadLetterSelection::Ids(vec![letters.items[0].id.clone()]))
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    assert!(eventually(WAIT, || async { ran.load(Ordering::SeqCst) == 2 }).await);
    assert!(eventually(WAIT, || async { store.backlog().await.unwrap() == 0 }).await);
    assert_eq!(store.stats().await.unwrap().dead_letters, 0);
    tokio::time::timeout(WAIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_past_max_deliveries_goes_to_the_dead_letters() {
    let server = server_or_skip!();
    let store = builder(&server.url())
        .prefix("maxdel")
        .claim_timeout(Duration::from_millis(300))
        .max_deliveries(2)
        .build()
        .await
        .unwrap();
    store.enqueue(&event("a.b", "poison")).await.unwrap();
    let mut deliveries = 0;
    for _ in 0..20 {
        deliveries += store
            .dequeue(1, Duration::from_millis(500))
            .await
            .unwrap()
            .len();
        if store.stats().await.unwrap().dead_letters == 1 {
            break;
        }
    }
    assert_eq!(
        deliveries, 2,
        "delivered max_deliveries times, then set aside"
    );
    let letters = store.dead_letters(&Query::oldest(10)).await.unwrap();
    assert!(
        letters.items[0].error.contains("max_deliveries 2"),
        "{:?}",
        letters.items[0]
    );
    assert_eq!(letters.items[0].event_id().as_deref(), Some("poison"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_is_not_an_event_is_set_aside_alone() {
    let server = server_or_skip!();
    let store = builder(&server.url()).prefix("junk").build().await.unwrap();
    store.enqueue(&event("a.b", "before")).await.unwrap();
    let js = async_nats::jetstream::new(store.client().clone());
    js.publish("junk.a.b", "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    store.enqueue(&event("a.b", "after")).await.unwrap();
    let got = store.dequeue(10, WAIT).await.unwrap();
    let ids: Vec<_> = got
        .iter()
        .map(|d| soiree::inspect::event_id_text(&d.event).unwrap())
        .collect();
    assert_eq!(ids, ["before", "after"]);
    let letters = store.dead_letters(&Query::oldest(10)).await.unwrap();
    assert_eq!(letters.items.len(), 1);
    assert_eq!(letters.items[0].raw.as_deref(), Some("not json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_run_on_the_server_and_inside_patterns_on_the_client() {
    let server = server_or_skip!();
    let url = server.url();
    let star = builder(&url)
        .prefix("filt")
        .group("star")
        .filter("order.*")
        .build()
        .await
        .unwrap();
    let inner = builder(&url)
        .prefix("filt")
        .group("inner")
        .filter("a.**.z")
        .build()
        .await
        .unwrap();
    for (topic, id) in [
        ("order.paid", "1"),
        ("order.paid.late", "2"),
        ("a.z", "3"),
        ("a.b.c.z", "4"),
        ("a.b", "5"),
    ] {
        star.enqueue(&event(topic, id)).await.unwrap();
    }
    let ids = |ds: Vec<soiree::Delivery>| -> Vec<String> {
        ds.iter()
            .map(|d| soiree::inspect::event_id_text(&d.event).unwrap())
            .collect()
    };
    assert_eq!(ids(star.dequeue(10, WAIT).await.unwrap()), ["1"]);
    assert_eq!(ids(inner.dequeue(10, WAIT).await.unwrap()), ["3", "4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_debug_and_errors() {
    let server = NatsServerWithAuth::start();
    let Some(server) = server else { return };
    let url = format!("nats://ada:hunter22@127.0.0.1:{}", server.port());
    let b = builder(&url).token("t0ps3cret-token");
    let debug = format!("{b:?}");
    assert!(
        !debug.contains("hunter22") && !debug.contains("t0ps3cret"),
        "{debug}"
    );
    // Wrong password: the error names the server, never the password.
    let wrong = format!("nats://ada:wr0ngpass@127.0.0.1:{}", server.port());
    let err = builder(&wrong)
        .request_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("wr0ngpass"), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", server.port())),
        "{text}"
    );
    // The right one works, given as an option.
    let store = builder(&format!("nats://127.0.0.1:{}", server.port()))
        .user_and_password("ada", "hunter22")
        .prefix("auth")
        .build()
        .await
        .unwrap();
    let shown = format!("{store:?} {:?}", store.info());
    assert!(!shown.contains("hunter22"), "{shown}");
}

/// A server that wants user `ada`, password `hunter22`.
struct NatsServerWithAuth;

impl NatsServerWithAuth {
    fn start() -> Option<support::NatsServer> {
        match support::NatsServer::start_with("authorization { user: ada, password: hunter22 }") {
            Ok(server) => Some(server),
            Err(err)
                if err.kind() == std::io::ErrorKind::NotFound && !soiree_test::nats::is_ci() =>
            {
                None
            }
            Err(err) => panic!("cannot start nats-server: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_emits_and_handles_on_nats() {
    let server = server_or_skip!();
    let store = builder(&server.url()).prefix("bus").build().await.unwrap();
    let store: Arc<dyn EventStore> = Arc::new(store);
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .build()
        .unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    bus.on_named("count", "x.*", move |_| {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .unwrap();
    bus.start().unwrap();
    for i in 0..20 {
        bus.emit("x.y", i).persisted().await.unwrap();
    }
    assert!(eventually(WAIT, || async { n.load(Ordering::SeqCst) == 20 }).await);
    tokio::time::timeout(WAIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}

/// Credentials in the URL never reach a log line, even at TRACE (the
/// client logs the URLs it connects to).
#[test]
fn url_credentials_stay_out_of_the_logs() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let Some(server) = NatsServerWithAuth::start() else {
        return;
    };
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let url = format!("nats://ada:hunter22@127.0.0.1:{}", server.port());
            let store = builder(&url).prefix("logs").build().await.unwrap();
            store.enqueue(&event("a.b", "1")).await.unwrap();
            // A wrong password is logged (refused) without it.
            let wrong = format!("nats://ada:wr0ngpass@127.0.0.1:{}", server.port());
            let _ = builder(&wrong)
                .request_timeout(Duration::from_secs(2))
                .build()
                .await;
        });
    });
    let logs = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
    assert!(logs.contains("127.0.0.1"), "something was logged: {logs}");
    assert!(
        !logs.contains("hunter22") && !logs.contains("wr0ngpass"),
        "{logs}"
    );
}

/// A unique key is held for its window only: an append after it ends is
/// stored (its reservation replaces the ended one), and holds the key in
/// turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_key_is_free_again_after_its_window() {
    let server = server_or_skip!();
    let store = builder(&server.url()).prefix("uniq").build().await.unwrap();
    let window = Duration::from_millis(300);
    let append = |id: &'static str| {
        let store = store.clone();
        async move {
            tokio::time::timeout(
                WAIT,
                store.append_unique(&event("order.paid", id), "order-42", window),
            )
            .await
            .expect("append in time")
            .unwrap()
        }
    };
    assert_eq!(append("u-1").await, soiree::Appended::New);
    assert_eq!(
        append("u-2").await,
        soiree::Appended::Existing("u-1".into())
    );
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    assert_eq!(append("u-3").await, soiree::Appended::New);
    assert_eq!(
        append("u-4").await,
        soiree::Appended::Existing("u-3".into())
    );
    assert_eq!(
        store.backlog().await.unwrap(),
        2,
        "two events stored: u-1 and u-3"
    );
}

/// The bus calls `extend` every lease interval, with no receipts while
/// nothing runs: this store holds no delivery of its own (the bus holds
/// what it reads ahead and passes it to extend), so an empty extend sends
/// nothing to the server (the client's count of messages sent stays).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_extend_sends_nothing_to_the_server() {
    let server = server_or_skip!();
    let store = builder(&server.url()).prefix("idle").build().await.unwrap();
    tokio::time::timeout(WAIT, store.enqueue(&event("idle.job", "idle-1")))
        .await
        .unwrap()
        .unwrap();
    let held = tokio::time::timeout(WAIT, store.dequeue(1, Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.len(), 1, "the event is delivered");
    // A handle that never dequeues runs no mover of delayed events, whose
    // polls would be counted too; a receipt is the message's reply
    // subject, so any handle of the prefix can extend it.
    let store = builder(&server.url()).prefix("idle").build().await.unwrap();
    let sent = || {
        store
            .client()
            .statistics()
            .out_messages
            .load(Ordering::Relaxed)
    };
    let before = sent();
    for _ in 0..5 {
        tokio::time::timeout(WAIT, store.extend(&[]))
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(sent(), before, "an empty extend sent a message");
    // The count does see an extend with work: one progress ack.
    tokio::time::timeout(WAIT, store.extend(&[held[0].receipt.clone()]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent(), before + 1, "one progress ack for one receipt");
}
