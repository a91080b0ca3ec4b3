//! Delayed and periodic events: never delivered early, cancellable, held by the bus
//! without a store (or without a queue) and by a queue store that
//! schedules; refused by a queue store that does not. Run on a paused
//! clock, which moves only when every task waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use soiree::{
    Delivery, Error, EventBus, EventQueue, EventStore, Inspect, MemoryStore, PROPERTY_DUE_AT,
    Query, Result, StoredEvent, StoredResult, async_trait,
};

const HOUR: Duration = Duration::from_secs(3600);

fn counting(bus: &EventBus, pattern: &str) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    bus.on(pattern, move |_ctx| {
        let seen = Arc::clone(&seen);
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .unwrap();
    count
}

/// Lets `by` pass on the paused clock, then lets the bus finish.
async fn pass(bus: &EventBus, by: Duration) {
    tokio::time::sleep(by).await;
    tokio::task::yield_now().await;
    bus.wait_for_idle().await;
}

#[tokio::test(start_paused = true)]
async fn without_a_store_a_delayed_event_runs_at_its_due_time_and_never_before() {
    let bus = EventBus::new();
    let count = counting(&bus, "invoice.remind");
    let mut emission = bus.emit_after("invoice.remind", 42, HOUR);
    let id = emission.persisted().await.unwrap();
    assert!(!id.is_empty(), "the emission names the event");
    assert!(
        emission.next().await.is_none(),
        "the emission ends once held"
    );
    assert_eq!(bus.scheduled().len(), 1);
    assert_eq!(bus.scheduled()[0].0, id);

    pass(&bus, HOUR - Duration::from_millis(1)).await;
    assert_eq!(count.load(Ordering::SeqCst), 0, "one millisecond early");
    pass(&bus, Duration::from_millis(1)).await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(bus.scheduled().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_due_time_past_delivers_at_once() {
    let bus = EventBus::new();
    let count = counting(&bus, "invoice.remind");
    let past = std::time::SystemTime::now() - HOUR;
    let errors: Vec<Error> = bus.emit_at("invoice.remind", 1, past).collect().await;
    assert!(errors.is_empty());
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(bus.scheduled().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_event_is_never_delivered() {
    let bus = EventBus::new();
    let count = counting(&bus, "cart.abandoned");
    let id = bus
        .emit_after("cart.abandoned", "cart-7", HOUR)
        .persisted()
        .await
        .unwrap();
    let kept = bus
        .emit_after("cart.abandoned", "cart-8", HOUR)
        .persisted()
        .await
        .unwrap();
    assert!(bus.cancel_scheduled(&id).await.unwrap());
    assert!(!bus.cancel_scheduled(&id).await.unwrap(), "cancelled once");
    assert!(!bus.cancel_scheduled("no-such-event").await.unwrap());
    pass(&bus, HOUR * 2).await;
    assert_eq!(count.load(Ordering::SeqCst), 1, "only the other event ran");
    assert!(
        !bus.cancel_scheduled(&kept).await.unwrap(),
        "a delivered event cannot be cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_without_a_queue_persists_at_once_and_delivers_when_due() {
    let store = Arc::new(MemoryStore::new());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .build()
        .unwrap();
    let count = counting(&bus, "invoice.remind");
    let id = bus
        .emit_after("invoice.remind", 42, HOUR)
        .persisted()
        .await
        .unwrap();
    let events = store.events();
    assert_eq!(events.len(), 1, "persisted before it is due");
    assert!(events[0].properties.contains_key(PROPERTY_DUE_AT));
    assert!(events[0].due_at().unwrap().is_some());
    assert_eq!(events[0].id(), Some(id.as_str()));

    pass(&bus, HOUR - Duration::from_secs(1)).await;
    assert_eq!(count.load(Ordering::SeqCst), 0);
    pass(&bus, Duration::from_secs(1)).await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(store.results().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_queue_store_that_schedules_holds_the_event_and_lists_it() {
    let store = Arc::new(MemoryStore::queue());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .build()
        .unwrap();
    let count = counting(&bus, "invoice.remind");
    bus.start().unwrap();
    let id = bus
        .emit_after("invoice.remind", 42, HOUR)
        .persisted()
        .await
        .unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.scheduled, stats.backlog), (1, 0));
    let listed = store.scheduled(&Query::oldest(10)).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].event_id().as_deref(), Some(id.as_str()));

    pass(&bus, HOUR - Duration::from_secs(1)).await;
    assert_eq!(count.load(Ordering::SeqCst), 0);
    pass(&bus, Duration::from_secs(2)).await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(store.stats().await.unwrap().scheduled, 0);

    let cancelled = bus
        .emit_after("invoice.remind", 43, HOUR)
        .persisted()
        .await
        .unwrap();
    assert!(bus.cancel_scheduled(&cancelled).await.unwrap());
    pass(&bus, HOUR * 2).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the cancelled one never ran"
    );
    bus.close().await.unwrap();
}

/// A queue that knows nothing of due times (the trait's defaults).
#[derive(Debug, Default)]
struct Unscheduled {
    inner: MemoryStore,
}

#[async_trait]
impl EventStore for Unscheduled {
    async fn save_event(&self, event: &StoredEvent) -> Result<()> {
        self.inner.save_event(event).await
    }

    async fn save_handler_result(&self, result: &StoredResult) -> Result<()> {
        self.inner.save_handler_result(result).await
    }

    fn queue(&self) -> Option<&dyn EventQueue> {
        Some(self)
    }
}

#[async_trait]
impl EventQueue for Unscheduled {
    async fn enqueue(&self, event: &StoredEvent) -> Result<()> {
        self.inner.save_event(event).await
    }

    async fn dequeue(&self, _max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        tokio::time::sleep(wait).await;
        Ok(Vec::new())
    }

    async fn ack(&self, _receipts: &[String]) -> Result<()> {
        Ok(())
    }

    async fn backlog(&self) -> Result<u64> {
        Ok(0)
    }
}

#[tokio::test(start_paused = true)]
async fn a_queue_store_that_does_not_schedule_refuses_rather_than_deliver_early() {
    let store = Arc::new(Unscheduled::default());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .build()
        .unwrap();
    let err = bus
        .emit_after("invoice.remind", 42, HOUR)
        .persisted()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
    assert!(store.inner.events().is_empty(), "nothing was stored");
    assert!(
        !bus.cancel_scheduled("anything").await.unwrap(),
        "a queue that does not schedule holds no delayed event"
    );
    // Without a due time it still emits.
    bus.emit("invoice.remind", 42).persisted().await.unwrap();
    assert_eq!(store.inner.events().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn close_drops_the_delayed_events_the_bus_holds() {
    let bus = EventBus::new();
    let count = counting(&bus, "invoice.remind");
    bus.emit_after("invoice.remind", 42, HOUR).detach();
    bus.close().await.unwrap();
    assert!(bus.scheduled().is_empty());
    tokio::time::sleep(HOUR * 2).await;
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_unique_key_without_a_store_is_refused() {
    let bus = EventBus::new();
    let _count = counting(&bus, "welcome.send");
    let event = soiree::Event::new("welcome.send", "ada").unique_key("welcome:ada", HOUR);
    let errors: Vec<Error> = bus.emit_event(event).collect().await;
    assert!(
        matches!(errors.as_slice(), [Error::Unsupported(_)]),
        "{errors:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn every_emits_once_per_interval_until_cancelled() {
    let bus = EventBus::new();
    let count = counting(&bus, "cache.sweep");
    let sweeping = bus
        .every(Duration::from_secs(60), "cache.sweep", ())
        .unwrap();
    pass(&bus, Duration::from_secs(59)).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "the first tick is one interval away"
    );
    pass(&bus, Duration::from_secs(122)).await;
    assert_eq!(count.load(Ordering::SeqCst), 3);
    sweeping.cancel();
    pass(&bus, Duration::from_secs(600)).await;
    assert_eq!(count.load(Ordering::SeqCst), 3, "no tick after cancel");
}

#[tokio::test(start_paused = true)]
async fn every_with_a_store_fires_each_tick_through_the_lease() {
    let store = Arc::new(MemoryStore::new());
    let bus = EventBus::builder()
        .shared_store(Arc::clone(&store) as Arc<dyn soiree::EventStore>)
        .build()
        .unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    bus.on("cache.sweep", move |_ctx| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    })
    .unwrap();
    let sweeping = bus
        .every(Duration::from_secs(60), "cache.sweep", ())
        .unwrap();
    pass(&bus, Duration::from_secs(181)).await;
    let ids: std::collections::HashSet<_> = store
        .events()
        .iter()
        .map(|event| event.id().unwrap_or_default().to_owned())
        .collect();
    // Ticks fall on whole minutes: three or four in 181 s.
    assert!((3..=4).contains(&ids.len()), "{ids:?}");
    assert!(
        ids.iter()
            .all(|id| id.starts_with("cache.sweep@every:60000ms@"))
    );
    assert_eq!(count.load(Ordering::SeqCst), ids.len(), "once per tick");
    sweeping.cancel();
    assert!(matches!(
        EventBus::new().every(Duration::ZERO, "cache.sweep", ()),
        Err(Error::InvalidConfig(_))
    ));
}
