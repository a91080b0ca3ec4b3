//! Time on NATS (issue 21): leader leases between store handles on their
//! own connections, and delayed events that outlive a server restart, are
//! listed soonest first, cancelled by id, and never delivered early.

mod support;

use std::time::{Duration, Instant, SystemTime};

use futures::future::join_all;
use serde_json::json;
use soiree::{Event, EventQueue, EventStore, Inspect, Query, StoredEvent};
use soiree_nats::NatsStore;
use soiree_test::inspect::leases_are_listed;
use support::{ONE_AT_A_TIME, builder};

const LIMIT: Duration = Duration::from_secs(30);

async fn store(url: &str, group: &str) -> NatsStore {
    builder(url)
        .prefix("time")
        .group(group)
        .build()
        .await
        .unwrap()
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {LIMIT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_race_for_a_lease_one_wins_and_a_silent_holder_is_replaced() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    let a = store(&server.url(), "a").await;
    let b = store(&server.url(), "b").await;
    let (la, lb) = (a.leases().unwrap(), b.leases().unwrap());
    let ttl = Duration::from_secs(1);
    let racers = (0..6).map(|n| {
        let (leases, holder) = if n % 2 == 0 {
            (la, format!("a-{n}"))
        } else {
            (lb, format!("b-{n}"))
        };
        async move { leases.acquire("race", &holder, ttl).await.unwrap() }
    });
    // Before the grant's write: it lives at least until `asked + ttl`.
    let asked = Instant::now();
    let granted: Vec<_> = within("racing acquires", join_all(racers))
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(
        granted.len(),
        1,
        "two stores both won the lease: {granted:?}"
    );
    let held = &granted[0];
    // The winner stops renewing: the other store gets the lease, but only
    // once its time to live has passed since the grant.
    let (other, name) = if held.holder.starts_with('a') {
        (lb, "b-x")
    } else {
        (la, "a-x")
    };
    let next = loop {
        if let Some(lease) = within("acquire", other.acquire("race", name, ttl))
            .await
            .unwrap()
        {
            break lease;
        }
        assert!(
            asked.elapsed() < LIMIT,
            "a silent holder was never replaced"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The server's timestamps against this clock: allow a few ms.
    assert!(
        asked.elapsed() + Duration::from_millis(50) >= ttl,
        "taken over {:?} after the grant, before its time to live",
        asked.elapsed()
    );
    assert!(
        next.token > held.token,
        "the new grant's token did not grow"
    );
    let owner = if held.holder.starts_with('a') { la } else { lb };
    assert!(
        !within("renew", owner.renew(held, ttl, None)).await.unwrap(),
        "the replaced holder renewed"
    );
}

fn delayed(id: &str, due: SystemTime) -> StoredEvent {
    let event = Event::new("reminder.due", json!({ "id": id })).deliver_at(due);
    event.properties().set(soiree::PROPERTY_EVENT_ID, id);
    StoredEvent::from_event(&event).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_events_survive_a_restart_are_listed_cancelled_and_never_early() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut server = server_or_skip!();
    let first = store(&server.url(), "mailer").await;
    let due = SystemTime::now() + Duration::from_secs(5);
    let later = due + Duration::from_secs(1);
    within("enqueue", first.enqueue(&delayed("later", later)))
        .await
        .unwrap();
    within("enqueue", first.enqueue(&delayed("soon", due)))
        .await
        .unwrap();
    within("enqueue", first.enqueue(&delayed("cancelled", due)))
        .await
        .unwrap();
    assert_eq!(within("stats", first.stats()).await.unwrap().scheduled, 3);
    assert!(
        within("cancel", first.cancel_scheduled("cancelled"))
            .await
            .unwrap(),
        "a waiting delayed event was not cancelled"
    );
    assert!(
        !within("cancel", first.cancel_scheduled("cancelled"))
            .await
            .unwrap(),
        "a delayed event was cancelled twice"
    );
    // Soonest first, one per page.
    let page = within("scheduled", first.scheduled(&Query::oldest(1)))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].event_id().as_deref(), Some("soon"));
    let cursor = page.next.expect("a second page");
    let page = within(
        "scheduled",
        first.scheduled(&Query::oldest(1).after(&cursor)),
    )
    .await
    .unwrap();
    assert_eq!(page.items[0].event_id().as_deref(), Some("later"));
    assert!(
        page.items[0].due_at >= later,
        "the listing gives an earlier due time"
    );
    drop(first);

    let restart = tokio::task::spawn_blocking(move || server.restart().map(|()| server));
    let server = within("the restart", restart).await.unwrap().unwrap();
    let second = store(&server.url(), "mailer").await;
    let mut got = Vec::new();
    let started = Instant::now();
    while got.len() < 2 {
        assert!(
            started.elapsed() < LIMIT,
            "delayed events lost over a restart: got {got:?}"
        );
        let batch = within("dequeue", second.dequeue(10, Duration::from_millis(500)))
            .await
            .unwrap();
        let arrived = SystemTime::now();
        for delivery in &batch {
            let id = delivery.event.id().unwrap_or_default().to_owned();
            let expected = if id == "later" { later } else { due };
            assert!(
                arrived >= expected,
                "{id} was delivered before its due time"
            );
            got.push(id);
        }
        let receipts: Vec<String> = batch.iter().map(|d| d.receipt.clone()).collect();
        within("ack", second.ack(&receipts)).await.unwrap();
    }
    assert_eq!(
        got,
        ["soon", "later"],
        "the wrong events, or in the wrong order"
    );
    // Nothing else comes: the cancelled event stays cancelled.
    let extra = within("dequeue", second.dequeue(10, Duration::from_secs(1)))
        .await
        .unwrap();
    assert!(extra.is_empty(), "a cancelled delayed event was delivered");
    assert_eq!(within("stats", second.stats()).await.unwrap().scheduled, 0);
}

/// Whether a live grant of the delayed-event mover's lease exists.
async fn mover_lease_held(store: &NatsStore) -> bool {
    let js = async_nats::jetstream::new(store.client().clone());
    let Ok(kv) = js.get_key_value("SOIREE_time_LEASES").await else {
        return false;
    };
    let key: String = "soiree.scheduled-mover"
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    let Ok(Some(entry)) = kv.entry(key).await else {
        return false;
    };
    let Ok(grant) = serde_json::from_slice::<serde_json::Value>(&entry.value) else {
        return false;
    };
    let ttl = Duration::from_millis(grant["ttl_ms"].as_u64().unwrap_or(0));
    !grant["released"].as_bool().unwrap_or(true)
        && SystemTime::from(entry.created) + ttl > SystemTime::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_mover_is_replaced_and_its_delayed_events_still_come() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    let url = server.url();
    let due = SystemTime::now() + Duration::from_secs(2);
    // The first mover runs in a runtime of its own, shut down without
    // releasing its lease: a process that died.
    let dying = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let first = runtime.block_on(async {
            let first = store(&url, "mailer").await;
            first.enqueue(&delayed("orphan", due)).await.unwrap();
            first.dequeue(1, Duration::from_millis(50)).await.unwrap();
            let started = Instant::now();
            while !mover_lease_held(&first).await {
                assert!(started.elapsed() < LIMIT, "no mover took the lease");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            first
        });
        // Its tasks end with the runtime, the mover's release unsent.
        runtime.shutdown_background();
        drop(first);
    });
    within(
        "the first mover",
        tokio::task::spawn_blocking(move || dying.join()),
    )
    .await
    .unwrap()
    .unwrap();
    let second = store(&server.url(), "mailer").await;
    let started = Instant::now();
    let delivery = loop {
        assert!(
            started.elapsed() < LIMIT,
            "the delayed event of a dead mover never came"
        );
        let batch = within("dequeue", second.dequeue(1, Duration::from_millis(500)))
            .await
            .unwrap();
        if let Some(delivery) = batch.into_iter().next() {
            break delivery;
        }
    };
    assert!(SystemTime::now() >= due, "delivered before its due time");
    assert_eq!(delivery.event.id(), Some("orphan"));
    within("ack", second.ack(&[delivery.receipt]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_leases_lists_each_lease_by_name_held_or_not() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = server_or_skip!();
    let store = builder(&server.url())
        .prefix("lease-listing")
        .build()
        .await
        .unwrap();
    let leases = store.leases().expect("the store has leases");
    // A released name with characters KV keys forbid.
    leases_are_listed(leases, &store, "hourly:digest* é").await;
}
