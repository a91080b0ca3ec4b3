//! `soiree::Inspect` on both databases: the same checks, written once over
//! `Arc<dyn Inspect>` and a factory of fresh stores, run on a throwaway
//! PostgreSQL server and on a SQLite file.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde_json::json;
use soiree::{
    DeadLetterSelection, Event, EventBus, EventQueue, EventStore, Filter, Inspect,
    PROPERTY_EVENT_ID, Query, Record, StoredEvent,
};
use soiree_test::inspect::{leases_are_listed, limit_slots_are_listed};
use support::{TempDir, eventually, within};

const LIMIT: Duration = Duration::from_secs(30);

/// What the checks need of a store: inspection, and the store traits for a
/// bus over it.
#[soiree::async_trait]
trait TestStore: Inspect + EventStore + EventQueue {
    /// The consumer name its leases carry.
    fn consumer(&self) -> String;
    /// Deletes every consumed event (retention with a zero window).
    async fn prune_all(&self) -> u64;
}

macro_rules! test_store {
    ($store:ty) => {
        #[soiree::async_trait]
        impl TestStore for $store {
            fn consumer(&self) -> String {
                self.consumer_name().to_owned()
            }
            async fn prune_all(&self) -> u64 {
                within(LIMIT, "prune", self.prune_consumed(Duration::ZERO))
                    .await
                    .unwrap()
            }
        }
    };
}
#[cfg(feature = "postgres")]
test_store!(soiree_sql::PostgresStore);
#[cfg(feature = "sqlite")]
test_store!(soiree_sql::SqliteStore);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Builds a fresh, empty store (its own database file or schema).
type Factory = Arc<dyn Fn() -> BoxFuture<Arc<dyn TestStore>> + Send + Sync>;

fn inspect(store: &Arc<dyn TestStore>) -> Arc<dyn Inspect> {
    store.clone()
}

fn bus_over(store: &Arc<dyn TestStore>) -> EventBus {
    EventBus::builder()
        .shared_store(store.clone())
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap()
}

fn stored(topic: &str, id: &str) -> StoredEvent {
    let mut properties = serde_json::Map::new();
    properties.insert(PROPERTY_EVENT_ID.to_owned(), json!(id));
    StoredEvent {
        topic: topic.to_owned(),
        payload: json!({ "id": id }),
        properties,
    }
}

/// Appends events without a consumer.
async fn save(store: &Arc<dyn TestStore>, events: &[(&str, String)]) {
    for (topic, id) in events {
        within(LIMIT, "save", store.save_event(&stored(topic, id)))
            .await
            .unwrap();
    }
}

async fn emit(bus: &EventBus, topic: &str, id: &str) {
    let event = Event::new(topic, json!({ "id": id }));
    event.properties().set(PROPERTY_EVENT_ID, id);
    let mut emission = bus.emit(topic, event);
    within(LIMIT, "persisted", emission.persisted())
        .await
        .unwrap();
}

/// Waits until the bus is idle and the group's backlog is empty.
async fn settle(bus: &EventBus, store: &Arc<dyn TestStore>) {
    within(LIMIT, "idle", bus.wait_for_idle()).await;
    let inspect = inspect(store);
    assert!(
        eventually(LIMIT, || async {
            within(LIMIT, "stats", inspect.stats())
                .await
                .unwrap()
                .backlog
                == 0
        })
        .await,
        "every delivery settled"
    );
}

async fn events(store: &dyn Inspect, query: Query) -> soiree::Page<Record<StoredEvent>> {
    within(LIMIT, "events", store.events(&query)).await.unwrap()
}

async fn letters(store: &dyn Inspect, filter: Filter) -> Vec<soiree::DeadLetter> {
    within(
        LIMIT,
        "dead letters",
        store.dead_letters(&Query::oldest(1000).filter(filter)),
    )
    .await
    .unwrap()
    .items
}

fn ids<T>(records: &[Record<T>]) -> Vec<String> {
    records.iter().map(|record| record.id.clone()).collect()
}

/// Reads a whole listing a page at a time.
async fn all_pages(store: &dyn Inspect, first: Query) -> Vec<Record<StoredEvent>> {
    let mut query = first;
    let mut all = Vec::new();
    for _ in 0..1000 {
        let page = events(store, query.clone()).await;
        assert!(page.items.len() <= query.limit);
        all.extend(page.items);
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return all,
        }
    }
    panic!("the listing did not end");
}

/// Counts runs per event id.
#[derive(Default)]
struct Runs(std::sync::Mutex<Vec<String>>);

impl Runs {
    fn of(&self, id: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|r| *r == id).count()
    }
    fn push(&self, id: String) {
        self.0.lock().unwrap().push(id);
    }
}

async fn stats_after_a_run(store: Arc<dyn TestStore>, kind: &str) {
    let inspect = inspect(&store);
    let info = inspect.info();
    assert_eq!(info.kind, kind);
    assert!(!info.location.is_empty());
    assert_eq!(info.group.as_deref(), Some("soiree"));
    let bus = bus_over(&store);
    bus.on("order.*", |_ctx| async { Ok(()) }).unwrap();
    bus.on_named("bill", "order.failed", |_ctx| async {
        Err("card declined".into())
    })
    .unwrap();
    bus.start().unwrap();
    for n in 0..3 {
        emit(&bus, "order.paid", &format!("paid-{n}")).await;
    }
    emit(&bus, "order.failed", "failed-0").await;
    settle(&bus, &store).await;
    let stats = within(LIMIT, "stats", inspect.stats()).await.unwrap();
    assert!(stats.taken_at.is_some());
    assert_eq!(stats.emitted, 4, "{stats:?}");
    assert_eq!(stats.events, 4, "{stats:?}");
    assert_eq!(stats.results, 5, "{stats:?}");
    assert_eq!(stats.dead_letters, 1, "{stats:?}");
    assert_eq!(stats.backlog, 0, "{stats:?}");
    assert_eq!(stats.in_flight, 0, "{stats:?}");
    // The bus's consumer, live by its heartbeat though it holds nothing.
    assert_eq!(stats.consumers, 1, "{stats:?}");
    assert_eq!(stats.oldest_pending_age, None, "{stats:?}");
    let letter = &letters(&*inspect, Filter::default()).await[0];
    assert!(letter.error.contains("card declined"), "{letter:?}");
    assert_eq!(letter.event_id().as_deref(), Some("failed-0"));
    assert!(letter.at.is_some());
    assert_eq!(letter.deliveries, 1);
    // The event's detail: the event, its results, its dead letter.
    let detail = within(LIMIT, "event", inspect.event("failed-0"))
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(detail.event.item.topic, "order.failed");
    assert_eq!(detail.results.len(), 2, "{detail:?}");
    assert_eq!(detail.dead_letters.len(), 1);
    assert!(
        within(LIMIT, "event", inspect.event("nope"))
            .await
            .unwrap()
            .is_none()
    );
    bus.close().await.unwrap();
    // Retention empties the log; `emitted` does not go down.
    assert_eq!(store.prune_all().await, 4);
    let stats = within(LIMIT, "stats", inspect.stats()).await.unwrap();
    assert_eq!((stats.emitted, stats.events), (4, 0), "{stats:?}");
}

async fn paging_with_cursors(store: Arc<dyn TestStore>) {
    let inspect = inspect(&store);
    let batch: Vec<(&str, String)> = (0..23).map(|n| ("page.item", format!("p-{n}"))).collect();
    save(&store, &batch).await;
    let full = events(&*inspect, Query::oldest(1000)).await;
    assert_eq!(full.items.len(), 23);
    assert_eq!(full.next, None);
    let numbers: Vec<i64> = full.items.iter().map(|r| r.id.parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    let event_ids: Vec<String> = full
        .items
        .iter()
        .map(|r| r.item.id().unwrap().to_owned())
        .collect();
    assert_eq!(
        event_ids,
        batch.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>()
    );
    assert!(full.items.iter().all(|r| r.at.is_some()));

    let oldest = all_pages(&*inspect, Query::oldest(5)).await;
    assert_eq!(ids(&oldest), ids(&full.items), "oldest first, paged");
    let newest = all_pages(&*inspect, Query::newest(4)).await;
    let mut reversed = ids(&full.items);
    reversed.reverse();
    assert_eq!(ids(&newest), reversed, "newest first, paged");
    // A page ends exactly at the end: no empty page with a cursor after it.
    let page = events(&*inspect, Query::oldest(23)).await;
    assert_eq!((page.items.len(), page.next), (23, None));

    // A cursor that is not one of the store's ids is an error, not a panic.
    for query in [
        Query::oldest(5).after("not-a-cursor"),
        Query::newest(5).after("1.2"),
    ] {
        let err = within(LIMIT, "events", inspect.events(&query))
            .await
            .unwrap_err();
        assert!(matches!(err, soiree::Error::Store(_)), "{err:?}");
        assert!(err.to_string().contains("cursor"), "{err}");
    }
    for listing in ["results", "dead letters", "pending"] {
        let query = Query::oldest(5).after("x");
        let err = match listing {
            "results" => inspect.results(&query).await.map(|_| ()),
            "dead letters" => inspect.dead_letters(&query).await.map(|_| ()),
            _ => inspect.pending(&query).await.map(|_| ()),
        }
        .unwrap_err();
        assert!(matches!(err, soiree::Error::Store(_)), "{listing}: {err:?}");
    }
}

async fn filters(store: Arc<dyn TestStore>) {
    let inspect = inspect(&store);
    save(
        &store,
        &[
            ("order.paid", "o-1".into()),
            ("order.refund.sent", "o-2".into()),
            ("user.created", "u-1".into()),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let middle = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(30)).await;
    save(
        &store,
        &[("order.paid", "o-3".into()), ("user.deleted", "u-2".into())],
    )
    .await;
    let topics = |page: &soiree::Page<Record<StoredEvent>>| -> Vec<String> {
        page.items
            .iter()
            .map(|r| r.item.id().unwrap().to_owned())
            .collect()
    };
    let with = |filter: Filter| Query::oldest(100).filter(filter);
    let page = events(&*inspect, with(Filter::default().topic("order.*"))).await;
    assert_eq!(topics(&page), ["o-1", "o-3"]);
    let page = events(&*inspect, with(Filter::default().topic("order.**"))).await;
    assert_eq!(topics(&page), ["o-1", "o-2", "o-3"]);
    let page = events(&*inspect, with(Filter::default().topic("user.created"))).await;
    assert_eq!(topics(&page), ["u-1"]);
    let page = events(&*inspect, with(Filter::default().event_id("o-2"))).await;
    assert_eq!(topics(&page), ["o-2"]);
    let page = events(&*inspect, with(Filter::default().since(middle))).await;
    assert_eq!(topics(&page), ["o-3", "u-2"]);
    let page = events(&*inspect, with(Filter::default().until(middle))).await;
    assert_eq!(topics(&page), ["o-1", "o-2", "u-1"]);
    let filter = Filter::default().topic("user.*").since(middle);
    let page = events(&*inspect, Query::newest(100).filter(filter)).await;
    assert_eq!(topics(&page), ["u-2"]);
    let page = events(&*inspect, with(Filter::default().event_id("none"))).await;
    assert!(page.items.is_empty());
    // A filtered page of one: the cursor goes on to the next match.
    let first = events(
        &*inspect,
        Query::oldest(1).filter(Filter::default().topic("order.*")),
    )
    .await;
    assert_eq!(topics(&first), ["o-1"]);
    let second = events(
        &*inspect,
        Query::oldest(1)
            .filter(Filter::default().topic("order.*"))
            .after(first.next.expect("more follow")),
    )
    .await;
    assert_eq!(topics(&second), ["o-3"]);

    // Results are filtered the same way.
    let bus = bus_over(&store);
    bus.on_named("audit", "user.*", |_ctx| async { Ok(()) })
        .unwrap();
    bus.start().unwrap();
    settle(&bus, &store).await;
    let results = within(
        LIMIT,
        "results",
        inspect.results(&Query::oldest(100).filter(Filter::default().event_id("u-2"))),
    )
    .await
    .unwrap();
    assert_eq!(results.items.len(), 1, "{results:?}");
    assert_eq!(results.items[0].item.handler_id, "audit");
    assert!(results.items[0].at.is_some());
    let results = within(
        LIMIT,
        "results",
        inspect.results(&Query::oldest(100).filter(Filter::default().topic("order.*"))),
    )
    .await
    .unwrap();
    assert!(results.items.is_empty());
    bus.close().await.unwrap();
}

async fn pending_shows_a_held_lease(store: Arc<dyn TestStore>) {
    let inspect = inspect(&store);
    let bus = bus_over(&store);
    let started = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    {
        let (started, gate) = (Arc::clone(&started), Arc::clone(&gate));
        bus.on_named("slow", "job.run", move |_ctx| {
            let (started, gate) = (Arc::clone(&started), Arc::clone(&gate));
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                let _permit = gate.acquire().await;
                Ok(())
            }
        })
        .unwrap();
        bus.start().unwrap();
    }
    emit(&bus, "job.run", "job-1").await;
    assert!(
        eventually(LIMIT, || async { started.load(Ordering::SeqCst) == 1 }).await,
        "the listener started"
    );
    let page = within(LIMIT, "pending", inspect.pending(&Query::oldest(10)))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "{page:?}");
    let held = &page.items[0];
    assert_eq!(held.consumer, store.consumer());
    assert_eq!((held.events, held.deliveries), (1, 1), "{held:?}");
    assert_eq!(held.event_ids, ["job-1"], "{held:?}");
    assert!(
        held.expires_in
            .is_some_and(|left| left <= Duration::from_secs(30)),
        "{held:?}"
    );
    assert!(held.idle < Duration::from_secs(20), "{held:?}");
    let newest = within(LIMIT, "pending", inspect.pending(&Query::newest(10)))
        .await
        .unwrap();
    assert_eq!(newest.items.len(), 1);
    assert_eq!(newest.items[0].id, held.id);
    let after = within(
        LIMIT,
        "pending",
        inspect.pending(&Query::oldest(10).after(held.id.clone())),
    )
    .await
    .unwrap();
    assert!(after.items.is_empty(), "{after:?}");
    let consumers = within(LIMIT, "consumers", inspect.consumers())
        .await
        .unwrap();
    assert_eq!(consumers.len(), 1, "{consumers:?}");
    assert_eq!(consumers[0].name, store.consumer());
    assert_eq!(consumers[0].pending, 1);
    assert!(consumers[0].idle.is_some());
    let stats = within(LIMIT, "stats", inspect.stats()).await.unwrap();
    assert_eq!(
        (stats.in_flight, stats.consumers, stats.backlog),
        (1, 1, 1),
        "{stats:?}"
    );
    gate.add_permits(10);
    settle(&bus, &store).await;
    assert!(
        eventually(LIMIT, || async {
            inspect
                .pending(&Query::oldest(10))
                .await
                .unwrap()
                .items
                .is_empty()
        })
        .await,
        "the lease was dropped"
    );
    bus.close().await.unwrap();
}

async fn replay_and_purge_dead_letters(store: Arc<dyn TestStore>) {
    let inspect = inspect(&store);
    let bus = bus_over(&store);
    let runs = Arc::new(Runs::default());
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    {
        let (runs, broken) = (Arc::clone(&runs), Arc::clone(&broken));
        bus.on_named("charge", "bill.*", move |ctx| {
            runs.push(ctx.event_id().unwrap_or_default());
            let fail = broken.load(Ordering::SeqCst);
            async move {
                if fail {
                    Err("gateway down".into())
                } else {
                    Ok(())
                }
            }
        })
        .unwrap();
        bus.start().unwrap();
    }
    emit(&bus, "bill.card", "card-1").await;
    emit(&bus, "bill.card", "card-2").await;
    emit(&bus, "bill.wire", "wire-1").await;
    emit(&bus, "bill.wire", "wire-2").await;
    settle(&bus, &store).await;
    let dead = letters(&*inspect, Filter::default()).await;
    assert_eq!(dead.len(), 4, "{dead:?}");
    let card_1 = dead
        .iter()
        .find(|letter| letter.event_id().as_deref() == Some("card-1"))
        .unwrap()
        .clone();
    assert_eq!(
        within(LIMIT, "dead letter", inspect.dead_letter(&card_1.id))
            .await
            .unwrap(),
        Some(card_1.clone())
    );
    assert_eq!(
        within(LIMIT, "dead letter", inspect.dead_letter("999999"))
            .await
            .unwrap(),
        None
    );

    // Fixed: replay one letter by id; it runs again and leaves the letters.
    broken.store(false, Ordering::SeqCst);
    let selection = DeadLetterSelection::Ids(vec![card_1.id.clone(), "not-an-id".into()]);
    let replayed = within(LIMIT, "replay", inspect.replay_dead_letters(&selection))
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    assert!(
        eventually(LIMIT, || async { runs.of("card-1") == 2 }).await,
        "the replayed letter ran again"
    );
    settle(&bus, &store).await;
    let left = letters(&*inspect, Filter::default()).await;
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.iter().all(|letter| letter.id != card_1.id));
    // Replaying the same id again finds nothing.
    let again = within(LIMIT, "replay", inspect.replay_dead_letters(&selection))
        .await
        .unwrap();
    assert_eq!(again, 0);

    // Purge by filter: only the matching letters go.
    let wires = DeadLetterSelection::Matching(Filter::default().topic("bill.wire"));
    let purged = within(LIMIT, "purge", inspect.purge_dead_letters(&wires))
        .await
        .unwrap();
    assert_eq!(purged, 2);
    let left = letters(&*inspect, Filter::default()).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].event_id().as_deref(), Some("card-2"));
    assert_eq!(runs.of("wire-1"), 1, "purged letters are not replayed");

    // Replay by filter takes the rest.
    let all = DeadLetterSelection::Matching(Filter::default().topic("bill.**"));
    let replayed = within(LIMIT, "replay", inspect.replay_dead_letters(&all))
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    assert!(
        eventually(LIMIT, || async { runs.of("card-2") == 2 }).await,
        "replayed by filter"
    );
    settle(&bus, &store).await;
    assert!(letters(&*inspect, Filter::default()).await.is_empty());
    let stats = within(LIMIT, "stats", inspect.stats()).await.unwrap();
    assert_eq!(stats.dead_letters, 0);
    bus.close().await.unwrap();
}

/// A bus with a plain listener (a new generated id per bus) and a named one.
fn user_bus(store: &Arc<dyn TestStore>, plain: &Arc<Runs>, named: &Arc<Runs>) -> EventBus {
    let bus = bus_over(store);
    let plain = Arc::clone(plain);
    bus.on("user.created", move |ctx| {
        plain.push(ctx.event_id().unwrap_or_default());
        async { Ok(()) }
    })
    .unwrap();
    let named = Arc::clone(named);
    bus.on_named("welcome", "user.created", move |ctx| {
        named.push(ctx.event_id().unwrap_or_default());
        async { Ok(()) }
    })
    .unwrap();
    bus.start().unwrap();
    bus
}

async fn replay_an_event_from_the_log(store: Arc<dyn TestStore>) {
    let inspect = inspect(&store);
    let plain = Arc::new(Runs::default());
    let named = Arc::new(Runs::default());
    let bus = user_bus(&store, &plain, &named);
    emit(&bus, "user.created", "ada").await;
    emit(&bus, "user.created", "bob").await;
    settle(&bus, &store).await;
    assert_eq!((plain.of("ada"), named.of("ada")), (1, 1));
    bus.close().await.unwrap();

    // Later, another process: its plain listener has a new id.
    let bus = user_bus(&store, &plain, &named);
    within(LIMIT, "replay", inspect.replay("ada"))
        .await
        .unwrap();
    assert!(
        eventually(LIMIT, || async { plain.of("ada") == 2 }).await,
        "the event was delivered again"
    );
    settle(&bus, &store).await;
    assert_eq!(
        named.of("ada"),
        1,
        "a named listener that succeeded is skipped"
    );
    assert_eq!(
        (plain.of("bob"), named.of("bob")),
        (1, 1),
        "only that event"
    );

    let err = within(LIMIT, "replay", inspect.replay("nobody"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, soiree::Error::NotFound { what: "event", id } if id == "nobody"),
        "{err:?}"
    );
    bus.close().await.unwrap();
}

async fn tail_follows_new_events(store: Arc<dyn TestStore>) {
    let inspect = inspect(&store);
    save(&store, &[("tail.before", "before".into())]).await;
    let mut tail = inspect.tail(Filter::default().topic("tail.*"), Duration::from_millis(20));
    let emitter = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        save(
            &store,
            &[
                ("other.topic", "other".into()),
                ("tail.after", "after".into()),
            ],
        )
        .await;
    };
    let (record, ()) = within(LIMIT, "tail", async { tokio::join!(tail.next(), emitter) }).await;
    let record = record.expect("the tail goes on").unwrap();
    assert_eq!(record.item.topic, "tail.after");
    assert_eq!(record.item.id(), Some("after"));
}

/// Runs every check, each on a fresh store.
async fn run_all(fresh: Factory, kind: &str) {
    stats_after_a_run(fresh().await, kind).await;
    paging_with_cursors(fresh().await).await;
    filters(fresh().await).await;
    pending_shows_a_held_lease(fresh().await).await;
    replay_and_purge_dead_letters(fresh().await).await;
    replay_an_event_from_the_log(fresh().await).await;
    tail_follows_new_events(fresh().await).await;
    topic_counts_of_the_newest_events(fresh().await).await;
    leases_and_limit_slots_are_listed(fresh().await).await;
}

/// A held lease, a released one and the slots taken are listed as the
/// store holds them; an expired or freed slot is not.
async fn leases_and_limit_slots_are_listed(store: Arc<dyn TestStore>) {
    let inspect = inspect(&store);
    let leases = store.leases().expect("leases");
    leases_are_listed(leases, &*inspect, "hourly-digest").await;
    let limits = store.limits().expect("limits");
    limit_slots_are_listed(limits, &*inspect).await;
}

/// Per-topic counts of the newest events, as the database counts them.
async fn topic_counts_of_the_newest_events(store: Arc<dyn TestStore>) {
    let mut events = Vec::new();
    for i in 0..5 {
        events.push(("order.paid", format!("old-{i}")));
    }
    for i in 0..3 {
        events.push(("user.created", format!("user-{i}")));
        events.push(("order.paid", format!("order-{i}")));
    }
    events.push(("invoice.sent", "invoice-0".to_owned()));
    save(&store, &events).await;
    let inspect = inspect(&store);
    // The newest 7: invoice, then three (order, user) pairs.
    let counts = within(LIMIT, "topic counts", inspect.topic_counts(7))
        .await
        .unwrap();
    assert_eq!(counts.scanned, 7);
    assert_eq!(
        counts.topics,
        vec![
            ("order.paid".to_owned(), 3),
            ("user.created".to_owned(), 3),
            ("invoice.sent".to_owned(), 1),
        ]
    );
    let all = within(LIMIT, "topic counts", inspect.topic_counts(1_000))
        .await
        .unwrap();
    assert_eq!(all.scanned, events.len() as u64);
    assert_eq!(all.topics[0], ("order.paid".to_owned(), 8));
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_inspect() {
    let dir = Arc::new(TempDir::new());
    let fresh: Factory = Arc::new(move || {
        let dir = Arc::clone(&dir);
        Box::pin(async move {
            let store = within(
                LIMIT,
                "open",
                support::sqlite_builder(&dir.db(), "inspector").build(),
            )
            .await
            .unwrap();
            assert!(
                store.location().ends_with(".sqlite"),
                "{}",
                store.location()
            );
            Arc::new(store) as Arc<dyn TestStore>
        })
    });
    within(
        Duration::from_secs(240),
        "sqlite checks",
        run_all(fresh, "sqlite"),
    )
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_inspect() {
    let server = Arc::new(pg_or_skip!());
    let fresh: Factory = Arc::new(move || {
        let server = Arc::clone(&server);
        Box::pin(async move {
            let store = within(
                LIMIT,
                "connect",
                support::pg_builder(&server, "inspector").build(),
            )
            .await
            .unwrap();
            assert!(
                store.location().starts_with("127.0.0.1:"),
                "{}",
                store.location()
            );
            Arc::new(store) as Arc<dyn TestStore>
        })
    });
    let _ = TempDir::new;
    within(
        Duration::from_secs(240),
        "postgres checks",
        run_all(fresh, "postgres"),
    )
    .await;
}
