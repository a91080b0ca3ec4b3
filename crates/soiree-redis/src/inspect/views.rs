//! Read-only views of the leader leases (a hash per name) and the listener
//! limit slots (a sorted set per key): found by a bounded `SCAN` of their
//! key prefix, read with plain read commands, so that a user with only
//! `+@read` may list them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{RedisStore, Result};

/// SCAN calls made per listing at most (each asks for 1000 keys).
const SCAN_CALLS: usize = 1000;

/// Unix milliseconds as a time (before the epoch: the epoch).
fn system_time(ms: i64) -> SystemTime {
    u64::try_from(ms)
        .ok()
        .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        .unwrap_or(UNIX_EPOCH)
}

fn local_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl RedisStore {
    /// The keys starting with `prefix` (which holds no glob character: the
    /// store's prefix cannot), sorted, from at most [`SCAN_CALLS`] calls.
    async fn keys_under(&self, prefix: &str) -> Result<Vec<String>> {
        let pattern = format!("{prefix}*");
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        for _ in 0..SCAN_CALLS {
            let (next, found) = self.scan(&pattern, cursor).await?;
            keys.extend(found);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Now on the server in Unix ms, as lease expiries are measured; this
    /// process's clock when the user may not run `TIME`.
    async fn server_now_ms(&self) -> i64 {
        match self.query::<(i64, i64)>(&redis::cmd("TIME")).await {
            Ok((secs, micros)) => secs.saturating_mul(1000).saturating_add(micros / 1000),
            Err(_) => local_now_ms(),
        }
    }

    /// The leases by name, at most `limit`.
    pub(crate) async fn lease_infos(&self, limit: usize) -> Result<Vec<soiree::LeaseInfo>> {
        let prefix = self.inner.keys.lease_prefix();
        let keys = self.keys_under(&prefix).await?;
        let now = self.server_now_ms().await;
        let mut leases = Vec::new();
        for key in keys.into_iter().take(limit) {
            let (holder, token, expires, progress): (
                Option<String>,
                Option<i64>,
                Option<i64>,
                Option<String>,
            ) = self
                .query(redis::cmd("HMGET").arg(&key).arg(&[
                    "holder",
                    "token",
                    "expires_ms",
                    "progress",
                ]))
                .await?;
            // Gone since the scan, or not a lease.
            let (Some(holder), Some(expires)) = (holder, expires) else {
                continue;
            };
            let name = key.strip_prefix(&prefix).unwrap_or(&key).to_owned();
            leases.push(soiree::LeaseInfo::new(
                name,
                holder,
                token.and_then(|t| u64::try_from(t).ok()).unwrap_or(0),
                system_time(expires),
                expires > now,
                progress.and_then(|p| p.parse().ok()),
            ));
        }
        Ok(leases)
    }

    /// The unexpired slots by key then holder, at most `limit` (expiry on
    /// the processes' clocks, as the limits measure it).
    pub(crate) async fn slot_infos(&self, limit: usize) -> Result<Vec<soiree::LimitSlot>> {
        let prefix = self.inner.keys.limit_slot_prefix();
        let keys = self.keys_under(&prefix).await?;
        let now = local_now_ms();
        let mut slots = Vec::new();
        for key in keys {
            if slots.len() >= limit {
                break;
            }
            let held: Vec<(String, f64)> = self
                .query(
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(&key)
                        .arg(format!("({now}"))
                        .arg("+inf")
                        .arg("WITHSCORES"),
                )
                .await?;
            let name = key.strip_prefix(&prefix).unwrap_or(&key);
            let mut held: Vec<_> = held
                .into_iter()
                .map(|(holder, expiry)| {
                    // Scores are whole milliseconds.
                    soiree::LimitSlot::new(name, holder, system_time(expiry as i64))
                })
                .collect();
            held.sort_by(|a, b| a.holder.cmp(&b.holder));
            slots.extend(held);
        }
        slots.truncate(limit);
        Ok(slots)
    }
}
