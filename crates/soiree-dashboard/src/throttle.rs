//! Failed logins, limited per client address: a bucket of
//! [`FAILURES_ALLOWED`] wrong tokens that refills one every
//! [`REFILL_EVERY`]. An empty bucket refuses every attempt from that
//! address (right or wrong: else the answer would still tell a guess) until
//! it refills. Requests without a known address (a router nested in an
//! application that does not record it) share one bucket.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Wrong tokens allowed in a burst.
pub(crate) const FAILURES_ALLOWED: u32 = 10;
/// One more wrong token is allowed after this long.
pub(crate) const REFILL_EVERY: Duration = Duration::from_secs(2);
/// Addresses tracked at once; past it, full buckets are forgotten, then
/// the newcomers share one bucket.
const MAX_TRACKED: usize = 4_096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures still allowed, as of `at`.
    left: f64,
    at: Instant,
    /// Whether the refusal of this empty bucket was logged.
    logged: bool,
}

impl Bucket {
    fn full(now: Instant) -> Self {
        Self {
            left: f64::from(FAILURES_ALLOWED),
            at: now,
            logged: false,
        }
    }

    fn refill(&mut self, now: Instant) {
        let gained = now.duration_since(self.at).as_secs_f64() / REFILL_EVERY.as_secs_f64();
        self.left = (self.left + gained).min(f64::from(FAILURES_ALLOWED));
        self.at = now;
        if self.left >= 1.0 {
            self.logged = false;
        }
    }
}

/// What the throttle says of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The token may be checked.
    Allowed,
    /// Refused for this long; `first` on the first refusal since the
    /// bucket emptied (log that one only).
    Refused { retry_after: Duration, first: bool },
}

/// The failed-login buckets, per client address.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    buckets: Mutex<HashMap<Option<IpAddr>, Bucket>>,
}

impl Throttle {
    /// Whether an attempt from `peer` may be checked.
    pub(crate) fn check(&self, peer: Option<IpAddr>) -> Verdict {
        let now = Instant::now();
        let mut buckets = self.lock();
        let key = Self::key(&mut buckets, peer, now);
        let Some(bucket) = buckets.get_mut(&key) else {
            return Verdict::Allowed;
        };
        bucket.refill(now);
        if bucket.left >= 1.0 {
            return Verdict::Allowed;
        }
        let first = !bucket.logged;
        bucket.logged = true;
        let missing = 1.0 - bucket.left;
        Verdict::Refused {
            retry_after: REFILL_EVERY.mul_f64(missing).max(Duration::from_secs(1)),
            first,
        }
    }

    /// Counts a wrong token from `peer`.
    pub(crate) fn failed(&self, peer: Option<IpAddr>) {
        let now = Instant::now();
        let mut buckets = self.lock();
        let key = Self::key(&mut buckets, peer, now);
        let bucket = buckets.entry(key).or_insert_with(|| Bucket::full(now));
        bucket.refill(now);
        bucket.left = (bucket.left - 1.0).max(0.0);
    }

    /// The bucket key of `peer`: its own while there is room.
    fn key(
        buckets: &mut HashMap<Option<IpAddr>, Bucket>,
        peer: Option<IpAddr>,
        now: Instant,
    ) -> Option<IpAddr> {
        if buckets.contains_key(&peer) || buckets.len() < MAX_TRACKED {
            return peer;
        }
        buckets.retain(|_, bucket| {
            bucket.refill(now);
            bucket.left < f64::from(FAILURES_ALLOWED)
        });
        if buckets.len() < MAX_TRACKED {
            peer
        } else {
            None
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, Bucket>> {
        // The map is consistent after every statement: a panic elsewhere
        // leaves it usable.
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_failures_empties_the_bucket_of_that_address_only() {
        let throttle = Throttle::default();
        let guesser = Some(IpAddr::from([10, 0, 0, 1]));
        let operator = Some(IpAddr::from([10, 0, 0, 2]));
        for _ in 0..FAILURES_ALLOWED {
            assert_eq!(throttle.check(guesser), Verdict::Allowed);
            throttle.failed(guesser);
        }
        let Verdict::Refused { retry_after, first } = throttle.check(guesser) else {
            panic!("the eleventh guess is refused");
        };
        assert!(first);
        assert!(retry_after >= Duration::from_secs(1));
        assert!(matches!(
            throttle.check(guesser),
            Verdict::Refused { first: false, .. }
        ));
        assert_eq!(throttle.check(operator), Verdict::Allowed);
    }
}
