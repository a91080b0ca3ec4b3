//! Shared listener limits on NATS beyond the conformance checks: the slots
//! in use are listed for the CLI and the dashboard.

mod support;

use std::time::{Duration, SystemTime};

use soiree::{EventStore, Inspect, SlotHold};
use support::{ONE_AT_A_TIME, builder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_slots_lists_the_unexpired_holders_by_key() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    let store = builder(&server.url())
        .prefix("listing")
        .build()
        .await
        .unwrap();
    let limits = store.limits().expect("the store shares limits");
    let long = Duration::from_secs(3600);
    let step = Duration::from_secs(10);
    // A key with characters KV keys forbid, a long one (hashed), and a
    // rate, which is not a slot.
    let odd = "7:mailer/key:a b.>*é".to_owned();
    let long_key = "k".repeat(2000);
    for (key, holder) in [(&odd, "b"), (&odd, "a"), (&long_key, "c")] {
        let taken = tokio::time::timeout(step, limits.acquire_slot(key, 2, holder, long))
            .await
            .expect("acquire timed out")
            .unwrap();
        assert!(taken, "{holder} was refused");
    }
    tokio::time::timeout(step, limits.take_rate("rate", 1, long))
        .await
        .expect("take_rate timed out")
        .unwrap();
    tokio::time::timeout(
        step,
        limits.acquire_slot("short", 1, "d", Duration::from_millis(50)),
    )
    .await
    .expect("acquire timed out")
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let slots = tokio::time::timeout(step, store.limit_slots(100))
        .await
        .expect("limit_slots timed out")
        .unwrap();
    let listed: Vec<(&str, &str)> = slots
        .iter()
        .map(|s| (s.key.as_str(), s.holder.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            (odd.as_str(), "a"),
            (odd.as_str(), "b"),
            (long_key.as_str(), "c")
        ]
    );
    assert!(slots.iter().all(|s| s.expires_at > SystemTime::now()));

    let a = SlotHold {
        key: odd.clone(),
        holder: "a".into(),
    };
    tokio::time::timeout(step, limits.release_slot(&a))
        .await
        .expect("release timed out")
        .unwrap();
    let slots = tokio::time::timeout(step, store.limit_slots(1))
        .await
        .expect("limit_slots timed out")
        .unwrap();
    assert_eq!(slots.len(), 1);
    assert_eq!(
        (slots[0].key.as_str(), slots[0].holder.as_str()),
        (odd.as_str(), "b")
    );
}
