//! Limits shared by every process of a store: concurrency slots with an
//! expiry, and rate limits (GCRA), both kept in the store.

use std::time::Duration;

use async_trait::async_trait;

use crate::Result;

/// One held concurrency slot: its key and its holder (a unique token per
/// acquisition).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotHold {
    /// The limit's key (a listener id, or a listener id and a key value).
    pub key: String,
    /// The holder's token, unique per acquisition.
    pub holder: String,
}

/// Concurrency slots and rate limits kept in a store, so that listener
/// limits ([`ListenerBinding::max_concurrent`](crate::ListenerBinding::max_concurrent),
/// [`max_concurrent_per_key`](crate::ListenerBinding::max_concurrent_per_key),
/// [`rate`](crate::ListenerBinding::rate)) hold across every process that
/// shares the store.
///
/// A **slot** is one of `limit` places of a key, held by a holder until an
/// expiry: a process that dies holding one loses it when it expires, so a
/// crash never keeps a limit full for good. The bus renews the slots of its
/// running listeners every third of their time to live and releases them
/// when the listener returns.
///
/// A **rate** admits `count` runs per `period`, evenly spaced: one every
/// `period / count` (rounded up to a millisecond), so that no window of
/// `period` holds more than `count` starts. It is a generic cell rate
/// algorithm (GCRA) without burst: the store keeps one timestamp per key,
/// the earliest time the next run may start.
///
/// Times are the calling process's clock (Unix milliseconds): processes
/// sharing a store need clocks in step to within a small part of the
/// limits' periods and slots' time to live.
///
/// A store without it ([`EventStore::limits`](crate::EventStore::limits)
/// returns `None`): every process enforces its listeners' limits on its own,
/// so `n` processes run up to `n` times the limit.
///
/// # Cancel safety
///
/// Each call is one atomic step in the store: a cancelled call took effect
/// or did not. A slot acquired by a cancelled call expires on its own.
#[async_trait]
pub trait SharedLimits: Send + Sync {
    /// Takes one of `limit` slots of `key` for `holder` until `ttl` from
    /// now: `true` when taken, `false` when `limit` unexpired slots are held
    /// (expired ones are freed first).
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store) when the store cannot answer;
    /// the bus then waits and asks again.
    async fn acquire_slot(
        &self,
        key: &str,
        limit: u32,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool>;

    /// Extends the slots `held` to `ttl` from now (slots expired and taken
    /// by others meanwhile are not taken back).
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store); the next renewal tries again.
    async fn renew_slots(&self, held: &[SlotHold], ttl: Duration) -> Result<()>;

    /// Frees a slot (nothing happens if it expired or was freed already).
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store); the slot then expires on its own.
    async fn release_slot(&self, held: &SlotHold) -> Result<()>;

    /// Admits one run of `key` under a rate of `count` per `period`:
    /// `None` when admitted (and counted), or how long until the next run
    /// may be admitted (nothing counted).
    ///
    /// # Errors
    ///
    /// [`Error::Store`](crate::Error::Store); the bus then waits and asks again.
    async fn take_rate(&self, key: &str, count: u32, period: Duration) -> Result<Option<Duration>>;
}

/// GCRA without burst, in integer milliseconds, for the stores that
/// compute it themselves: with `next` the stored earliest start of the next
/// run (`None`: never used), at `now`, admits a run of `count` per `period`
/// and returns the new `next`, or refuses with the wait in milliseconds.
/// Used by the memory store; the SQL and Redis stores compute the same in
/// their statements.
///
/// # Errors
///
/// The wait (in milliseconds) when the run is refused.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use soiree::kit::gcra;
///
/// let second = Duration::from_secs(1);
/// let next = gcra(None, 0, 4, second).unwrap();
/// assert_eq!(next, 250);
/// assert_eq!(gcra(Some(next), 100, 4, second), Err(150));
/// assert_eq!(gcra(Some(next), 250, 4, second), Ok(500));
/// ```
pub fn gcra(next: Option<i64>, now: i64, count: u32, period: Duration) -> Result<i64, i64> {
    let next = next.unwrap_or(now);
    if next > now {
        return Err(next - now);
    }
    Ok(now.max(next) + gcra_interval(count, period))
}

/// The spacing of a rate's runs in milliseconds: `period / count`, rounded
/// up (so that `count` runs never fit in less than `period`), at least 1.
pub fn gcra_interval(count: u32, period: Duration) -> i64 {
    let period = i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1);
    let count = i64::from(count.max(1));
    ((period + count - 1) / count).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_spaces_runs_so_no_period_holds_more_than_count() {
        let period = Duration::from_millis(1000);
        assert_eq!(gcra_interval(3, period), 334);
        let mut next = None;
        let mut starts = Vec::new();
        for now in 0..3000 {
            if let Ok(after) = gcra(next, now, 3, period) {
                next = Some(after);
                starts.push(now);
            }
        }
        assert_eq!(starts, [0, 334, 668, 1002, 1336, 1670, 2004, 2338, 2672]);
        assert!(starts.windows(4).all(|w| w[3] - w[0] >= 1000));
    }
}
