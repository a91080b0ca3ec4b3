//! Failed deliveries stay visible and replayable on both databases: a
//! listener that still fails goes to the dead letters with its error (or
//! through the retry table with `FailurePolicy::Redeliver`), a poison event
//! does not block its neighbours, `replay` runs it again with the same event
//! id; `release` hands back undispatched deliveries without counting one;
//! a listener running longer than the lease timeout runs once.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use soiree::{Event, EventBus, EventQueue, EventStore, PROPERTY_EVENT_ID, StoredEvent};
use soiree_sql::{Error, FailurePolicy, SqlDeadLetter, SqlDeadLetterFilter};
use soiree_test::wait::until_drained;
use support::{TempDir, eventually, within};

const LIMIT: Duration = Duration::from_secs(30);

/// What the tests need of a store beyond the soiree traits.
#[soiree::async_trait]
trait Letters: EventStore + EventQueue + Clone + 'static {
    async fn letters(&self) -> Vec<SqlDeadLetter>;
    async fn replay_one(&self, event_id: &str) -> soiree_sql::Result<u64>;
    async fn replay_all(&self) -> u64;
}

macro_rules! letters {
    ($store:ty) => {
        #[soiree::async_trait]
        impl Letters for $store {
            async fn letters(&self) -> Vec<SqlDeadLetter> {
                within(LIMIT, "dead letters", self.sql_dead_letters(None, 100))
                    .await
                    .unwrap()
                    .items
            }
            async fn replay_one(&self, event_id: &str) -> soiree_sql::Result<u64> {
                within(LIMIT, "replay", self.replay_dead_letters_of(event_id)).await
            }
            async fn replay_all(&self) -> u64 {
                within(
                    LIMIT,
                    "replay all",
                    self.replay_sql_dead_letters(&SqlDeadLetterFilter::all()),
                )
                .await
                .unwrap()
            }
        }
    };
}
#[cfg(feature = "postgres")]
letters!(soiree_sql::PostgresStore);
#[cfg(feature = "sqlite")]
letters!(soiree_sql::SqliteStore);

fn bus_over(store: &impl Letters) -> EventBus {
    EventBus::builder()
        .store(store.clone())
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap()
}

async fn emit(bus: &EventBus, topic: &str, id: &str) {
    let event = Event::new(topic, serde_json::json!({ "id": id }));
    event.properties().set(PROPERTY_EVENT_ID, id);
    let mut emission = bus.emit(topic, event);
    within(LIMIT, "persisted", emission.persisted())
        .await
        .unwrap();
}

async fn settle(bus: &EventBus, store: &impl Letters) {
    within(LIMIT, "idle", bus.wait_for_idle()).await;
    until_drained(LIMIT, store).await;
}

/// Runs per event id, and which ids ran successfully.
#[derive(Default)]
struct Runs {
    runs: Mutex<Vec<String>>,
    ok: Mutex<Vec<String>>,
}

impl Runs {
    fn of(&self, id: &str) -> usize {
        self.runs
            .lock()
            .unwrap()
            .iter()
            .filter(|r| *r == id)
            .count()
    }
    fn total(&self) -> usize {
        self.runs.lock().unwrap().len()
    }
}

/// A listener that fails for `poison` while `broken` is set.
fn charge(bus: &EventBus, runs: &Arc<Runs>, broken: &Arc<AtomicBool>) {
    let (runs, broken) = (Arc::clone(runs), Arc::clone(broken));
    bus.on_named("charge", "order.*", move |ctx| {
        let id = ctx.event_id().unwrap_or_default();
        runs.runs.lock().unwrap().push(id.clone());
        let fail = id == "poison" && broken.load(Ordering::SeqCst);
        if !fail {
            runs.ok.lock().unwrap().push(id);
        }
        async move {
            if fail {
                Err("card declined".into())
            } else {
                Ok(())
            }
        }
    })
    .unwrap();
}

async fn dead_letter_then_replay(store: impl Letters) {
    let bus = bus_over(&store);
    let runs = Arc::new(Runs::default());
    let broken = Arc::new(AtomicBool::new(true));
    charge(&bus, &runs, &broken);
    bus.start().unwrap();
    emit(&bus, "order.paid", "poison").await;
    for n in 0..4 {
        emit(&bus, "order.paid", &format!("ok-{n}")).await;
    }
    settle(&bus, &store).await;
    // The poison event did not block its neighbours: each ran once.
    for n in 0..4 {
        assert_eq!(runs.of(&format!("ok-{n}")), 1);
    }
    assert_eq!(runs.of("poison"), 1, "dead-lettered at once, not retried");
    let dead = store.letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].error.contains("card declined"), "{dead:?}");
    assert_eq!(dead[0].event_id.as_deref(), Some("poison"));
    assert_eq!(dead[0].deliveries, 1);
    let event = dead[0].event().expect("the event is kept");
    assert_eq!(event.topic, "order.paid");

    assert!(matches!(
        store.replay_one("missing").await,
        Err(Error::NotFound(_))
    ));
    // Fixed: the replay runs the listener again, with the same event id.
    broken.store(false, Ordering::SeqCst);
    assert_eq!(store.replay_one("poison").await.unwrap(), 1);
    assert!(eventually(LIMIT, || async { runs.of("poison") == 2 }).await);
    settle(&bus, &store).await;
    assert_eq!(runs.of("poison"), 2);
    assert!(runs.ok.lock().unwrap().contains(&"poison".to_owned()));
    assert!(store.letters().await.is_empty());
    assert_eq!(runs.total(), 6);
    within(LIMIT, "close", bus.close()).await.unwrap();
}

async fn redeliver_then_dead_letter(store: impl Letters) {
    let bus = bus_over(&store);
    let runs = Arc::new(Runs::default());
    let broken = Arc::new(AtomicBool::new(true));
    charge(&bus, &runs, &broken);
    bus.start().unwrap();
    emit(&bus, "order.paid", "poison").await;
    emit(&bus, "order.paid", "ok-0").await;
    assert!(
        eventually(LIMIT, || async { !store.letters().await.is_empty() }).await,
        "dead-lettered after max_deliveries"
    );
    settle(&bus, &store).await;
    assert_eq!(runs.of("poison"), 3, "delivered max_deliveries times");
    assert_eq!(runs.of("ok-0"), 1);
    let dead = store.letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].deliveries, 3);
    assert!(dead[0].error.contains("card declined"), "{dead:?}");
    broken.store(false, Ordering::SeqCst);
    assert_eq!(store.replay_all().await, 1);
    assert!(eventually(LIMIT, || async { runs.of("poison") == 4 }).await);
    settle(&bus, &store).await;
    assert_eq!(runs.of("poison"), 4);
    assert!(store.letters().await.is_empty());
    within(LIMIT, "close", bus.close()).await.unwrap();
}

fn queued(n: u64) -> StoredEvent {
    let mut properties = serde_json::Map::new();
    properties.insert(PROPERTY_EVENT_ID.to_owned(), format!("evt-{n}").into());
    StoredEvent {
        topic: "test.queued".to_owned(),
        payload: serde_json::json!({ "n": n }),
        properties,
    }
}

/// `first` reads ahead 10 events, takes 3, hands back 2 of them (and its
/// buffer) and acknowledges 1: `second` gets the other 9, none counted as
/// delivered twice.
async fn release_hands_back(first: impl Letters, second: impl Letters) {
    for n in 0..10 {
        within(LIMIT, "enqueue", first.enqueue(&queued(n)))
            .await
            .unwrap();
    }
    let taken = within(LIMIT, "dequeue", first.dequeue(3, LIMIT))
        .await
        .unwrap();
    assert_eq!(taken.len(), 3);
    let receipts: Vec<String> = taken.iter().map(|d| d.receipt.clone()).collect();
    within(LIMIT, "release", first.release(&receipts[1..]))
        .await
        .unwrap();
    within(LIMIT, "ack", first.ack(&receipts[..1]))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while seen.len() < 9 && tokio::time::Instant::now() < deadline {
        let batch = within(
            LIMIT,
            "dequeue",
            second.dequeue(10, Duration::from_millis(200)),
        )
        .await
        .unwrap();
        seen.extend(batch);
    }
    let mut ns: Vec<u64> = seen
        .iter()
        .map(|d| d.event.payload["n"].as_u64().unwrap())
        .collect();
    ns.sort_unstable();
    assert_eq!(ns, (1..10).collect::<Vec<_>>());
    assert!(
        seen.iter().all(|d| d.delivery_count == 1),
        "handed back without counting: {:?}",
        seen.iter().map(|d| d.delivery_count).collect::<Vec<_>>()
    );
    let receipts: Vec<String> = seen.iter().map(|d| d.receipt.clone()).collect();
    within(LIMIT, "ack", second.ack(&receipts)).await.unwrap();
    assert_eq!(within(LIMIT, "backlog", second.backlog()).await.unwrap(), 0);
}

/// A listener that runs for several lease timeouts keeps its lease: it runs
/// once, though a second consumer of the group is polling all along.
async fn long_handler_runs_once(first: impl Letters, second: impl Letters) {
    let runs = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let buses = vec![bus_over(&first), bus_over(&second)];
    for bus in &buses {
        let (r, d) = (Arc::clone(&runs), Arc::clone(&done));
        bus.on_named("slow", "job.slow", move |_ctx| {
            r.fetch_add(1, Ordering::SeqCst);
            let d = Arc::clone(&d);
            async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                d.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .unwrap();
        bus.start().unwrap();
    }
    emit(&buses[0], "job.slow", "slow-1").await;
    assert!(eventually(LIMIT, || async { done.load(Ordering::SeqCst) == 1 }).await);
    for bus in &buses {
        within(LIMIT, "idle", bus.wait_for_idle()).await;
    }
    // Three more lease timeouts: an expired lease would be claimed by now.
    tokio::time::sleep(Duration::from_millis(900)).await;
    settle(&buses[1], &first).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "ran once");
    assert!(first.letters().await.is_empty());
    for bus in buses {
        within(LIMIT, "close", bus.close()).await.unwrap();
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use support::sqlite_builder;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_listener_is_dead_lettered_and_replayed() {
        let dir = TempDir::new();
        let store = sqlite_builder(&dir.db(), "c1").build().await.unwrap();
        dead_letter_then_replay(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redeliver_retries_then_dead_letters() {
        let dir = TempDir::new();
        let store = sqlite_builder(&dir.db(), "c1")
            .on_failure(FailurePolicy::Redeliver)
            .retry_backoff(Duration::from_millis(20))
            .max_deliveries(3)
            .build()
            .await
            .unwrap();
        redeliver_then_dead_letter(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn release_hands_back_without_counting_a_delivery() {
        let dir = TempDir::new();
        let path = dir.db();
        let first = sqlite_builder(&path, "c1")
            .batch_size(10)
            .build()
            .await
            .unwrap();
        let second = sqlite_builder(&path, "c2").build().await.unwrap();
        release_hands_back(first, second).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listener_longer_than_the_lease_runs_once() {
        let dir = TempDir::new();
        let path = dir.db();
        let lease = Duration::from_millis(300);
        let first = sqlite_builder(&path, "c1")
            .lease_timeout(lease)
            .build()
            .await
            .unwrap();
        let second = sqlite_builder(&path, "c2")
            .lease_timeout(lease)
            .build()
            .await
            .unwrap();
        long_handler_runs_once(first, second).await;
    }

    /// The deprecated names (they hid `soiree::Inspect`'s) still answer as
    /// the new ones do.
    #[tokio::test]
    #[allow(deprecated)]
    async fn the_old_dead_letter_names_still_work() {
        let dir = TempDir::new();
        let store = sqlite_builder(&dir.db(), "c1").build().await.unwrap();
        let page = within(LIMIT, "list", store.dead_letters(None, 10)).await;
        assert!(page.unwrap().items.is_empty());
        let missing = within(LIMIT, "replay", store.replay("nobody")).await;
        assert!(matches!(missing, Err(Error::NotFound(id)) if id == "nobody"));
        let all = SqlDeadLetterFilter::all();
        let none = within(LIMIT, "replay all", store.replay_dead_letters(&all)).await;
        assert_eq!(none.unwrap(), 0);
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::pg_or_skip;
    use support::{fresh_schema, pg_builder, pg_builder_in};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_listener_is_dead_lettered_and_replayed() {
        let server = pg_or_skip!();
        let store = pg_builder(&server, "c1").build().await.unwrap();
        dead_letter_then_replay(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redeliver_retries_then_dead_letters() {
        let server = pg_or_skip!();
        let store = pg_builder(&server, "c1")
            .on_failure(FailurePolicy::Redeliver)
            .retry_backoff(Duration::from_millis(20))
            .max_deliveries(3)
            .build()
            .await
            .unwrap();
        redeliver_then_dead_letter(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn release_hands_back_without_counting_a_delivery() {
        let server = pg_or_skip!();
        let schema = fresh_schema();
        let first = pg_builder_in(&server, &schema, "c1")
            .batch_size(10)
            .build()
            .await
            .unwrap();
        let second = pg_builder_in(&server, &schema, "c2").build().await.unwrap();
        release_hands_back(first, second).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listener_longer_than_the_lease_runs_once() {
        let server = pg_or_skip!();
        let schema = fresh_schema();
        let lease = Duration::from_millis(300);
        let first = pg_builder_in(&server, &schema, "c1")
            .lease_timeout(lease)
            .build()
            .await
            .unwrap();
        let second = pg_builder_in(&server, &schema, "c2")
            .lease_timeout(lease)
            .build()
            .await
            .unwrap();
        long_handler_runs_once(first, second).await;
    }
}
