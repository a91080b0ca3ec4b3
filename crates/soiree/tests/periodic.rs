//! Periodic events on a bus with a store, under a paused clock: several
//! buses on one store fire each tick once (only the lease holder fires); a
//! leader cut off from the store is replaced, and the missed ticks are
//! caught up or skipped as the schedule says; cron schedules on the test
//! bus; a store without leases refuses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use soiree::testing::TestBus;
use soiree::{
    Appended, EventBus, EventHistory, EventQueue, EventStore, HandlerDedup, LeaderLease, Lease,
    MemoryStore, MissedTicks, PROPERTY_SCHEDULE, PROPERTY_TICK, Result, Schedule, StoredEvent,
    StoredResult, async_trait,
};

const INTERVAL: Duration = Duration::from_secs(1);
const TTL: Duration = Duration::from_secs(3);
const TOPIC: &str = "periodic.tick";

/// A handle on a shared memory store that counts the appends of tick
/// events and can be cut off from the store (every call then fails), as a
/// process that lost its connection.
#[derive(Debug)]
struct Handle {
    store: MemoryStore,
    appends: AtomicUsize,
    cut: AtomicBool,
}

impl Handle {
    fn on(store: &MemoryStore) -> Arc<Self> {
        Arc::new(Self {
            store: store.in_group(store.group().to_owned()),
            appends: AtomicUsize::new(0),
            cut: AtomicBool::new(false),
        })
    }

    fn check(&self) -> Result<()> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(soiree::Error::store("cut off from the store"));
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for Handle {
    async fn save_event(&self, event: &StoredEvent) -> Result<()> {
        self.check()?;
        self.store.save_event(event).await
    }

    async fn save_handler_result(&self, result: &StoredResult) -> Result<()> {
        self.check()?;
        self.store.save_handler_result(result).await
    }

    async fn append_unique(
        &self,
        event: &StoredEvent,
        key: &str,
        window: Duration,
    ) -> Result<Appended> {
        self.check()?;
        self.appends.fetch_add(1, Ordering::SeqCst);
        self.store.append_unique(event, key, window).await
    }

    fn queue(&self) -> Option<&dyn EventQueue> {
        self.store.queue()
    }

    fn dedup(&self) -> Option<&dyn HandlerDedup> {
        self.store.dedup()
    }

    fn history(&self) -> Option<&dyn EventHistory> {
        self.store.history()
    }

    fn leases(&self) -> Option<&dyn LeaderLease> {
        Some(self)
    }
}

#[async_trait]
impl LeaderLease for Handle {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>> {
        self.check()?;
        self.store.acquire(name, holder, ttl).await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration, progress: Option<i64>) -> Result<bool> {
        self.check()?;
        self.store.renew(lease, ttl, progress).await
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        self.check()?;
        LeaderLease::release(&self.store, lease).await
    }
}

fn bus_on(handle: &Arc<Handle>) -> EventBus {
    EventBus::builder()
        .shared_store(Arc::clone(handle) as Arc<dyn EventStore>)
        .build()
        .expect("bus")
}

fn schedule(missed: MissedTicks) -> Schedule {
    Schedule::every("tick", INTERVAL)
        .missed(missed)
        .lease_ttl(TTL)
}

/// The ticks stored (Unix ms, from the event ids), oldest first, with the
/// number of events of each.
fn ticks(store: &MemoryStore) -> Vec<(i64, usize)> {
    let mut ticks = std::collections::BTreeMap::new();
    for event in store.events().iter().filter(|e| e.topic == TOPIC) {
        let id = event.id().expect("an event id");
        let ms: i64 = id
            .strip_prefix("tick@")
            .and_then(|ms| ms.parse().ok())
            .expect("a tick id");
        assert_eq!(
            event.properties.get(PROPERTY_SCHEDULE),
            Some(&"tick".into())
        );
        assert!(
            event.properties.get(PROPERTY_TICK).is_some(),
            "no tick property"
        );
        *ticks.entry(ms).or_insert(0) += 1;
    }
    ticks.into_iter().collect()
}

fn gaps(ticks: &[(i64, usize)]) -> Vec<(i64, i64)> {
    ticks
        .windows(2)
        .filter(|pair| pair[1].0 - pair[0].0 != 1000)
        .map(|pair| (pair[0].0, pair[1].0))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn three_buses_on_one_store_fire_each_tick_once() {
    let store = MemoryStore::new();
    let handles: Vec<_> = (0..3).map(|_| Handle::on(&store)).collect();
    let buses: Vec<_> = handles.iter().map(bus_on).collect();
    let heard = Arc::new(AtomicUsize::new(0));
    for bus in &buses {
        let heard = Arc::clone(&heard);
        bus.on(TOPIC, move |_ctx| {
            heard.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .expect("on");
    }
    let running: Vec<_> = buses
        .iter()
        .map(|bus| {
            bus.schedule(schedule(MissedTicks::Skip), TOPIC, ())
                .expect("schedule")
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    for bus in &buses {
        bus.wait_for_idle().await;
    }
    let ticks = ticks(&store);
    assert!(ticks.len() >= 10, "ten seconds of ticks: {ticks:?}");
    assert!(
        ticks.iter().all(|(_, n)| *n == 1),
        "a tick stored twice: {ticks:?}"
    );
    assert!(gaps(&ticks).is_empty(), "ticks lost: {ticks:?}");
    let appends: usize = handles
        .iter()
        .map(|h| h.appends.load(Ordering::SeqCst))
        .sum();
    assert_eq!(
        appends,
        ticks.len(),
        "a tick was fired by more than the leader"
    );
    let firing = handles
        .iter()
        .filter(|h| h.appends.load(Ordering::SeqCst) > 0)
        .count();
    assert_eq!(firing, 1, "more than one bus fired");
    assert_eq!(
        heard.load(Ordering::SeqCst),
        ticks.len(),
        "listeners ran once per tick"
    );
    drop(running);
}

/// Bus 0 leads, is cut off from the store, and another takes over after
/// the lease's time to live; returns the ticks stored.
async fn cut_off_leader(missed: MissedTicks) -> Vec<(i64, usize)> {
    let store = MemoryStore::new();
    let handles: Vec<_> = (0..3).map(|_| Handle::on(&store)).collect();
    let buses: Vec<_> = handles.iter().map(bus_on).collect();
    let first = buses[0]
        .schedule(schedule(missed), TOPIC, ())
        .expect("schedule");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let others: Vec<_> = buses[1..]
        .iter()
        .map(|bus| bus.schedule(schedule(missed), TOPIC, ()).expect("schedule"))
        .collect();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert!(
        handles[0].appends.load(Ordering::SeqCst) >= 3,
        "bus 0 did not lead"
    );
    handles[0].cut.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(12)).await;
    let taken_over = handles[1..]
        .iter()
        .any(|h| h.appends.load(Ordering::SeqCst) > 0);
    assert!(taken_over, "no bus took over from the cut-off leader");
    drop((first, others));
    ticks(&store)
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_catches_up_the_missed_ticks() {
    let ticks = cut_off_leader(MissedTicks::CatchUp { max: 100 }).await;
    assert!(
        ticks.iter().all(|(_, n)| *n == 1),
        "a tick stored twice: {ticks:?}"
    );
    assert!(
        gaps(&ticks).is_empty(),
        "ticks lost through the takeover: {ticks:?}"
    );
    assert!(
        ticks.len() >= 15,
        "about sixteen seconds of ticks: {ticks:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_skips_all_but_the_latest_missed_tick() {
    let ticks = cut_off_leader(MissedTicks::Skip).await;
    assert!(
        ticks.iter().all(|(_, n)| *n == 1),
        "a tick stored twice: {ticks:?}"
    );
    // The takeover takes at least the time to live (3 s): at least two of
    // the ticks meanwhile are skipped, once.
    let gaps = gaps(&ticks);
    assert_eq!(gaps.len(), 1, "one stretch of skipped ticks: {ticks:?}");
    let (before, after) = gaps[0];
    assert!(
        after - before >= 3000,
        "fewer than two ticks skipped: {ticks:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn cron_schedules_fire_at_their_times_on_a_test_bus() {
    let test = TestBus::new().expect("test bus");
    test.bus()
        .on_named("rollup", "stats.rollup", |_ctx| async { Ok(()) })
        .expect("on");
    let rollups = test
        .bus()
        .cron("*/10 * * * * *", "stats.rollup", ())
        .expect("cron");
    test.advance(Duration::from_secs(60)).await;
    let emitted = test.emitted_on("stats.rollup");
    assert_eq!(emitted.len(), 6, "six ticks in a minute: {emitted:?}");
    for event in &emitted {
        let tick = event.properties[PROPERTY_TICK].as_str().expect("a tick");
        let seconds: u32 = tick[17..19].parse().expect("seconds");
        assert_eq!(seconds % 10, 0, "a tick off the expression: {tick}");
    }
    assert_eq!(test.handled("rollup").len(), 6);
    rollups.cancel();
    test.advance(Duration::from_secs(60)).await;
    assert_eq!(
        test.emitted_on("stats.rollup").len(),
        6,
        "a cancelled schedule fired"
    );
}

#[tokio::test]
async fn schedules_are_refused_without_leases_or_with_bad_settings() {
    #[derive(Debug, Default)]
    struct NoLeases(MemoryStore);
    #[async_trait]
    impl EventStore for NoLeases {
        async fn save_event(&self, event: &StoredEvent) -> Result<()> {
            self.0.save_event(event).await
        }
        async fn save_handler_result(&self, result: &StoredResult) -> Result<()> {
            self.0.save_handler_result(result).await
        }
    }
    let bus = EventBus::builder()
        .store(NoLeases::default())
        .build()
        .expect("bus");
    assert!(matches!(
        bus.every(INTERVAL, TOPIC, ()),
        Err(soiree::Error::Unsupported(_))
    ));
    let bus = EventBus::builder()
        .store(MemoryStore::new())
        .build()
        .expect("bus");
    for bad in [
        Schedule::every("", INTERVAL),
        Schedule::every("x".repeat(201), INTERVAL),
        Schedule::every("tick", Duration::from_micros(1)),
        Schedule::every("tick", INTERVAL).lease_ttl(Duration::from_millis(10)),
    ] {
        assert!(
            matches!(
                bus.schedule(bad.clone(), TOPIC, ()),
                Err(soiree::Error::InvalidConfig(_))
            ),
            "accepted {bad:?}"
        );
    }
    assert!(matches!(
        Schedule::cron("tick", "every tuesday"),
        Err(soiree::Error::InvalidConfig(_))
    ));
}
