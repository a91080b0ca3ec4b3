//! Non-finite floats (NaN, ±infinity) in a payload are rejected at emit with
//! `Error::Serialization` instead of being stored as JSON `null` (which the
//! typed listeners then fail to decode), as Go's encoder does.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use soiree::{Error, Event, EventBus, EventQueue, MemoryStore, Payload, StoredEvent};

const LIMIT: Duration = Duration::from_secs(20);

#[derive(Clone, Serialize)]
struct Reading {
    sensor: String,
    values: Vec<f64>,
    limits: HashMap<String, f32>,
}

fn reading(value: f64) -> Reading {
    Reading {
        sensor: "s1".into(),
        values: vec![1.0, value],
        limits: HashMap::from([("max".to_owned(), 10.0)]),
    }
}

#[test]
fn stored_events_reject_non_finite_floats() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = StoredEvent::from_event(&Event::new("m.read", reading(bad))).unwrap_err();
        assert!(matches!(err, Error::Serialization(_)), "{err:?}");
        assert!(matches!(
            Payload::new(bad).to_json(),
            Err(Error::Serialization(_))
        ));
    }
    let ok = StoredEvent::from_event(&Event::new("m.read", reading(2.5))).unwrap();
    assert_eq!(ok.payload["values"], serde_json::json!([1.0, 2.5]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emit_with_nan_fails_and_stores_nothing() {
    let store = Arc::new(MemoryStore::queue());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .poll_wait(Duration::from_millis(20))
        .build()
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    bus.on("m.read", move |_ctx| {
        r.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    })
    .unwrap();
    bus.start().unwrap();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let errors: Vec<Error> =
            tokio::time::timeout(LIMIT, bus.emit("m.read", reading(bad)).collect())
                .await
                .expect("the emission ends in time");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(matches!(errors[0], Error::Serialization(_)), "{errors:?}");
    }
    let errors: Vec<Error> =
        tokio::time::timeout(LIMIT, bus.emit("m.read", reading(1.0)).collect())
            .await
            .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .unwrap();
    assert_eq!(store.events().len(), 1, "only the finite one was stored");
    assert_eq!(store.backlog().await.unwrap(), 0);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    bus.close().await.unwrap();
}
