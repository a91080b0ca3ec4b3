//! Periodic events on a bus without a store: `bus.every(interval, …)`.

use std::time::Duration;

use serde::Serialize;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::EventBus;
use crate::topic::validate_topic;
use crate::{Error, Result};

/// A periodic emit started by [`EventBus::every`]; it stops when
/// [`cancel`](Periodic::cancel) is called, when the bus closes, or when
/// this handle is dropped.
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
    /// Emits `payload` on `topic` every `interval`, the first time one
    /// interval from now, until the returned [`Periodic`] is cancelled or
    /// dropped or the bus closes. Ticks missed while the runtime was busy
    /// are skipped, not caught up. Each tick is a detached emission: its
    /// listeners' errors reach the error handler (or the log). A paused
    /// tokio clock drives it in tests.
    ///
    /// Only on a bus without a store, for now: with a store, every process
    /// would fire every tick, and periodic events across processes need a
    /// leader elected through the store, which the stores do not offer
    /// yet.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] on a bus with a store;
    /// [`Error::InvalidConfig`] for a zero interval;
    /// [`Error::InvalidTopicName`]; [`Error::Closed`];
    /// [`Error::NoRuntime`] outside a tokio runtime.
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
        let inner = self.inner();
        if inner.store.is_some() {
            return Err(Error::Unsupported(
                "periodic events on a bus with a store: every process would fire each tick; \
                 leader election through the store is not there yet"
                    .into(),
            ));
        }
        if interval.is_zero() {
            return Err(Error::InvalidConfig(
                "the interval of a periodic event must be positive".into(),
            ));
        }
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let topic = validate_topic(topic)?.to_owned();
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
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
}
