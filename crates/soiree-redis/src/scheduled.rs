//! Delayed events: an event due later waits in a sorted set (scored by its
//! due time in Unix milliseconds) instead of the stream, so that no group
//! reads it early. Before reading new entries a consumer runs a script that
//! moves the due members (a bounded batch) into the stream atomically,
//! where every group gets them; the script answers the next due time, and
//! the read blocks no longer than that. Cancelling by event id removes the
//! members of that id.
//!
//! Keys ([`Keys::scheduled`](crate::keys::Keys)): the sorted set of members,
//! member → event JSON, member → event id, event id → JSON array of its
//! members (a repeated id keeps both events), and the member counter.

use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use soiree::{Page, Query, ScheduledEvent, StoredEvent};

use crate::store::unix_ms;
use crate::{Error, RedisStore, Result};

/// Due members moved into the stream per run at most.
const MOVE_BATCH: usize = 500;
/// How long a consumer goes at most without moving due members while some
/// wait (the lateness of one due while the read blocks)…
pub(crate) const MOVE_INTERVAL: Duration = Duration::from_millis(100);
/// …and while none wait (the lateness of one scheduled meanwhile).
pub(crate) const IDLE_MOVE_INTERVAL: Duration = Duration::from_secs(1);

/// Lua helpers shared by the scripts.
const HELPERS: &str = r"
local function schedule(zset, data, owner, by_id, seq, due, json, id)
  local m = tostring(redis.call('INCR', seq))
  redis.call('ZADD', zset, due, m)
  redis.call('HSET', data, m, json)
  if id ~= '' then
    redis.call('HSET', owner, m, id)
    local list = redis.call('HGET', by_id, id)
    local members = {}
    if list then members = cjson.decode(list) end
    table.insert(members, m)
    redis.call('HSET', by_id, id, cjson.encode(members))
  end
end
local function forget(zset, data, owner, by_id, m)
  redis.call('ZREM', zset, m)
  redis.call('HDEL', data, m)
  local id = redis.call('HGET', owner, m)
  if id then
    redis.call('HDEL', owner, m)
    local list = redis.call('HGET', by_id, id)
    if list then
      local kept = {}
      for _, x in ipairs(cjson.decode(list)) do
        if x ~= m then table.insert(kept, x) end
      end
      if #kept == 0 then
        redis.call('HDEL', by_id, id)
      else
        redis.call('HSET', by_id, id, cjson.encode(kept))
      end
    end
  end
end
local function xadd(stream, maxlen, json)
  if tonumber(maxlen) > 0 then
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'event', json)
  else
    redis.call('XADD', stream, '*', 'event', json)
  end
end
";

/// KEYS: the five scheduled keys. ARGV: due ms, event JSON, event id ('' for none).
static SCHEDULE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{HELPERS}
schedule(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2], ARGV[3])
return 1"
    ))
});

/// KEYS: the first four scheduled keys, the events stream. ARGV: now ms,
/// batch, max length (0: none). Answers `{moved, next due ms or -1}`.
static MOVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{HELPERS}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local json = redis.call('HGET', KEYS[2], m)
  if json then xadd(KEYS[5], ARGV[3], json) end
  forget(KEYS[1], KEYS[2], KEYS[3], KEYS[4], m)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #nxt == 0 then return {{#due, -1}} end
return {{#due, tonumber(nxt[2])}}"
    ))
});

/// KEYS: the first four scheduled keys. ARGV: event id. Answers how many
/// members were removed.
static CANCEL: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local list = redis.call('HGET', KEYS[4], ARGV[1])
if not list then return 0 end
local n = 0
for _, m in ipairs(cjson.decode(list)) do
  n = n + redis.call('ZREM', KEYS[1], m)
  redis.call('HDEL', KEYS[2], m)
  redis.call('HDEL', KEYS[3], m)
end
redis.call('HDEL', KEYS[4], ARGV[1])
return n",
    )
});

/// KEYS: the unique key, the events stream, the five scheduled keys. ARGV:
/// event id, window ms, event JSON, max length, due ms (0: now). Answers
/// nil when stored, else the event id holding the key.
static UNIQUE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{HELPERS}
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('GET', KEYS[1])
end
if tonumber(ARGV[5]) > 0 then
  schedule(KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[5], ARGV[3], ARGV[1])
else
  xadd(KEYS[2], ARGV[4], ARGV[3])
end
return false"
    ))
});

/// The due time of an event in Unix milliseconds, rounded up (never
/// early), when it is later than now.
fn due_later(event: &StoredEvent) -> Result<Option<u64>> {
    let Some(due) = event.due_at().map_err(Error::Event)? else {
        return Ok(None);
    };
    let since = due.duration_since(UNIX_EPOCH).unwrap_or_default();
    let ms = u64::try_from(since.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    Ok((ms > unix_ms()).then_some(ms))
}

impl RedisStore {
    /// Stores an event due later in the sorted set; `false` when it is due
    /// already (the caller appends it).
    pub(crate) async fn append_delayed(&self, event: &StoredEvent) -> Result<bool> {
        let Some(due) = due_later(event)? else {
            return Ok(false);
        };
        let json = soiree::limits::encode_event(event).map_err(Error::Event)?;
        let inner = &self.inner;
        let mut invocation = SCHEDULE.prepare_invoke();
        for key in &inner.keys.scheduled {
            invocation.key(key);
        }
        invocation
            .arg(due)
            .arg(json)
            .arg(event.id().unwrap_or_default());
        let mut conn = inner.conn.clone();
        invocation.invoke_async::<i64>(&mut conn).await?;
        inner.metrics.persisted.inc();
        Ok(true)
    }

    /// Moves due delayed events into the stream; answers how long until
    /// the next one is due (`None`: none waits).
    pub(crate) async fn move_due(&self) -> Result<Option<Duration>> {
        let inner = &self.inner;
        let mut invocation = MOVE.prepare_invoke();
        for key in &inner.keys.scheduled[..4] {
            invocation.key(key);
        }
        let now = unix_ms();
        invocation
            .key(&inner.keys.events)
            .arg(now)
            .arg(MOVE_BATCH)
            .arg(inner.options.max_len.unwrap_or(0));
        let mut conn = inner.conn.clone();
        let (_moved, next): (u64, i64) = invocation.invoke_async(&mut conn).await?;
        Ok(u64::try_from(next)
            .ok()
            .map(|next| Duration::from_millis(next.saturating_sub(now))))
    }

    /// Cancels the delayed events of this id; whether any was waiting.
    pub(crate) async fn cancel_delayed(&self, event_id: &str) -> Result<bool> {
        let inner = &self.inner;
        let mut invocation = CANCEL.prepare_invoke();
        for key in &inner.keys.scheduled[..4] {
            invocation.key(key);
        }
        invocation.arg(event_id);
        let mut conn = inner.conn.clone();
        let removed: u64 = invocation.invoke_async(&mut conn).await?;
        Ok(removed > 0)
    }

    /// How many delayed events wait.
    pub(crate) async fn scheduled_count(&self) -> Result<u64> {
        self.query(&redis::Cmd::zcard(&self.inner.keys.scheduled[0]))
            .await
    }

    /// Appends `event` unless `key` is held (then nothing is stored and the
    /// holder's id is returned), with `SET NX PX` and the XADD (or the
    /// delayed event's members) in one script.
    pub(crate) async fn append_unique_inner(
        &self,
        event: &StoredEvent,
        key: &str,
        window: Duration,
    ) -> Result<soiree::Appended> {
        if key.is_empty() || key.len() > soiree::limits::MAX_EVENT_ID_LEN {
            return Err(Error::Event(soiree::Error::LimitExceeded {
                what: "unique key bytes (at least 1)",
                limit: soiree::limits::MAX_EVENT_ID_LEN,
                actual: key.len(),
            }));
        }
        let Some(id) = event.id() else {
            return Err(Error::Event(soiree::Error::store(
                "a unique event needs an event id (soiree.event_id): the bus sets one",
            )));
        };
        let due = due_later(event)?.unwrap_or(0);
        let json = soiree::limits::encode_event(event).map_err(Error::Event)?;
        let inner = &self.inner;
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = UNIQUE.prepare_invoke();
        invocation
            .key(inner.keys.unique(key))
            .key(&inner.keys.events);
        for key in &inner.keys.scheduled {
            invocation.key(key);
        }
        invocation
            .arg(id)
            .arg(window_ms)
            .arg(json)
            .arg(inner.options.max_len.unwrap_or(0))
            .arg(due);
        let mut conn = inner.conn.clone();
        let holder: Option<String> = invocation.invoke_async(&mut conn).await?;
        Ok(match holder {
            Some(holder) => soiree::Appended::Existing(holder),
            None => {
                inner.metrics.persisted.inc();
                soiree::Appended::New
            }
        })
    }

    /// A page of delayed events, soonest first (latest first with
    /// `newest_first`); the cursor is `due_ms.member`.
    pub(crate) async fn scheduled_page(&self, query: &Query) -> Result<Page<ScheduledEvent>> {
        let limit = query.limit.clamp(1, Query::MAX_LIMIT);
        let zset = &self.inner.keys.scheduled[0];
        let mut after: Option<(u64, String)> = match &query.cursor {
            Some(cursor) => Some(
                cursor
                    .split_once('.')
                    .and_then(|(due, m)| Some((due.parse().ok()?, m.to_owned())))
                    .ok_or_else(|| Error::InvalidCursor(cursor.chars().take(64).collect()))?,
            ),
            None => None,
        };
        let mut items = Vec::new();
        // Bounded: a filter that matches little reads at most this many pages.
        for _ in 0..16 {
            let from = after
                .as_ref()
                .map_or_else(|| "-inf".to_owned(), |(due, _)| due.to_string());
            let mut cmd = if query.newest_first {
                let mut cmd = redis::cmd("ZREVRANGEBYSCORE");
                let from = after
                    .as_ref()
                    .map_or_else(|| "+inf".to_owned(), |(due, _)| due.to_string());
                cmd.arg(zset).arg(from).arg("-inf");
                cmd
            } else {
                let mut cmd = redis::cmd("ZRANGEBYSCORE");
                cmd.arg(zset).arg(from).arg("+inf");
                cmd
            };
            // Members of the cursor's score already listed are read again
            // and left out below.
            let want = limit + 64;
            cmd.arg("WITHSCORES").arg("LIMIT").arg(0).arg(want);
            let rows: Vec<(String, f64)> = self.query(&cmd).await?;
            let read = rows.len();
            let fresh: Vec<(String, u64)> = rows
                .into_iter()
                .map(|(m, score)| (m, score as u64))
                .filter(|(m, due)| match &after {
                    None => true,
                    Some((at, last)) => {
                        if query.newest_first {
                            *due < *at || (*due == *at && m.as_str() < last.as_str())
                        } else {
                            *due > *at || (*due == *at && m.as_str() > last.as_str())
                        }
                    }
                })
                .collect();
            if fresh.is_empty() {
                return Ok(Page { items, next: None });
            }
            let members: Vec<&str> = fresh.iter().map(|(m, _)| m.as_str()).collect();
            let jsons: Vec<Option<Vec<u8>>> = self
                .query(
                    redis::cmd("HMGET")
                        .arg(&self.inner.keys.scheduled[1])
                        .arg(&members[..]),
                )
                .await?;
            for ((member, due), json) in fresh.iter().zip(jsons) {
                after = Some((*due, member.clone()));
                let Some(json) = json else { continue };
                let event = event_lossy(&json);
                if !query.filter.matches_event(&event, None) {
                    continue;
                }
                let at = UNIX_EPOCH + Duration::from_millis(*due);
                items.push(ScheduledEvent::new(format!("{due}.{member}"), at, event));
                if items.len() == limit {
                    let next = after.as_ref().map(|(d, m)| format!("{d}.{m}"));
                    return Ok(Page { items, next });
                }
            }
            if read < want {
                return Ok(Page { items, next: None });
            }
        }
        let next = after.as_ref().map(|(d, m)| format!("{d}.{m}"));
        Ok(Page { items, next })
    }
}

/// The stored JSON as an event for a listing, lossily when it is not one.
fn event_lossy(json: &[u8]) -> StoredEvent {
    serde_json::from_slice(json).unwrap_or_else(|_| StoredEvent {
        topic: String::new(),
        payload: String::from_utf8_lossy(json).into_owned().into(),
        properties: serde_json::Map::new(),
    })
}
