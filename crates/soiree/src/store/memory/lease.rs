//! The memory store's leader leases: a map under the store's lock, expiry
//! on tokio's clock (a paused clock drives it). Every handle on one store
//! (its groups included) shares them.

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::MemoryStore;
use crate::store::kit::check_lease_args;
use crate::{LeaderLease, Lease, Result};

/// One lease name: the current grant (expired or not), its token count and
/// progress.
#[derive(Debug, Clone)]
pub(super) struct Held {
    holder: String,
    token: u64,
    expires: Instant,
    progress: Option<i64>,
}

#[async_trait]
impl LeaderLease for MemoryStore {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>> {
        check_lease_args(name, holder, ttl)?;
        let now = Instant::now();
        let expires = now
            .checked_add(ttl)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        let mut state = self.lock();
        let held = state.leases.entry(name.to_owned()).or_insert(Held {
            holder: String::new(),
            token: 0,
            expires: now,
            progress: None,
        });
        if held.expires > now && held.holder != holder {
            return Ok(None);
        }
        held.holder = holder.to_owned();
        held.token += 1;
        held.expires = expires;
        Ok(Some(Lease::new(name, holder, held.token, held.progress)))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration, progress: Option<i64>) -> Result<bool> {
        check_lease_args(&lease.name, &lease.holder, ttl)?;
        let now = Instant::now();
        let mut state = self.lock();
        let Some(held) = state.leases.get_mut(&lease.name) else {
            return Ok(false);
        };
        if held.token != lease.token || held.holder != lease.holder || held.expires <= now {
            return Ok(false);
        }
        held.expires = now.checked_add(ttl).unwrap_or(held.expires);
        if progress.is_some() {
            held.progress = progress;
        }
        Ok(true)
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        check_lease_args(&lease.name, &lease.holder, Duration::from_millis(1))?;
        let now = Instant::now();
        let mut state = self.lock();
        let Some(held) = state.leases.get_mut(&lease.name) else {
            return Ok(false);
        };
        if held.token != lease.token || held.holder != lease.holder || held.expires <= now {
            return Ok(false);
        }
        held.expires = now;
        Ok(true)
    }
}

/// `at` on the system clock: tokio's clock (which a test may pause) gives
/// the distance from now.
pub(super) fn system_time(at: Instant, now: Instant) -> std::time::SystemTime {
    let wall = std::time::SystemTime::now();
    if at >= now {
        wall.checked_add(at - now).unwrap_or(wall)
    } else {
        wall.checked_sub(now - at).unwrap_or(wall)
    }
}

impl MemoryStore {
    /// The leases by name, at most `limit`.
    pub(super) fn lease_infos(&self, limit: usize) -> Vec<crate::LeaseInfo> {
        let now = Instant::now();
        let state = self.lock();
        let mut names: Vec<&String> = state.leases.keys().collect();
        names.sort();
        names
            .into_iter()
            .take(limit)
            .map(|name| {
                let held = &state.leases[name];
                crate::LeaseInfo::new(
                    name.clone(),
                    held.holder.clone(),
                    held.token,
                    system_time(held.expires, now),
                    held.expires > now,
                    held.progress,
                )
            })
            .collect()
    }
}
