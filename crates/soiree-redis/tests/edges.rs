//! Input at the edges: non-finite floats are rejected at emit, every
//! duration option is checked at build, and replay finds an event whose id
//! property is a JSON number.

mod support;

use std::time::Duration;

use futures::StreamExt;
use soiree::{EventBus, EventQueue};
use soiree_redis::Error;
use support::{builder, raw};

const LIMIT: Duration = Duration::from_secs(20);

async fn xlen(server: &support::RedisServer, key: &str) -> u64 {
    let mut conn = raw(server).await;
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_finite_floats_are_rejected_at_emit() {
    let server = server_or_skip!();
    let store = builder(&server, "c1").build().await.unwrap();
    let bus = EventBus::builder()
        .store(store.clone())
        .consume(false)
        .build()
        .unwrap();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let errors: Vec<_> =
            tokio::time::timeout(LIMIT, bus.emit("m.read", vec![1.0, bad]).collect())
                .await
                .expect("the emission ends in time");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            matches!(errors[0], soiree::Error::Serialization(_)),
            "{errors:?}"
        );
    }
    assert_eq!(xlen(&server, store.events_key()).await, 0, "nothing stored");
    let errors: Vec<_> = tokio::time::timeout(LIMIT, bus.emit("m.read", vec![1.0, 2.5]).collect())
        .await
        .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(xlen(&server, store.events_key()).await, 1);
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_duration_option_is_checked_at_build() {
    let server = server_or_skip!();
    let b = || builder(&server, "c1");
    let rejected = [
        ("claim_timeout MAX", b().claim_timeout(Duration::MAX)),
        ("claim_timeout 0", b().claim_timeout(Duration::ZERO)),
        (
            "claim_timeout 366 days",
            b().claim_timeout(Duration::from_secs(366 * 86_400)),
        ),
        ("response_timeout MAX", b().response_timeout(Duration::MAX)),
        ("response_timeout 0", b().response_timeout(Duration::ZERO)),
        ("dedup_ttl MAX", b().dedup_ttl(Duration::MAX)),
        ("dedup_ttl 0", b().dedup_ttl(Duration::ZERO)),
        (
            "dedup_ttl 500 ms",
            b().dedup_ttl(Duration::from_millis(500)),
        ),
        ("events_ttl MAX", b().events_ttl(Some(Duration::MAX))),
        ("events_ttl 0", b().events_ttl(Some(Duration::ZERO))),
        ("results_ttl MAX", b().results_ttl(Some(Duration::MAX))),
        ("results_ttl 0", b().results_ttl(Some(Duration::ZERO))),
    ];
    for (what, builder) in rejected {
        let built = tokio::time::timeout(LIMIT, builder.build())
            .await
            .expect("build ends in time");
        match built {
            Err(Error::InvalidConfig(message)) => {
                let name = what.split(' ').next().unwrap();
                assert!(message.contains(name), "{what}: {message}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    // The largest accepted values give a store that works: the claim scan
    // (XAUTOCLAIM, which rejected Duration::MAX) runs, and entries flow.
    let store = tokio::time::timeout(
        LIMIT,
        b().claim_timeout(Duration::from_secs(365 * 86_400))
            .response_timeout(Duration::from_secs(86_400))
            .dedup_ttl(Duration::from_secs(3650 * 86_400))
            .events_ttl(Some(Duration::from_secs(3650 * 86_400)))
            .results_ttl(Some(Duration::from_secs(3650 * 86_400)))
            .build(),
    )
    .await
    .unwrap()
    .unwrap();
    let event = soiree::Event::new("job.run", 1);
    event.properties().set(soiree::PROPERTY_EVENT_ID, "evt-1");
    let stored = soiree::StoredEvent::from_event(&event).unwrap();
    store.enqueue(&stored).await.unwrap();
    let got = tokio::time::timeout(LIMIT, store.dequeue(10, Duration::from_millis(200)))
        .await
        .unwrap()
        .expect("the claim scan accepts the claim timeout");
    assert_eq!(got.len(), 1);
    soiree::EventStore::save_handler_result(
        &store,
        &soiree::StoredResult::new("job.run", "evt-1", "h", 1, None),
    )
    .await
    .expect("the dedup ttl is accepted by EXPIRE");
    store.ack(&[got[0].receipt.clone()]).await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_finds_an_event_whose_id_is_a_json_number() {
    let server = server_or_skip!();
    let store = builder(&server, "c1").build().await.unwrap();
    let mut conn = raw(&server).await;
    // As another producer (the Go package, a script) may write them.
    let _: String = redis::cmd("XADD")
        .arg(store.events_key())
        .arg("*")
        .arg("event")
        .arg(r#"{"topic":"job.run","payload":1,"properties":{"soiree.event_id":4242}}"#)
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, store.replay("4242"))
        .await
        .unwrap()
        .expect("found in the events stream");
    assert_eq!(xlen(&server, store.events_key()).await, 2);

    // Only in the dead letters, with a float id.
    let _: String = redis::cmd("XADD")
        .arg(store.dead_letter_key())
        .arg("*")
        .arg("entry_id")
        .arg("1-0")
        .arg("error")
        .arg("boom")
        .arg("deliveries")
        .arg(1)
        .arg("event")
        .arg(r#"{"topic":"job.run","payload":2,"properties":{"soiree.event_id":77.5}}"#)
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, store.replay("77.5"))
        .await
        .unwrap()
        .expect("found in the dead letters");
    assert_eq!(xlen(&server, store.events_key()).await, 3);
    for missing in ["4243", "424", "77"] {
        assert!(
            matches!(store.replay(missing).await, Err(Error::NotFound(_))),
            "{missing}"
        );
    }
    let replayed = store.events(None, 10).await.unwrap().items;
    assert_eq!(replayed[1].properties["soiree.event_id"], 4242);
    assert_eq!(replayed[2].payload, 2);
}

#[cfg(not(feature = "tls"))]
#[tokio::test(flavor = "current_thread")]
async fn rediss_without_the_tls_feature_is_a_config_error() {
    let built = tokio::time::timeout(
        LIMIT,
        soiree_redis::RedisStore::builder("rediss://app:s3cret@127.0.0.1:1/").build(),
    )
    .await
    .expect("fails in time");
    match built {
        Err(Error::InvalidConfig(message)) => {
            assert!(message.contains("TLS"), "{message}");
            assert!(!message.contains("s3cret"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn metric_help_texts_end_in_one_period() {
    let server = server_or_skip!();
    let registry = soiree::MetricsRegistry::new();
    let _store = support::builder(&server, "help")
        .metrics_registry(registry.clone())
        .build()
        .await
        .unwrap();
    let text = registry.encode();
    let helps: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("# HELP soiree_store"))
        .collect();
    assert!(!helps.is_empty(), "{text}");
    for line in helps {
        assert!(line.ends_with('.') && !line.ends_with(".."), "{line}");
    }
}
