//! Listener limits shared by every process of the prefix
//! ([`soiree::SharedLimits`]) in the KV bucket `SOIREE_<prefix>_LIMITS`:
//!
//! - a concurrency key's slots are one KV key `slot.<key in hex>` whose JSON
//!   value maps each holder to its expiry: `{"key", "holders": {holder:
//!   expires_ms}}`;
//! - a rate is one KV key `rate.<key in hex>` holding the earliest start of
//!   its next run (the GCRA theoretical arrival time): `{"key", "next_ms"}`.
//!
//! Every change is a compare-and-set on the key's revision (a KV `update`,
//! stored only while the key is still at the revision read; revision 0
//! creates it), as the leases' (`lease`): of two takers that read the same
//! holders one writes and the other reads again and counts the first, so
//! the holders never exceed the limit. A taker tries [`ATTEMPTS`] times
//! while others keep writing the key, then answers "no room" (the bus asks
//! again soon); a renewal or release that loses that often is an error.
//!
//! Times are the calling process's clock in Unix milliseconds, as in every
//! store of [`soiree::SharedLimits`]: the processes' clocks must agree (NTP),
//! as the leases already ask. A key longer than [`MAX_HEX`] hex digits is
//! named by a 64-bit hash of it instead (the full key stays in the value).
//!
//! The bucket keeps one small entry per key ever used (an emptied slot set,
//! a past rate): nothing expires them on nats-server 2.9.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, stream};
use serde::{Deserialize, Serialize};
use soiree::SlotHold;

use crate::bucket::{ATTEMPTS, Bucket};
use crate::{NatsStore, Result};

/// The longest key part kept as the hex of the limit key; longer ones are
/// hashed (KV keys are subjects, within the servers' protocol line).
const MAX_HEX: usize = 1024;

/// The value of a slot key.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Slots {
    key: String,
    /// Holder → expiry (Unix ms on the takers' clocks).
    holders: BTreeMap<String, i64>,
}

/// The value of a rate key.
#[derive(Debug, Serialize, Deserialize)]
struct Rate {
    key: String,
    next_ms: i64,
}

/// The store's limits bucket.
#[derive(Debug)]
pub(crate) struct Limits {
    bucket: Bucket,
}

/// The name of a prefix's limits bucket.
pub(crate) fn bucket_name(prefix: &str) -> String {
    format!("SOIREE_{prefix}_LIMITS")
}

/// Opens the prefix's limits bucket, creating it (with the store's replicas
/// and storage, like the leases') when `create`; `None` when it is missing
/// and not created.
pub(crate) async fn open(
    js: &jetstream::Context,
    prefix: &str,
    storage: stream::StorageType,
    replicas: usize,
    create: bool,
    secrets: &[String],
) -> Result<Option<Limits>> {
    let bucket = Bucket::open(js, bucket_name(prefix), storage, replicas, create, secrets).await?;
    Ok(bucket.map(|bucket| Limits { bucket }))
}

/// The KV key of a limit key under `kind` (`slot`, `rate`): the key in hex,
/// or `h` and a hash of it when that is too long.
fn kv_key(kind: &str, key: &str) -> String {
    if key.len() * 2 <= MAX_HEX {
        format!("{kind}.{}", crate::names::hex(key))
    } else {
        format!("{kind}.h{:016x}", crate::subject::fnv(key))
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Limits {
    /// A slot key's holders and revision (an unreadable value: none).
    async fn read_slots(&self, kv_key: &str, key: &str) -> Result<(u64, Slots)> {
        let read = self
            .bucket
            .read(
                "limit read",
                kv_key,
                "a limit's value is not a slot set: treated as empty",
            )
            .await?;
        let slots = read.value.unwrap_or_else(|| Slots {
            key: key.to_owned(),
            holders: BTreeMap::new(),
        });
        Ok((read.revision, slots))
    }

    /// Writes `value` to `kv_key` if it is still at `revision`.
    async fn write<T: Serialize>(&self, kv_key: &str, value: &T, revision: u64) -> Result<bool> {
        self.bucket
            .compare_and_set("limit write", kv_key, value, revision)
            .await
    }

    async fn acquire_slot(
        &self,
        key: &str,
        limit: u32,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let kv_key = kv_key("slot", key);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        for _ in 0..ATTEMPTS {
            let now = now_ms();
            let (revision, mut slots) = self.read_slots(&kv_key, key).await?;
            slots.holders.retain(|_, expiry| *expiry > now);
            if slots.holders.len() >= limit {
                return Ok(false);
            }
            slots
                .holders
                .insert(holder.to_owned(), now.saturating_add(ms(ttl)));
            if self.write(&kv_key, &slots, revision).await? {
                return Ok(true);
            }
        }
        // Others kept taking and freeing the key's slots: no room now; the
        // bus asks again shortly, as for a full limit.
        Ok(false)
    }

    /// Applies `change` to a slot key's holders (after dropping expired
    /// ones) and writes them back when it changed them, by compare-and-set.
    async fn change_slots(
        &self,
        key: &str,
        operation: &'static str,
        change: impl Fn(&mut Slots, i64) -> bool,
    ) -> Result<()> {
        let kv_key = kv_key("slot", key);
        for _ in 0..ATTEMPTS {
            let now = now_ms();
            let (revision, mut slots) = self.read_slots(&kv_key, key).await?;
            if !change(&mut slots, now) {
                return Ok(());
            }
            slots.holders.retain(|_, expiry| *expiry > now);
            if self.write(&kv_key, &slots, revision).await? {
                return Ok(());
            }
        }
        Err(self.bucket.err(
            operation,
            format!("the slots kept changing over {ATTEMPTS} attempts"),
        ))
    }

    async fn renew_slots(&self, held: &[SlotHold], ttl: Duration) -> Result<()> {
        let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for hold in held {
            by_key.entry(&hold.key).or_default().push(&hold.holder);
        }
        let renewals = by_key.into_iter().map(|(key, holders)| {
            self.change_slots(key, "limit renew", move |slots, now| {
                let expiry = now.saturating_add(ms(ttl));
                let mut changed = false;
                for holder in &holders {
                    // Expired slots stay lost: another may hold the place.
                    if let Some(held) = slots.holders.get_mut(*holder)
                        && *held > now
                    {
                        *held = expiry;
                        changed = true;
                    }
                }
                changed
            })
        });
        futures::future::try_join_all(renewals).await?;
        Ok(())
    }

    async fn release_slot(&self, held: &SlotHold) -> Result<()> {
        self.change_slots(&held.key, "limit release", |slots, _| {
            slots.holders.remove(&held.holder).is_some()
        })
        .await
    }

    async fn take_rate(&self, key: &str, count: u32, period: Duration) -> Result<Option<Duration>> {
        let kv_key = kv_key("rate", key);
        for _ in 0..ATTEMPTS {
            let now = now_ms();
            let read = self
                .bucket
                .read::<Rate>(
                    "limit read",
                    &kv_key,
                    "a rate's value is not a rate: treated as unused",
                )
                .await?;
            let next = read.value.map(|rate| rate.next_ms);
            match soiree::kit::gcra(next, now, count, period) {
                Err(wait) => {
                    return Ok(Some(Duration::from_millis(
                        u64::try_from(wait).unwrap_or(0).max(1),
                    )));
                }
                Ok(next_ms) => {
                    let rate = Rate {
                        key: key.to_owned(),
                        next_ms,
                    };
                    if self.write(&kv_key, &rate, read.revision).await? {
                        return Ok(None);
                    }
                }
            }
        }
        // Others kept being admitted: the next run is about one interval
        // away.
        let interval = soiree::kit::gcra_interval(count, period);
        Ok(Some(Duration::from_millis(
            u64::try_from(interval).unwrap_or(1).max(1),
        )))
    }
}

impl Limits {
    /// The unexpired slots, by key then holder, at most `limit`: the
    /// bucket's keys listed (the first [`LIST_SCAN`](crate::bucket::LIST_SCAN)), then the slot keys
    /// read, 32 at a time.
    pub(crate) async fn slot_infos(&self, limit: usize) -> Result<Vec<soiree::LimitSlot>> {
        use futures::StreamExt;
        let mut slot_keys = self.bucket.list_keys("limit list").await?;
        slot_keys.retain(|key| key.starts_with("slot."));
        let now = now_ms();
        let mut reads = futures::stream::iter(slot_keys)
            .map(|kv_key| async move { self.read_slots(&kv_key, "").await })
            .buffer_unordered(32);
        let mut slots = Vec::new();
        while let Some(read) = reads.next().await {
            let (_, read) = read?;
            for (holder, expiry) in read.holders {
                if expiry > now {
                    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(expiry).unwrap_or(0));
                    slots.push(soiree::LimitSlot::new(read.key.clone(), holder, at));
                }
            }
        }
        slots.sort_by(|a, b| (&a.key, &a.holder).cmp(&(&b.key, &b.holder)));
        slots.truncate(limit);
        Ok(slots)
    }
}

impl NatsStore {
    pub(crate) fn limits_bucket(&self) -> soiree::Result<&Limits> {
        self.inner.limits.as_ref().ok_or_else(|| {
            crate::bucket::missing("shared limits", &bucket_name(&self.inner.names.prefix))
        })
    }
}

/// Slots and rates in the KV bucket `SOIREE_<prefix>_LIMITS`, shared by
/// every group of the prefix, written by compare-and-set: see the crate
/// docs. Times are the calling process's clock (see
/// [`soiree::SharedLimits`]): keep the processes' clocks in step (NTP).
#[soiree::async_trait]
impl soiree::SharedLimits for NatsStore {
    async fn acquire_slot(
        &self,
        key: &str,
        limit: u32,
        holder: &str,
        ttl: Duration,
    ) -> soiree::Result<bool> {
        Ok(self
            .limits_bucket()?
            .acquire_slot(key, limit, holder, ttl)
            .await?)
    }

    async fn renew_slots(&self, held: &[SlotHold], ttl: Duration) -> soiree::Result<()> {
        if held.is_empty() {
            return Ok(());
        }
        Ok(self.limits_bucket()?.renew_slots(held, ttl).await?)
    }

    async fn release_slot(&self, held: &SlotHold) -> soiree::Result<()> {
        Ok(self.limits_bucket()?.release_slot(held).await?)
    }

    async fn take_rate(
        &self,
        key: &str,
        count: u32,
        period: Duration,
    ) -> soiree::Result<Option<Duration>> {
        Ok(self.limits_bucket()?.take_rate(key, count, period).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_keys_are_valid_and_distinct() {
        let valid = |k: &str| {
            k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        let long = "x".repeat(MAX_HEX);
        for key in ["", "7:mailer/key:a b.>*", "é", long.as_str()] {
            assert!(valid(&kv_key("slot", key)), "{key}");
        }
        assert_ne!(kv_key("slot", "a"), kv_key("rate", "a"));
        assert_ne!(kv_key("slot", "a.b"), kv_key("slot", "a_b"));
        assert!(kv_key("slot", &long).len() < 30);
    }
}
