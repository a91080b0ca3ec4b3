//! Listener limits shared by every process of the store
//! ([`soiree::SharedLimits`]), in Lua scripts: a key's slots are a sorted
//! set of holders scored by expiry (expired ones removed, counted and added
//! in one script), a rate is one string holding the next start. Keys live
//! under the store's prefix (`{<prefix>}:limit:…`) and expire on their own
//! once unused.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use soiree::SlotHold;

use crate::RedisStore;

/// KEYS: the slot set. ARGV: now ms, limit, holder, expiry ms, ttl ms.
/// Answers 1 when the slot was taken.
static ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[5]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return 1",
    )
});

/// KEYS: slot sets. ARGV: now ms, expiry ms, ttl ms, then one holder per key.
/// Moves the unexpired holders' expiry.
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "for i, key in ipairs(KEYS) do
  local holder = ARGV[3 + i]
  local expiry = redis.call('ZSCORE', key, holder)
  if expiry and tonumber(expiry) > tonumber(ARGV[1]) then
    redis.call('ZADD', key, 'XX', ARGV[2], holder)
    if redis.call('PTTL', key) < tonumber(ARGV[3]) then
      redis.call('PEXPIRE', key, ARGV[3])
    end
  end
end
return 0",
    )
});

/// KEYS: the rate key. ARGV: now ms, interval ms. Answers nil when the run
/// is admitted (the next start moves to now + interval), else the next
/// start.
static RATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "local next = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
if next > now then return next end
redis.call('SET', KEYS[1], string.format('%.0f', now + tonumber(ARGV[2])), 'PX', ARGV[2])
return false",
    )
});

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

/// Shared across every process of the store; times on the calling
/// process's clock (see [`soiree::SharedLimits`]).
#[async_trait]
impl soiree::SharedLimits for RedisStore {
    async fn acquire_slot(
        &self,
        key: &str,
        limit: u32,
        holder: &str,
        ttl: Duration,
    ) -> soiree::Result<bool> {
        let now = now_ms();
        let mut invocation = ACQUIRE.prepare_invoke();
        invocation
            .key(self.inner.keys.limit_slot(key))
            .arg(now)
            .arg(limit)
            .arg(holder)
            .arg(now.saturating_add(ms(ttl)))
            .arg(ms(ttl));
        let mut conn = self.inner.conn.clone();
        let taken: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(crate::Error::from)?;
        Ok(taken == 1)
    }

    async fn renew_slots(&self, held: &[SlotHold], ttl: Duration) -> soiree::Result<()> {
        if held.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut invocation = RENEW.prepare_invoke();
        for hold in held {
            invocation.key(self.inner.keys.limit_slot(&hold.key));
        }
        invocation
            .arg(now)
            .arg(now.saturating_add(ms(ttl)))
            .arg(ms(ttl));
        for hold in held {
            invocation.arg(&hold.holder);
        }
        let mut conn = self.inner.conn.clone();
        let _: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(crate::Error::from)?;
        Ok(())
    }

    async fn release_slot(&self, held: &SlotHold) -> soiree::Result<()> {
        let mut conn = self.inner.conn.clone();
        let _: i64 = redis::AsyncCommands::zrem(
            &mut conn,
            self.inner.keys.limit_slot(&held.key),
            &held.holder,
        )
        .await
        .map_err(crate::Error::from)?;
        Ok(())
    }

    async fn take_rate(
        &self,
        key: &str,
        count: u32,
        period: Duration,
    ) -> soiree::Result<Option<Duration>> {
        let now = now_ms();
        let mut invocation = RATE.prepare_invoke();
        invocation
            .key(self.inner.keys.limit_rate(key))
            .arg(now)
            .arg(soiree::kit::gcra_interval(count, period));
        let mut conn = self.inner.conn.clone();
        let next: Option<i64> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(crate::Error::from)?;
        Ok(next.map(|next| {
            Duration::from_millis(u64::try_from(next.saturating_sub(now)).unwrap_or(0).max(1))
        }))
    }
}
