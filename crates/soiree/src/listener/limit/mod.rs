//! Listener limits: how many runs of a listener (or of one key of it) go at
//! once, and how many start per period.
//!
//! A limited listener's run first takes a [`LimitPermit`]: without waiting
//! when the limit has room ([`Limiter::try_acquire`]), else the bus parks
//! the run — it leaves its worker, waits for room off the pool
//! ([`Limiter::acquire`]), and comes back to the pool holding the permit
//! (see `bus::park`). So a run waiting on a limit never holds a worker, and
//! the other listeners of its event run meanwhile.
//!
//! Limits are enforced in process with tokio semaphores and a GCRA clock
//! ([`local`]), and across processes through the store's
//! [`SharedLimits`](crate::SharedLimits) when it has them ([`shared`]).

mod key;
mod local;
mod options;
mod permit;
mod shared;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::Event;
use crate::store::EventStore;

pub(crate) use key::key_of;
pub use options::ListenerLimits;
pub(crate) use permit::LimitPermit;

use local::Local;
use shared::Shared;

/// The longest a parked run waits before it asks a shared store again.
const MAX_POLL: Duration = Duration::from_millis(250);
/// The first pause before asking a shared store again.
const FIRST_POLL: Duration = Duration::from_millis(5);

/// Enforces one listener's limits.
pub(crate) struct Limiter {
    options: ListenerLimits,
    local: Local,
    /// With a store that has [`SharedLimits`](crate::SharedLimits).
    shared: Option<Arc<Shared>>,
    /// Time parked runs waited, in seconds.
    waited: crate::metrics::LimitWait,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("options", &self.options)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// The outcome of a try: a permit, or how long until the limit may have
/// room (`None`: when another run ends).
pub(crate) enum Try {
    Acquired(LimitPermit),
    Busy(Option<Duration>),
}

impl Limiter {
    /// `scope` names the limits in a shared store: the listener's id.
    pub(crate) fn new(
        options: ListenerLimits,
        scope: &str,
        store: Option<&Arc<dyn EventStore>>,
        waited: crate::metrics::LimitWait,
    ) -> Self {
        let shared = store
            .filter(|store| store.limits().is_some())
            .map(|store| Arc::new(Shared::new(Arc::clone(store), scope, options.slot_ttl)));
        Self {
            local: Local::new(&options),
            options,
            shared,
            waited,
        }
    }

    /// Takes a permit for `event` if the limits have room now.
    pub(crate) async fn try_acquire(&self, event: &Event) -> Try {
        let key = self.key(event);
        let Some(local) = self.local.try_take(key.as_deref()) else {
            return Try::Busy(None);
        };
        self.finish(local, key.as_deref()).await
    }

    /// Waits for a permit for `event`: until the limits have room. The
    /// caller bounds the wait (the bus: its shutdown and the emit's
    /// context).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled wait holds nothing.
    pub(crate) async fn acquire(&self, event: &Event) -> LimitPermit {
        let started = Instant::now();
        let key = self.key(event);
        let mut pause = FIRST_POLL;
        loop {
            let local = self.local.take(key.as_deref()).await;
            match self.finish(local, key.as_deref()).await {
                Try::Acquired(permit) => {
                    self.waited.observe(started.elapsed().as_secs_f64());
                    return permit;
                }
                Try::Busy(wait) => {
                    let wait = wait.unwrap_or(pause).max(Duration::from_millis(1));
                    tokio::time::sleep(wait.min(MAX_POLL)).await;
                    pause = (pause * 2).min(MAX_POLL);
                }
            }
        }
    }

    /// With the local permits taken: the shared slots and the rate.
    async fn finish(&self, local: local::Taken, key: Option<&str>) -> Try {
        let mut permit = LimitPermit::local(local);
        if let Some(shared) = &self.shared {
            match shared.take_slots(&self.options, key).await {
                Ok(holds) => permit.hold(Arc::clone(shared), holds),
                Err(wait) => return Try::Busy(wait),
            }
            if let Some((count, period)) = self.options.rate
                && let Err(wait) = shared.take_rate(count, period).await
            {
                return Try::Busy(wait);
            }
            return Try::Acquired(permit);
        }
        match self.local.take_rate() {
            Ok(()) => Try::Acquired(permit),
            Err(wait) => Try::Busy(Some(wait)),
        }
    }

    fn key(&self, event: &Event) -> Option<String> {
        let (property, _) = self.options.per_key.as_ref()?;
        Some(key_of(event, property))
    }
}
