//! `Inspect` on the in-memory store: what the CLI and dashboard see of a bus
//! run, paging, filters, replay and purge of dead letters, the live tail.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use soiree::{DeadLetterSelection, Error, EventBus, Filter, Inspect, MemoryStore, Query};
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
async fn stats_count_what_the_run_left() {
    let (store, bus, _, _) = run().await;
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.events, 15);
    assert_eq!(stats.emitted, 15);
    assert_eq!(stats.dead_letters, 10);
    assert_eq!(stats.backlog, 0);
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.consumers, 1);
    assert!(stats.results >= 15, "{} results", stats.results);
    assert!(stats.taken_at.is_some());
    assert_eq!(store.info().kind, "memory");
    bus.close().await.unwrap();
}

#[tokio::test]
async fn pages_join_without_gaps_in_both_orders() {
    let (store, bus, _, _) = run().await;
    for newest_first in [false, true] {
        let mut query = if newest_first {
            Query::newest(4)
        } else {
            Query::oldest(4)
        };
        let mut ids = Vec::new();
        for _ in 0..10 {
            let page = admin(&store).events(&query).await.unwrap();
            assert!(page.items.len() <= 4);
            ids.extend(page.items.iter().map(|record| record.id.clone()));
            match page.next {
                Some(next) => query.cursor = Some(next),
                None => break,
            }
        }
        let mut expected: Vec<String> = (0..15).map(|i| i.to_string()).collect();
        if newest_first {
            expected.reverse();
        }
        assert_eq!(ids, expected, "newest_first={newest_first}");
    }
    bus.close().await.unwrap();
}

#[tokio::test]
async fn filters_select_by_topic_pattern_event_id_and_time() {
    let (store, bus, _, _) = run().await;
    let users = admin(&store)
        .events(&Query::oldest(100).filter(Filter::default().topic("user.*")))
        .await
        .unwrap();
    assert_eq!(users.items.len(), 5);
    assert!(users.items.iter().all(|r| r.item.topic == "user.created"));

    let id = soiree::inspect::event_id_text(&users.items[2].item).unwrap();
    let one = admin(&store)
        .events(&Query::oldest(100).filter(Filter::default().event_id(id.clone())))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    let results = admin(&store)
        .results(&Query::oldest(100).filter(Filter::default().event_id(id)))
        .await
        .unwrap();
    assert_eq!(results.items.len(), 1);

    let future = SystemTime::now() + Duration::from_secs(3600);
    let none = admin(&store)
        .events(&Query::oldest(100).filter(Filter::default().since(future)))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    let all = admin(&store)
        .events(&Query::oldest(100).filter(Filter::default().until(future)))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 15);
    bus.close().await.unwrap();
}

#[tokio::test]
async fn a_bad_cursor_is_an_error() {
    let store = MemoryStore::queue();
    let err = admin(&store)
        .events(&Query::oldest(10).after("not-a-cursor"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err}");
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
async fn replaying_dead_letters_runs_them_again_and_removes_them() {
    let (store, bus, failing, paid) = run().await;
    failing.store(0, Ordering::SeqCst);
    let letters = admin(&store).dead_letters(&Query::oldest(3)).await.unwrap();
    let ids: Vec<String> = letters.items.iter().map(|l| l.id.clone()).collect();
    let replayed = store
        .replay_dead_letters(&DeadLetterSelection::Ids(ids.clone()))
        .await
        .unwrap();
    assert_eq!(replayed, 3);
    timeout(LIMIT, async {
        while paid.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the replayed events ran");
    timeout(LIMIT, bus.wait_for_idle()).await.unwrap();
    assert_eq!(paid.load(Ordering::SeqCst), 3);
    let left = admin(&store)
        .dead_letters(&Query::oldest(100))
        .await
        .unwrap();
    assert_eq!(left.items.len(), 7);
    assert!(left.items.iter().all(|l| !ids.contains(&l.id)));
    for id in &ids {
        assert!(store.dead_letter(id).await.unwrap().is_none());
    }
    bus.close().await.unwrap();
}

#[tokio::test]
async fn purge_deletes_only_the_selection() {
    let (store, bus, _, _) = run().await;
    let first = admin(&store)
        .dead_letters(&Query::oldest(1))
        .await
        .unwrap()
        .items[0]
        .clone();
    let purged = store
        .purge_dead_letters(&DeadLetterSelection::Ids(vec![first.id.clone()]))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let none = store
        .purge_dead_letters(&DeadLetterSelection::Matching(
            Filter::default().topic("user.*"),
        ))
        .await
        .unwrap();
    assert_eq!(none, 0);
    assert_eq!(store.stats().await.unwrap().dead_letters, 9);
    let rest = store
        .purge_dead_letters(&DeadLetterSelection::Matching(
            Filter::default().topic("order.**"),
        ))
        .await
        .unwrap();
    assert_eq!(rest, 9);
    assert_eq!(store.stats().await.unwrap().dead_letters, 0);
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
async fn pending_shows_a_delivery_whose_listener_runs() {
    let store = Arc::new(MemoryStore::queue());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .build()
        .unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    bus.on("job.run", move |_ctx| {
        let gate = g.clone();
        async move {
            gate.acquire().await.unwrap().forget();
            Ok(())
        }
    })
    .unwrap();
    bus.emit("job.run", 1).persisted().await.unwrap();
    let pending = timeout(LIMIT, async {
        loop {
            let page = store.pending(&Query::oldest(10)).await.unwrap();
            if !page.items.is_empty() {
                break page;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(pending.items.len(), 1);
    assert_eq!(pending.items[0].event.as_ref().unwrap().topic, "job.run");
    assert_eq!(pending.items[0].deliveries, 1);
    assert_eq!(store.consumers().await.unwrap()[0].pending, 1);
    assert_eq!(store.stats().await.unwrap().in_flight, 1);
    gate.add_permits(1);
    timeout(LIMIT, bus.wait_for_idle()).await.unwrap();
    bus.close().await.unwrap();
}

#[tokio::test]
async fn tail_follows_new_events_only() {
    let (store, bus, _, _) = run().await;
    let mut tail = store.tail(Filter::default().topic("user.*"), Duration::from_millis(20));
    // The tail positions itself at the newest event before it yields.
    let started = timeout(Duration::from_millis(200), tail.next()).await;
    assert!(started.is_err(), "nothing new yet: {started:?}");
    bus.emit("order.paid", 99).persisted().await.unwrap();
    bus.emit("user.deleted", 1).persisted().await.unwrap();
    let record = timeout(LIMIT, tail.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(record.item.topic, "user.deleted");
    let mut seen = HashSet::new();
    seen.insert(record.id);
    bus.emit("user.created", 2).persisted().await.unwrap();
    let record = timeout(LIMIT, tail.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(record.item.topic, "user.created");
    assert!(seen.insert(record.id));
    drop(tail);
    bus.close().await.unwrap();
}
