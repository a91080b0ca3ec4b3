//! `Inspect` on the in-memory store, beyond the checks every store passes
//! (`soiree-test`'s `check_inspect`, run on MemoryStore in that crate): the
//! event lookup, replay by event id, and a store without a queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::{DeadLetterSelection, Error, EventBus, Filter, Inspect, MemoryStore, Query};
use soiree_test::inspect::{leases_are_listed, limit_slots_are_listed};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

/// The store as the CLI and dashboard see it (`MemoryStore` has inherent
/// `events()`, `results()` and `dead_letters()` snapshots of its own).
fn admin(store: &MemoryStore) -> &dyn Inspect {
    store
}

/// A queue store after 10 `order.paid` events (each fails while `failing` is
/// set, so each becomes a dead letter) and 5 `user.created` events.
async fn run() -> (
    Arc<MemoryStore>,
    EventBus,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
) {
    let store = Arc::new(MemoryStore::queue());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .build()
        .unwrap();
    let failing = Arc::new(AtomicUsize::new(1));
    let paid = Arc::new(AtomicUsize::new(0));
    let (f, p) = (failing.clone(), paid.clone());
    bus.on_named("ledger", "order.paid", move |_ctx| {
        let (failing, paid) = (f.clone(), p.clone());
        async move {
            if failing.load(Ordering::SeqCst) == 1 {
                return Err("ledger offline".into());
            }
            paid.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .unwrap();
    bus.on("user.*", |_ctx| async { Ok(()) }).unwrap();
    bus.start().unwrap();
    for i in 0..10 {
        bus.emit("order.paid", i).persisted().await.unwrap();
    }
    for i in 0..5 {
        bus.emit("user.created", i).persisted().await.unwrap();
    }
    timeout(LIMIT, bus.wait_for_idle()).await.unwrap();
    (store, bus, failing, paid)
}

#[tokio::test]
async fn event_lookup_gathers_results_and_dead_letters() {
    let (store, bus, _, _) = run().await;
    let letter = admin(&store)
        .dead_letters(&Query::oldest(1))
        .await
        .unwrap()
        .items[0]
        .clone();
    let id = letter.event_id().unwrap();
    let detail = store.event(&id).await.unwrap().expect("found");
    assert_eq!(detail.event.item.topic, "order.paid");
    assert!(!detail.results.is_empty());
    assert!(detail.results.iter().all(|r| r.item.error.is_some()));
    assert_eq!(detail.dead_letters.len(), 1);
    assert!(detail.dead_letters[0].error.contains("ledger offline"));
    assert!(store.event("no-such-event").await.unwrap().is_none());
    bus.close().await.unwrap();
}

#[tokio::test]
async fn replay_by_event_id_delivers_again_and_unknown_ids_are_not_found() {
    let (store, bus, failing, paid) = run().await;
    failing.store(0, Ordering::SeqCst);
    let event = admin(&store)
        .events(&Query::oldest(1).filter(Filter::default().topic("order.paid")))
        .await
        .unwrap()
        .items[0]
        .item
        .clone();
    let id = soiree::inspect::event_id_text(&event).unwrap();
    store.replay(&id).await.unwrap();
    timeout(LIMIT, async {
        while paid.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the replayed event ran");
    let err = store.replay("no-such-event").await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { what: "event", .. }),
        "{err}"
    );
    bus.close().await.unwrap();
}

#[tokio::test]
async fn replay_needs_a_queue() {
    let store = MemoryStore::new();
    let err = store
        .replay_dead_letters(&DeadLetterSelection::Matching(Filter::default()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("queue"), "{err}");
}

#[tokio::test]
async fn leases_and_limit_slots_are_listed() {
    let store = MemoryStore::queue();
    let leases = soiree::EventStore::leases(&store).expect("leases");
    leases_are_listed(leases, &store, "hourly-digest").await;
    let limits = soiree::EventStore::limits(&store).expect("limits");
    limit_slots_are_listed(limits, &store).await;
}
