//! The memory store's shared limits: slots and rates under the store's
//! lock, timed on tokio's clock (a paused clock drives them). Every handle
//! on the same data (any group) shares them, as processes share a durable
//! store's.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::MemoryStore;
use crate::Result;
use crate::store::shared_limits::{SharedLimits, SlotHold, gcra};

/// Slots (key → holder → expiry) and rates (key → theoretical arrival
/// time, in milliseconds since `base`).
#[derive(Debug, Default)]
pub(super) struct LimitState {
    slots: HashMap<String, HashMap<String, Instant>>,
    rates: HashMap<String, i64>,
    base: Option<Instant>,
}

impl LimitState {
    fn now_ms(&mut self) -> i64 {
        let base = *self.base.get_or_insert_with(Instant::now);
        i64::try_from(Instant::now().duration_since(base).as_millis()).unwrap_or(i64::MAX)
    }
}

fn until(ttl: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(ttl)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

#[async_trait]
impl SharedLimits for MemoryStore {
    async fn acquire_slot(
        &self,
        key: &str,
        limit: u32,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let now = Instant::now();
        let mut state = self.lock();
        let slots = state.limits.slots.entry(key.to_owned()).or_default();
        slots.retain(|_, expiry| *expiry > now);
        if slots.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return Ok(false);
        }
        slots.insert(holder.to_owned(), until(ttl));
        Ok(true)
    }

    async fn renew_slots(&self, held: &[SlotHold], ttl: Duration) -> Result<()> {
        let now = Instant::now();
        let mut state = self.lock();
        for hold in held {
            if let Some(expiry) = state
                .limits
                .slots
                .get_mut(&hold.key)
                .and_then(|slots| slots.get_mut(&hold.holder))
                .filter(|expiry| **expiry > now)
            {
                *expiry = until(ttl);
            }
        }
        Ok(())
    }

    async fn release_slot(&self, held: &SlotHold) -> Result<()> {
        let mut state = self.lock();
        if let Some(slots) = state.limits.slots.get_mut(&held.key) {
            slots.remove(&held.holder);
            if slots.is_empty() {
                state.limits.slots.remove(&held.key);
            }
        }
        Ok(())
    }

    async fn take_rate(&self, key: &str, count: u32, period: Duration) -> Result<Option<Duration>> {
        let mut state = self.lock();
        let now = state.limits.now_ms();
        let tat = state.limits.rates.get(key).copied();
        match gcra(tat, now, count, period) {
            Ok(next) => {
                state.limits.rates.insert(key.to_owned(), next);
                Ok(None)
            }
            Err(wait) => Ok(Some(Duration::from_millis(
                u64::try_from(wait).unwrap_or(u64::MAX),
            ))),
        }
    }
}

impl MemoryStore {
    /// The unexpired slots by key then holder, at most `limit`.
    pub(super) fn slot_infos(&self, limit: usize) -> Vec<crate::LimitSlot> {
        let now = Instant::now();
        let state = self.lock();
        let mut slots: Vec<crate::LimitSlot> = state
            .limits
            .slots
            .iter()
            .flat_map(|(key, holders)| {
                holders
                    .iter()
                    .filter(|(_, expiry)| **expiry > now)
                    .map(move |(holder, expiry)| {
                        crate::LimitSlot::new(
                            key.clone(),
                            holder.clone(),
                            super::lease::system_time(*expiry, now),
                        )
                    })
            })
            .collect();
        slots.sort_by(|a, b| (&a.key, &a.holder).cmp(&(&b.key, &b.holder)));
        slots.truncate(limit);
        slots
    }
}
