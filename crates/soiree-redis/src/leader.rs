//! Leader leases ([`soiree::LeaderLease`]): a hash per lease name,
//! `{<prefix>}:lease:<name>`, with the current grant's holder, fencing
//! token and expiry, and the progress its holders record. Each operation
//! is one script, so that the holder check and the write are atomic, with
//! expiry on the server's clock (`TIME`), so that processes whose clocks
//! differ agree on it.
//!
//! A hash rather than a `SET NX PX` key: a key that expires takes its
//! token count and progress with it, and the next leader must go on from
//! both (a higher token, the last tick fired). The scripts do what
//! `SET NX PX` and a holder-checked `PEXPIRE`/`DEL` would, on a key that
//! stays.

use std::sync::LazyLock;
use std::time::Duration;

use soiree::Lease;
use soiree::kit::{check_lease_args, ttl_ms};

use crate::{Error, RedisStore};

/// Lua: `now`, the server's time in Unix milliseconds.
const NOW: &str = "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// KEYS: the lease. ARGV: holder, ttl ms. The new token and the progress
/// ('' for none), or nil when another holder's grant is live.
static ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{NOW}
local h = redis.call('HMGET', KEYS[1], 'holder', 'expires_ms', 'progress')
if h[2] and tonumber(h[2]) > now and h[1] ~= ARGV[1] then return false end
local token = redis.call('HINCRBY', KEYS[1], 'token', 1)
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'expires_ms', now + tonumber(ARGV[2]))
return {{token, h[3] or ''}}"
    ))
});

/// The check of renew and release: ARGV[1] holder, ARGV[2] token, live.
const HELD: &str = "local h = redis.call('HMGET', KEYS[1], 'holder', 'token', 'expires_ms')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] or not h[3] or tonumber(h[3]) <= now then return 0 end
";

/// KEYS: the lease. ARGV: holder, token, ttl ms, progress ('' keeps it).
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{NOW}{HELD}
redis.call('HSET', KEYS[1], 'expires_ms', now + tonumber(ARGV[3]))
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'progress', ARGV[4]) end
return 1"
    ))
});

/// KEYS: the lease. ARGV: holder, token.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{NOW}{HELD}
redis.call('HSET', KEYS[1], 'expires_ms', now)
return 1"
    ))
});

#[soiree::async_trait]
impl soiree::LeaderLease for RedisStore {
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> soiree::Result<Option<Lease>> {
        check_lease_args(name, holder, ttl)?;
        let mut invocation = ACQUIRE.prepare_invoke();
        invocation
            .key(self.inner.keys.lease(name))
            .arg(holder)
            .arg(ttl_ms(ttl));
        let mut conn = self.inner.conn.clone();
        let granted: Option<(u64, String)> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(Error::from)?;
        let Some((token, progress)) = granted else {
            return Ok(None);
        };
        let progress = match progress.as_str() {
            "" => None,
            text => Some(text.parse::<i64>().map_err(|_| {
                Error::Event(soiree::Error::store(format!(
                    "the progress of lease {:?} is not an integer",
                    name.chars().take(64).collect::<String>()
                )))
            })?),
        };
        Ok(Some(Lease::new(name, holder, token, progress)))
    }

    async fn renew(
        &self,
        lease: &Lease,
        ttl: Duration,
        progress: Option<i64>,
    ) -> soiree::Result<bool> {
        check_lease_args(&lease.name, &lease.holder, ttl)?;
        let mut invocation = RENEW.prepare_invoke();
        invocation
            .key(self.inner.keys.lease(&lease.name))
            .arg(&lease.holder)
            .arg(lease.token)
            .arg(ttl_ms(ttl))
            .arg(progress.map(|p| p.to_string()).unwrap_or_default());
        let mut conn = self.inner.conn.clone();
        let done: u8 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(Error::from)?;
        Ok(done == 1)
    }

    async fn release(&self, lease: &Lease) -> soiree::Result<bool> {
        check_lease_args(&lease.name, &lease.holder, Duration::from_millis(1))?;
        let mut invocation = RELEASE.prepare_invoke();
        invocation
            .key(self.inner.keys.lease(&lease.name))
            .arg(&lease.holder)
            .arg(lease.token);
        let mut conn = self.inner.conn.clone();
        let done: u8 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(Error::from)?;
        Ok(done == 1)
    }
}
