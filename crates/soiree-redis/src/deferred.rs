//! Deferred deliveries: a snooze kept by the store
//! ([`EventQueue::defer`](soiree::EventQueue::defer)).
//!
//! A deferred entry stays pending in the group, so that it stays in the
//! backlog and in the stream, but under a consumer name no bus reads as
//! ([`PARKED`]), with its delivery count one lower (the delivery that
//! snoozed does not count); its due time is in a sorted set of the group
//! ([`Keys::deferred`](crate::keys::Keys)). Once due, a consumer makes it
//! claimable at once (its idle time set to the claim timeout) and drops
//! it from the set: the next claim scan of any consumer of the group
//! delivers it, with the delivery count it had. A deferred entry that a
//! claim scan takes before it is due (its idle time passed the claim
//! timeout) is parked again, its count restored, before it is delivered:
//! never early, at the price of one round trip per claim timeout for each
//! entry deferred for longer than it.
//!
//! Due times are compared on the consumers' clocks (Unix milliseconds).

use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use soiree::DeferredDelivery;

use crate::entry::Entry;
use crate::store::unix_ms;
use crate::{RedisStore, Result};

/// The consumer name deferred entries wait under.
pub(crate) const PARKED: &str = "soiree:deferred";
/// Due entries made claimable per run at most.
const WAKE_BATCH: usize = 500;

/// KEYS: events stream, deferred set. ARGV: group, consumer, parked name,
/// then (entry id, due ms) pairs. Parks each entry still pending under the
/// consumer; answers how many.
static DEFER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local deferred = 0
for i = 4, #ARGV, 2 do
  local id, due = ARGV[i], ARGV[i + 1]
  local row = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if #row == 1 then
    local count = math.max(row[1][4] - 1, 0)
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, id, 'RETRYCOUNT', count, 'JUSTID')
    redis.call('ZADD', KEYS[2], due, id)
    deferred = deferred + 1
  end
end
return deferred",
    )
});

/// KEYS: events stream, deferred set. ARGV: group, consumer, parked name,
/// now ms, then entry ids the consumer just took. Parks again those not
/// due yet (their count one lower: taking them counted one), forgets the
/// due time of those due; answers the ids parked again.
static KEEP: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local parked = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local due = redis.call('ZSCORE', KEYS[2], id)
  if due then
    if tonumber(due) > tonumber(ARGV[4]) then
      local row = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
      if #row == 1 then
        local count = math.max(row[1][4] - 1, 0)
        redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, id, 'RETRYCOUNT', count, 'JUSTID')
        table.insert(parked, id)
      end
    else
      redis.call('ZREM', KEYS[2], id)
    end
  end
end
return parked",
    )
});

/// KEYS: events stream, deferred set. ARGV: group, parked name, now ms,
/// idle ms (the claim timeout), batch. Makes the due parked entries
/// claimable at once, their count kept; answers the next due ms or -1.
static WAKE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[5]))
for _, id in ipairs(due) do
  local row = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if #row == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id,
      'IDLE', ARGV[4], 'RETRYCOUNT', row[1][4], 'JUSTID')
  end
  redis.call('ZREM', KEYS[2], id)
end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #nxt == 0 then return -1 end
return tonumber(nxt[2])",
    )
});

impl RedisStore {
    /// Parks deferred deliveries of this consumer until their due times.
    pub(crate) async fn defer_entries(&self, deferrals: &[DeferredDelivery]) -> Result<u64> {
        let inner = &self.inner;
        let mut deferred = 0;
        for batch in deferrals.chunks(256) {
            let mut invocation = DEFER.prepare_invoke();
            invocation
                .key(&inner.keys.events)
                .key(&inner.keys.deferred)
                .arg(&inner.options.group)
                .arg(&inner.options.consumer)
                .arg(PARKED);
            for deferral in batch {
                // Rounded up: never due before `until`.
                let due = deferral
                    .until
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |at| at.as_nanos().div_ceil(1_000_000));
                invocation
                    .arg(&deferral.receipt)
                    .arg(u64::try_from(due).unwrap_or(u64::MAX));
            }
            let mut conn = inner.conn.clone();
            deferred += invocation.invoke_async::<u64>(&mut conn).await?;
        }
        Ok(deferred)
    }

    /// Parks again the entries just taken that are deferred and not due:
    /// the rest, to deliver.
    pub(crate) async fn keep_deferred(&self, entries: Vec<Entry>) -> Result<Vec<Entry>> {
        if entries.is_empty() {
            return Ok(entries);
        }
        let inner = &self.inner;
        let mut invocation = KEEP.prepare_invoke();
        invocation
            .key(&inner.keys.events)
            .key(&inner.keys.deferred)
            .arg(&inner.options.group)
            .arg(&inner.options.consumer)
            .arg(PARKED)
            .arg(unix_ms());
        for entry in &entries {
            invocation.arg(&entry.id);
        }
        let mut conn = inner.conn.clone();
        let parked: Vec<String> = invocation.invoke_async(&mut conn).await?;
        if parked.is_empty() {
            return Ok(entries);
        }
        Ok(entries
            .into_iter()
            .filter(|entry| !parked.contains(&entry.id))
            .collect())
    }

    /// Makes the due deferred entries claimable; answers how long until
    /// the next one is due.
    pub(crate) async fn wake_deferred(&self) -> Result<Option<Duration>> {
        let inner = &self.inner;
        let now = unix_ms();
        let mut invocation = WAKE.prepare_invoke();
        invocation
            .key(&inner.keys.events)
            .key(&inner.keys.deferred)
            .arg(&inner.options.group)
            .arg(PARKED)
            .arg(now)
            .arg(u64::try_from(inner.options.claim_timeout.as_millis()).unwrap_or(u64::MAX))
            .arg(WAKE_BATCH);
        let mut conn = inner.conn.clone();
        let next: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(u64::try_from(next)
            .ok()
            .map(|next| Duration::from_millis(next.saturating_sub(now))))
    }
}
