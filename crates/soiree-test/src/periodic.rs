//! The leader-failover check of periodic events, for any store with
//! leases: [`PROCESSES`] processes run one schedule on one store; the
//! leader (read from [`Inspect::leader_leases`]: a holder starts with its
//! pid) is killed with `kill -9` and replaced, [`KILLS`] times; then every
//! tick from the first stored to the last is stored exactly once
//! (`MissedTicks::CatchUp`: no tick lost), whoever fired it and however
//! often.
//!
//! A store's test binary is its own child ([`process`](crate::process)):
//! the child builds the store and runs [`schedule_until_killed`], the
//! parent builds an observing store and runs [`failover`] with a way to
//! start a child.
//!
//! # Examples
//!
//! ```no_run
//! use soiree_test::periodic::{failover, schedule_until_killed};
//! use soiree_test::process::{ChildProcess, plain_main};
//!
//! const CHILD_ENV: &str = "MY_PERIODIC_CHILD";
//!
//! fn main() {
//!     let Some(runtime) = plain_main("periodic_failover") else {
//!         return;
//!     };
//!     // Every process opens the same store (here a shared file's, say).
//!     let store = || soiree::MemoryStore::new();
//!     if std::env::var_os(CHILD_ENV).is_some() {
//!         runtime.block_on(schedule_until_killed(store()));
//!         return;
//!     }
//!     let spawn = || ChildProcess::start(ChildProcess::command().env(CHILD_ENV, "1"));
//!     runtime.block_on(failover(&store(), spawn));
//! }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use soiree::{EventBus, EventStore, Inspect, MissedTicks, PROPERTY_TICK, Query, Schedule};

use crate::process::ChildProcess;
use crate::wait::within;

/// The schedule's name.
pub const NAME: &str = "failover-tick";
/// The topic of its ticks.
pub const TOPIC: &str = "periodic.tick";
/// Its interval.
pub const INTERVAL: Duration = Duration::from_millis(500);
/// Its lease's time to live.
pub const TTL: Duration = Duration::from_millis(1500);
/// The bound of every wait.
pub const LIMIT: Duration = Duration::from_secs(60);
/// Processes running the schedule at once.
pub const PROCESSES: usize = 3;
/// Leaders killed, one after the other.
pub const KILLS: usize = 2;
/// Ticks stored after each kill before the next step.
pub const TICKS_BETWEEN: usize = 4;

/// Runs the schedule on a bus over `store` until the process is killed:
/// a child's whole work.
///
/// # Panics
///
/// When the bus cannot be built or the schedule not started.
pub async fn schedule_until_killed(store: impl EventStore) {
    let bus = EventBus::builder().store(store).build().expect("bus");
    let schedule = Schedule::every(NAME, INTERVAL)
        .missed(MissedTicks::CatchUp { max: 10_000 })
        .lease_ttl(TTL);
    let _ticking = bus.schedule(schedule, TOPIC, "tick").expect("schedule");
    std::future::pending::<()>().await;
}

/// Every stored tick (Unix ms, from its event id `<name>@<ms>`, which its
/// tick property must agree with) with how many events it has.
///
/// # Panics
///
/// When the store cannot be read within [`LIMIT`], or a tick is not made
/// of its schedule and time.
pub async fn stored_ticks<S: Inspect + ?Sized>(store: &S) -> BTreeMap<i64, usize> {
    let mut ticks = BTreeMap::new();
    let mut query = Query::oldest(500);
    // Bounded: far more pages than a run stores.
    for _ in 0..1000 {
        let page = within(LIMIT, "a page of events", store.events(&query))
            .await
            .expect("events");
        for record in page
            .items
            .iter()
            .filter(|record| record.item.topic == TOPIC)
        {
            let event = &record.item;
            let id = event.id().expect("a tick's event id");
            let ms = id
                .strip_prefix(&format!("{NAME}@"))
                .and_then(|ms| ms.parse::<i64>().ok())
                .unwrap_or_else(|| panic!("a tick's event id {id:?} is not <schedule>@<ms>"));
            let tick = event
                .properties
                .get(PROPERTY_TICK)
                .and_then(|tick| tick.as_str())
                .expect("a tick property");
            let at = tick
                .parse::<jiff::Timestamp>()
                .expect("an RFC 3339 tick")
                .as_millisecond();
            assert_eq!(at, ms, "a tick's event id is not made of its time");
            *ticks.entry(ms).or_insert(0) += 1;
        }
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return ticks,
        }
    }
    panic!("more than 1000 pages of events");
}

/// The pid of the process holding a live grant of the schedule's lease,
/// from its holder (`{pid}-{ulid}`).
///
/// # Panics
///
/// When the store cannot list its leases within [`LIMIT`].
pub async fn leader_pid<S: Inspect + ?Sized>(store: &S) -> Option<u32> {
    let leases = within(LIMIT, "the leases", store.leader_leases(Query::MAX_LIMIT))
        .await
        .expect("the leases");
    let lease = leases.into_iter().find(|lease| lease.name == NAME)?;
    if !lease.held {
        return None;
    }
    lease.holder.split('-').next()?.parse().ok()
}

/// Waits (at most [`LIMIT`]) until `more` ticks beyond `after` are stored
/// and a live process leads; returns the count and the leader's pid.
async fn wait_for_ticks<S: Inspect + ?Sized>(store: &S, after: usize, more: usize) -> (usize, u32) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let count = stored_ticks(store).await.len();
        if count >= after + more
            && let Some(pid) = leader_pid(store).await
        {
            return (count, pid);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} ticks stored, {more} more than {after} awaited for {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The parent's check: starts [`PROCESSES`] children with `spawn` (each
/// runs [`schedule_until_killed`] on the store `store` observes), kills
/// the leader [`KILLS`] times (starting a new child each time), then
/// asserts no tick stored twice, none missing between the first and the
/// last, and enough of them. Prints a line with the ticks counted.
///
/// # Panics
///
/// When a check fails or a wait outlasts [`LIMIT`].
pub async fn failover<S: Inspect + ?Sized>(store: &S, spawn: impl Fn() -> ChildProcess) {
    let mut children: Vec<ChildProcess> = (0..PROCESSES).map(|_| spawn()).collect();
    let (mut count, mut leader) = wait_for_ticks(store, 0, TICKS_BETWEEN).await;
    let mut killed = Vec::new();
    for _ in 0..KILLS {
        let Some(at) = children
            .iter_mut()
            .position(|child| child.child().id() == leader)
        else {
            panic!("the lease is held by pid {leader}, none of the children");
        };
        let mut dead = children.swap_remove(at);
        dead.kill();
        killed.push(leader);
        children.push(spawn());
        let (now, next) = wait_for_ticks(store, count, TICKS_BETWEEN).await;
        assert!(
            !killed.contains(&next),
            "a killed process (pid {next}) still holds the lease"
        );
        count = now;
        leader = next;
    }
    for child in &mut children {
        child.kill();
    }
    let ticks = stored_ticks(store).await;
    let twice: Vec<_> = ticks.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "ticks={} kills={KILLS} killed_leaders={killed:?} first={:?} last={:?}",
        ticks.len(),
        ticks.keys().next(),
        ticks.keys().next_back()
    );
    assert!(twice.is_empty(), "ticks stored twice: {twice:?}");
    let interval = i64::try_from(INTERVAL.as_millis()).expect("ms");
    let ms: Vec<i64> = ticks.keys().copied().collect();
    let gaps: Vec<_> = ms
        .windows(2)
        .filter(|pair| pair[1] - pair[0] != interval)
        .map(|pair| (pair[0], pair[1]))
        .collect();
    assert!(
        gaps.is_empty(),
        "ticks lost through the failovers: {gaps:?}"
    );
    assert!(
        ms.len() > (KILLS + 1) * TICKS_BETWEEN - 1,
        "too few ticks to say anything: {}",
        ms.len()
    );
}
