//! The task behind a started schedule: it takes the schedule's lease,
//! fires each due tick while it holds it, records the last tick fired
//! with the lease, and renews it; otherwise it tries to take the lease
//! every third of its time to live.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::tick::{tick_event, unique_window};
use super::timing::Timing;
use crate::bus::BusInner;
use crate::schedule::clock;
use crate::{Error, EventBus, EventStore, Lease};

/// What one started schedule fires, and where.
pub(crate) struct Runner {
    pub(crate) bus: Weak<BusInner>,
    /// The store whose leases elect the leader; `None` on a bus without a
    /// store, where this process fires every tick.
    pub(crate) store: Option<Arc<dyn EventStore>>,
    pub(crate) name: String,
    pub(crate) holder: String,
    pub(crate) timing: Timing,
    pub(crate) max_missed: u32,
    pub(crate) ttl: Duration,
    pub(crate) topic: String,
    pub(crate) payload: Value,
    pub(crate) stop: CancellationToken,
    pub(crate) shutdown: CancellationToken,
}

/// The lease this process holds, and what it knows of it.
struct Leading {
    lease: Option<Lease>,
    /// The last tick fired (Unix ms).
    last: i64,
    /// When the lease was last granted or renewed (this process's clock):
    /// past `renewed + ttl` it may be someone else's.
    renewed: Instant,
}

/// Why a step ended the loop.
enum Step {
    Go,
    Stop,
}

fn now_ms() -> i64 {
    ms_of(clock::now())
}

fn ms_of(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn time_of(ms: i64) -> SystemTime {
    let offset = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        SystemTime::UNIX_EPOCH + offset
    } else {
        SystemTime::UNIX_EPOCH - offset
    }
}

impl Runner {
    fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Runs until stopped or the bus closes; gives the lease back on the
    /// way out.
    pub(crate) async fn run(self) {
        let mut leading: Option<Leading> = None;
        loop {
            let step = match leading.take() {
                None => self.try_to_lead(&mut leading).await,
                Some(mut held) => {
                    let step = self.lead(&mut held).await;
                    if held.lease.is_some() || self.store.is_none() {
                        leading = Some(held);
                    }
                    step
                }
            };
            if matches!(step, Step::Stop) || self.stopped() {
                break;
            }
        }
        if let Some(Leading {
            lease: Some(lease), ..
        }) = leading
        {
            self.release(&lease).await;
        }
    }

    fn stopped(&self) -> bool {
        self.stop.is_cancelled() || self.shutdown.is_cancelled()
    }

    /// Sleeps until `deadline`; `Stop` when stopped meanwhile.
    async fn sleep_until(&self, deadline: Instant) -> Step {
        tokio::select! {
            biased;
            () = self.stop.cancelled() => Step::Stop,
            () = self.shutdown.cancelled() => Step::Stop,
            () = tokio::time::sleep_until(deadline) => Step::Go,
        }
    }

    /// Takes the lease if it is free (always, without a store), else waits
    /// a third of its time to live.
    async fn try_to_lead(&self, leading: &mut Option<Leading>) -> Step {
        let Some(store) = &self.store else {
            *leading = Some(Leading {
                lease: None,
                last: now_ms(),
                renewed: Instant::now(),
            });
            return Step::Go;
        };
        let Some(leases) = store.leases() else {
            return Step::Stop;
        };
        let asked = Instant::now();
        match tokio::time::timeout(self.ttl, leases.acquire(&self.name, &self.holder, self.ttl))
            .await
        {
            Ok(Ok(Some(lease))) => {
                tracing::debug!(schedule = %self.name, token = lease.token, "leading the schedule");
                *leading = Some(Leading {
                    last: lease.progress.unwrap_or_else(now_ms),
                    lease: Some(lease),
                    renewed: asked,
                });
                return Step::Go;
            }
            Ok(Ok(None)) => {}
            Ok(Err(err)) => {
                tracing::warn!(schedule = %self.name, error = %err,
                    "could not ask for the schedule's lease: trying again");
            }
            Err(_) => {
                tracing::warn!(schedule = %self.name, ttl = ?self.ttl,
                    "asking for the schedule's lease took longer than its time to live: trying again");
            }
        }
        self.sleep_until(Instant::now() + self.renew_every()).await
    }

    /// One round of a leader: fire the due ticks, then sleep until the
    /// next tick or renewal, and renew when due.
    async fn lead(&self, held: &mut Leading) -> Step {
        if self.lapsed(held) {
            tracing::warn!(schedule = %self.name,
                "the schedule's lease was not renewed within its time to live: \
                 no longer leading");
            held.lease = None;
            return Step::Go;
        }
        let due = self.timing.due(held.last, now_ms(), self.max_missed);
        for tick in due {
            if self.stopped() {
                return Step::Stop;
            }
            match self.fire(tick).await {
                Ok(()) => held.last = tick,
                Err(Error::Closed) => return Step::Stop,
                Err(err) => {
                    tracing::warn!(schedule = %self.name, tick, error = %err,
                        "a tick of the schedule was not stored: trying again");
                    // Not recorded: the next round fires it again.
                    return self
                        .sleep_until(
                            Instant::now() + self.renew_every().min(Duration::from_secs(1)),
                        )
                        .await;
                }
            }
            if !self.renew(held, Some(tick)).await {
                return Step::Go;
            }
        }
        let next_tick = self
            .timing
            .next_after(held.last.max(now_ms()))
            .map(|tick| clock::deadline(time_of(tick)));
        let wake = match (&held.lease, next_tick) {
            (Some(_), Some(tick)) => tick.min(held.renewed + self.renew_every()),
            (Some(_), None) => held.renewed + self.renew_every(),
            (None, Some(tick)) => tick,
            // No tick ever again, and nothing to renew.
            (None, None) => return Step::Stop,
        };
        if let Step::Stop = self.sleep_until(wake).await {
            return Step::Stop;
        }
        if held.lease.is_some() && Instant::now() >= held.renewed + self.renew_every() {
            self.renew(held, None).await;
        }
        Step::Go
    }

    fn lapsed(&self, held: &Leading) -> bool {
        held.lease.is_some() && Instant::now() >= held.renewed + self.ttl
    }

    /// Renews the lease (recording `progress`); `false` when it is lost.
    async fn renew(&self, held: &mut Leading, progress: Option<i64>) -> bool {
        let (Some(lease), Some(store)) = (&held.lease, &self.store) else {
            return true;
        };
        let Some(leases) = store.leases() else {
            return false;
        };
        let asked = Instant::now();
        match tokio::time::timeout(self.ttl, leases.renew(lease, self.ttl, progress)).await {
            Ok(Ok(true)) => {
                held.renewed = asked;
                true
            }
            Ok(Ok(false)) => {
                tracing::info!(schedule = %self.name,
                    "the schedule's lease was taken over: no longer leading");
                held.lease = None;
                false
            }
            Ok(Err(err)) => {
                tracing::warn!(schedule = %self.name, error = %err,
                    "could not renew the schedule's lease: trying again");
                true
            }
            Err(_) => {
                tracing::warn!(schedule = %self.name,
                    "renewing the schedule's lease took longer than its time to live");
                true
            }
        }
    }

    /// Emits the tick's event and waits (at most a time to live) until it
    /// is stored.
    async fn fire(&self, tick: i64) -> Result<(), Error> {
        let Some(core) = self.bus.upgrade() else {
            return Err(Error::Closed);
        };
        let bus = EventBus::from_inner(core);
        let unique = self
            .store
            .as_ref()
            .map(|_| unique_window(self.timing.period(tick), self.max_missed, self.ttl));
        let event = tick_event(&self.topic, &self.payload, &self.name, tick, unique)?;
        let mut emission = bus.emit_event(event);
        if self.store.is_none() {
            emission.detach();
            return Ok(());
        }
        match tokio::time::timeout(self.ttl, emission.persisted()).await {
            Ok(Ok(_)) => {
                emission.detach();
                Ok(())
            }
            Ok(Err(err)) => Err(err),
            Err(_) => Err(Error::store(format!(
                "storing the tick took longer than the lease's time to live ({:?})",
                self.ttl
            ))),
        }
    }

    async fn release(&self, lease: &Lease) {
        let Some(leases) = self.store.as_ref().and_then(|store| store.leases()) else {
            return;
        };
        match tokio::time::timeout(self.ttl, leases.release(lease)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(schedule = %self.name, error = %err,
                "could not release the schedule's lease: it lapses after its time to live"),
            Err(_) => tracing::warn!(schedule = %self.name,
                "releasing the schedule's lease timed out: it lapses after its time to live"),
        }
    }
}
