//! Periodic events: `bus.every(interval, …)`, `bus.cron(expression, …)`
//! and `bus.schedule(schedule, …)`; with a store, fired once per tick
//! across processes by the leader (see [`crate::periodic`]).

use std::time::Duration;

use serde::Serialize;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::EventBus;
use crate::periodic::runner::Runner;
use crate::topic::validate_topic;
use crate::{Error, Result, Schedule};

/// A periodic emit started by [`EventBus::every`], [`EventBus::cron`] or
/// [`EventBus::schedule`]; it stops when [`cancel`](Periodic::cancel) is
/// called, when the bus closes, or when this handle is dropped. A leader
/// that stops gives its lease back, so that another process takes over at
/// once.
#[derive(Debug)]
#[must_use = "dropping a Periodic stops it"]
pub struct Periodic {
    stop: CancellationToken,
}

impl Periodic {
    /// Stops emitting.
    pub fn cancel(self) {}
}

impl Drop for Periodic {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl EventBus {
    /// Emits `payload` on `topic` every `interval`.
    ///
    /// Without a store: in this process, the first time one interval from
    /// now; ticks missed while the runtime was busy are skipped, not
    /// caught up. Each tick is a detached emission: its listeners' errors
    /// reach the error handler (or the log). A paused tokio clock drives
    /// it in tests.
    ///
    /// With a store: once per tick across every process that starts it,
    /// as [`schedule`](Self::schedule) with
    /// `Schedule::every(format!("{topic}@every:{ms}ms"), interval)`: the
    /// schedule is named after the topic and the interval (in whole
    /// milliseconds), so every process running this line runs the same
    /// schedule, and its ticks fall on the multiples of the interval since
    /// the Unix epoch. Use [`schedule`](Self::schedule) to name it
    /// yourself, or to choose what happens to missed ticks.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a zero interval;
    /// [`Error::InvalidTopicName`]; [`Error::Closed`];
    /// [`Error::NoRuntime`] outside a tokio runtime; with a store, as
    /// [`schedule`](Self::schedule).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::time::Duration;
    /// use soiree::EventBus;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> soiree::Result<()> {
    /// let bus = EventBus::new();
    /// let ticks = Arc::new(AtomicUsize::new(0));
    /// let seen = ticks.clone();
    /// bus.on("cache.sweep", move |_ctx| {
    ///     seen.fetch_add(1, Ordering::SeqCst);
    ///     async { Ok(()) }
    /// })?;
    /// let sweeping = bus.every(Duration::from_secs(60), "cache.sweep", ())?;
    /// tokio::time::sleep(Duration::from_secs(181)).await;
    /// bus.wait_for_idle().await;
    /// assert_eq!(ticks.load(Ordering::SeqCst), 3);
    /// sweeping.cancel();
    /// # Ok(()) }
    /// ```
    pub fn every<T>(&self, interval: Duration, topic: &str, payload: T) -> Result<Periodic>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        if interval.is_zero() {
            return Err(Error::InvalidConfig(
                "the interval of a periodic event must be positive".into(),
            ));
        }
        let topic = validate_topic(topic)?.to_owned();
        if self.inner().store.is_some() {
            let name = format!("{topic}@every:{}ms", interval.as_millis());
            return self.schedule(Schedule::every(name, interval), &topic, payload);
        }
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let inner = self.inner();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let shutdown = inner.consumer.shutdown.clone();
        let bus = std::sync::Arc::downgrade(inner);
        drop(runtime.spawn(async move {
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    biased;
                    () = stopped.cancelled() => return,
                    () = shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let Some(core) = bus.upgrade() else { return };
                EventBus::from_inner(core)
                    .emit(&topic, payload.clone())
                    .detach();
            }
        }));
        Ok(Periodic { stop })
    }

    /// Emits `payload` on `topic` at the times of a cron expression (in
    /// UTC; see [`Schedule::cron`]): as [`schedule`](Self::schedule) with
    /// `Schedule::cron(format!("{topic}@cron:{expression}"), expression)`,
    /// so every process running this line runs the same schedule.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `expression` is not a cron
    /// expression; as [`schedule`](Self::schedule).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use soiree::testing::TestBus;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> soiree::Result<()> {
    /// let test = TestBus::new()?;
    /// test.bus().on_named("rollup", "stats.rollup", |_ctx| async { Ok(()) })?;
    /// // At second 0 of every minute.
    /// let rollups = test.bus().cron("0 * * * * *", "stats.rollup", ())?;
    /// test.advance(Duration::from_secs(180)).await;
    /// assert_eq!(test.handled("rollup").len(), 3);
    /// rollups.cancel();
    /// # Ok(()) }
    /// ```
    pub fn cron<T>(&self, expression: &str, topic: &str, payload: T) -> Result<Periodic>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let topic = validate_topic(topic)?.to_owned();
        let schedule = Schedule::cron(format!("{topic}@cron:{}", expression.trim()), expression)?;
        self.schedule(schedule, &topic, payload)
    }

    /// Emits `payload` on `topic` at each tick of `schedule`.
    ///
    /// With a store, once per tick across every process that starts a
    /// schedule of the same name on a bus over the same store: the process
    /// holding the schedule's lease ([`LeaderLease`](crate::LeaderLease))
    /// fires, and the others wait to take over (see [`Schedule`] for how,
    /// and for the waits; [`MissedTicks`](crate::MissedTicks) for missed
    /// ticks). Each tick's event has the id
    /// `"{name}@{tick in Unix ms}"`, the properties
    /// [`PROPERTY_SCHEDULE`](crate::PROPERTY_SCHEDULE) and
    /// [`PROPERTY_TICK`](crate::PROPERTY_TICK), and a unique key made of
    /// both, so that a tick fired again after a failover is stored once.
    /// Listeners registered with [`on_named`](Self::on_named) are skipped
    /// for a tick they already handled, as for any event.
    ///
    /// Without a store, this process fires every tick, from the next one
    /// on (missed ticks as the schedule says).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] on a bus whose store has no leader leases
    /// ([`EventStore::leases`](crate::EventStore::leases));
    /// [`Error::InvalidConfig`] for an interval under a millisecond, a
    /// name empty or over [`MAX_LEASE_NAME_LEN`](crate::MAX_LEASE_NAME_LEN)
    /// bytes, or a lease time to live under
    /// [`MIN_LEASE_TTL`](crate::MIN_LEASE_TTL);
    /// [`Error::InvalidTopicName`]; [`Error::Serialization`] for a payload
    /// with no JSON form; [`Error::Closed`]; [`Error::NoRuntime`] outside
    /// a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use soiree::{MissedTicks, Schedule, PROPERTY_TICK};
    /// use soiree::testing::TestBus;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> soiree::Result<()> {
    /// let test = TestBus::new()?;
    /// test.bus().on_named("report", "report.hourly", |ctx| async move {
    ///     let tick = ctx.property_str(PROPERTY_TICK).unwrap_or_default();
    ///     println!("the report of {tick}");
    ///     Ok(())
    /// })?;
    /// let schedule = Schedule::cron("hourly-report", "0 * * * *")?
    ///     .missed(MissedTicks::CatchUp { max: 24 });
    /// let reports = test.bus().schedule(schedule, "report.hourly", ())?;
    /// test.advance(Duration::from_secs(2 * 3600)).await;
    /// assert_eq!(test.handled("report").len(), 2);
    /// reports.cancel();
    /// # Ok(()) }
    /// ```
    pub fn schedule<T>(&self, schedule: Schedule, topic: &str, payload: T) -> Result<Periodic>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let timing = schedule.checked()?;
        let topic = validate_topic(topic)?.to_owned();
        let inner = self.inner();
        let store = inner.store.clone();
        if let Some(store) = &store
            && store.leases().is_none()
        {
            return Err(Error::Unsupported(
                "periodic events on a bus with a store need the store's leader leases \
                 (EventStore::leases), which this store does not have: every process \
                 would fire each tick"
                    .into(),
            ));
        }
        let payload = serde_json::to_value(payload)
            .map_err(|err| Error::serialization(format!("the periodic payload: {err}")))?;
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let stop = CancellationToken::new();
        let runner = Runner {
            bus: std::sync::Arc::downgrade(inner),
            store,
            name: schedule.name().to_owned(),
            holder: format!("{}-{}", std::process::id(), ulid::Ulid::generate()),
            timing,
            max_missed: schedule.missed_ticks().max(),
            ttl: schedule.ttl(),
            topic,
            payload,
            stop: stop.clone(),
            shutdown: inner.consumer.shutdown.clone(),
        };
        drop(runtime.spawn(runner.run()));
        Ok(Periodic { stop })
    }
}
