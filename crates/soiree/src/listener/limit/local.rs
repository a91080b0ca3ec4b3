//! Limits in this process: a semaphore per listener, one per key, and a
//! GCRA clock on tokio's time (a paused clock drives it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::ListenerLimits;

/// Keys kept before unused ones are dropped.
const KEYS_KEPT: usize = 1024;

/// A listener's limits in this process.
pub(super) struct Local {
    all: Option<Arc<Semaphore>>,
    keys: Option<Keys>,
    rate: Option<Rate>,
}

struct Keys {
    limit: usize,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
}

struct Rate {
    interval: Duration,
    /// The earliest start of the next run (GCRA without burst).
    next: Mutex<Option<Instant>>,
}

/// The local permits of one run: given back when dropped.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    _all: Option<OwnedSemaphorePermit>,
    _key: Option<OwnedSemaphorePermit>,
}

fn permits(n: u32) -> usize {
    usize::try_from(n)
        .unwrap_or(Semaphore::MAX_PERMITS)
        .min(Semaphore::MAX_PERMITS)
}

impl Local {
    pub(super) fn new(options: &ListenerLimits) -> Self {
        Self {
            all: options
                .max_concurrent
                .map(|n| Arc::new(Semaphore::new(permits(n)))),
            keys: options.per_key.as_ref().map(|(_, n)| Keys {
                limit: permits(*n),
                semaphores: Mutex::default(),
            }),
            rate: options.rate.map(|(count, period)| Rate {
                // As the stores': whole milliseconds, rounded up.
                interval: Duration::from_millis(
                    u64::try_from(crate::kit::gcra_interval(count, period)).unwrap_or(u64::MAX),
                ),
                next: Mutex::new(None),
            }),
        }
    }

    fn key_semaphore(&self, key: Option<&str>) -> Option<Arc<Semaphore>> {
        let (keys, key) = (self.keys.as_ref()?, key?);
        let mut map = keys
            .semaphores
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() >= KEYS_KEPT && !map.contains_key(key) {
            // Nobody holds or waits on a key whose only handle is the map's.
            map.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
        }
        Some(Arc::clone(
            map.entry(key.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(keys.limit))),
        ))
    }

    /// The permits, if every concurrency limit has room now.
    pub(super) fn try_take(&self, key: Option<&str>) -> Option<Taken> {
        let all = match &self.all {
            Some(all) => Some(Arc::clone(all).try_acquire_owned().ok()?),
            None => None,
        };
        let key = match self.key_semaphore(key) {
            Some(semaphore) => Some(semaphore.try_acquire_owned().ok()?),
            None => None,
        };
        Some(Taken {
            _all: all,
            _key: key,
        })
    }

    /// Waits for the permits, in turn (listener, then key), first come
    /// first served.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: permits taken so far are dropped.
    pub(super) async fn take(&self, key: Option<&str>) -> Taken {
        let all = match &self.all {
            // Never closed: acquiring cannot fail.
            Some(all) => Arc::clone(all).acquire_owned().await.ok(),
            None => None,
        };
        let key = match self.key_semaphore(key) {
            Some(semaphore) => semaphore.acquire_owned().await.ok(),
            None => None,
        };
        Taken {
            _all: all,
            _key: key,
        }
    }

    /// Counts a run under the rate, or says how long until one is allowed.
    pub(super) fn take_rate(&self) -> Result<(), Duration> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        let now = Instant::now();
        let mut next = rate.next.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(next) = *next
            && next > now
        {
            return Err(next - now);
        }
        *next = Some(now + rate.interval);
        Ok(())
    }
}
