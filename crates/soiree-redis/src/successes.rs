//! Listener successes (handler dedup): one string per (group, event id),
//! `{<prefix>}:done@<group length>:<group>:<event id>`, listing the
//! listeners that succeeded, each as `<byte length>:<listener id>` (any
//! listener id, `:` included, reads back as written).
//!
//! A string rather than a set, so that both sides cost what Redis's
//! cheapest commands cost: an event's first success is one
//! `SET … EX <dedup_ttl>` (a set took `SADD` and `EXPIRE`), and a
//! dequeued batch's successes are one `MGET` (a set took one `SMEMBERS` per
//! event). A later success of an event appends (`APPEND`, then `EXPIRE`).
//! Which one a success is, the store knows from the batch it read (see
//! [`DedupCache::record_first`](soiree::kit::DedupCache::record_first));
//! when it does not know, it appends. The one case the `SET` loses a
//! success: two consumers holding the same event at once (a lease taken
//! over while its listener still ran), the other's success written just
//! before; that listener may then run again on a later delivery — at
//! least once, as the event was already being handled twice. (Whatever
//! the key held is replaced, so a damaged record harms only itself.)
//!
//! Earlier versions kept a set per event (`dedup:<event id>`, or
//! `dedup@<group length>:<group>:<event id>`). A group that existed before
//! this version opened it reads those sets too for one `dedup_ttl` (their
//! longest life), then no more; the time is kept in
//! `dedup-legacy@<group length>:<group>` (`0` for a group this version
//! created, which has no sets to read).

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use redis::Value;
use soiree::{Delivery, HandlerDedup};

use crate::store::unix_ms;
use crate::{RedisStore, Result};

/// A success as it is appended to its event's string.
fn entry(handler_id: &str) -> String {
    format!("{}:{handler_id}", handler_id.len())
}

/// The listener ids of a success string. A value that does not parse to
/// its end (not written by this store) gives the ids before the damage:
/// a listener missing from it runs again (at least once), logged.
fn parse(value: &[u8]) -> Vec<String> {
    let mut handlers = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let parsed = rest.iter().position(|&b| b == b':').and_then(|colon| {
            let len: usize = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
            let end = colon.checked_add(1)?.checked_add(len)?;
            let id = std::str::from_utf8(rest.get(colon + 1..end)?).ok()?;
            Some((id.to_owned(), end))
        });
        let Some((id, end)) = parsed else {
            tracing::warn!(
                bytes = value.len(),
                "a listener-success record does not parse; reading what came before the damage"
            );
            break;
        };
        handlers.push(id);
        rest = &rest[end..];
    }
    handlers
}

/// The listener ids of a reply to `GET`/`MGET` (nil: none).
fn parse_reply(value: &Value) -> Vec<String> {
    match value {
        Value::BulkString(bytes) => parse(bytes),
        _ => Vec::new(),
    }
}

/// A prefetch's reply: the `MGET`'s values, then the sets of earlier
/// versions (when they were read).
fn split_prefetch(reply: Vec<Value>) -> Result<(Vec<Value>, Vec<Vec<String>>)> {
    let unexpected = |err: redis::ParsingError| crate::Error::UnexpectedReply(err.to_string());
    let mut reply = reply.into_iter();
    let values = redis::from_redis_value(reply.next().unwrap_or(Value::Nil)).map_err(unexpected)?;
    let sets = reply
        .map(redis::from_redis_value::<Vec<String>>)
        .collect::<std::result::Result<_, _>>()
        .map_err(unexpected)?;
    Ok((values, sets))
}

impl RedisStore {
    /// The commands that record a success of `handler_id` for `event_id`
    /// (see the module docs); `first` as [`DedupCache::record_first`]
    /// answered.
    ///
    /// [`DedupCache::record_first`]: soiree::kit::DedupCache::record_first
    pub(crate) fn success_cmds(
        &self,
        event_id: &str,
        handler_id: &str,
        first: Option<bool>,
    ) -> Vec<redis::Cmd> {
        let key = self.inner.keys.successes(event_id);
        let ttl = self.inner.options.dedup_ttl.as_secs().max(1);
        let entry = entry(handler_id);
        if first == Some(true) {
            let mut set = redis::cmd("SET");
            set.arg(&key).arg(entry).arg("EX").arg(ttl);
            return vec![set];
        }
        vec![
            redis::Cmd::append(&key, entry),
            redis::Cmd::expire(&key, i64::try_from(ttl).unwrap_or(i64::MAX)),
        ]
    }

    /// Whether the group's sets of earlier versions are still read.
    fn reads_legacy_sets(&self) -> bool {
        unix_ms() < self.inner.dedup_legacy_until_ms.load(Ordering::Relaxed)
    }

    /// Decides, when the store opens, until when the group's sets of
    /// earlier versions are read: `created` when this store has just
    /// created the group (none to read), else for one `dedup_ttl` from the
    /// first opening of this version (kept in Redis so that every process
    /// agrees), unless a process of this version created it. A store that
    /// may not write (`read_only`, `create_missing(false)`) reads the time
    /// kept, or reads the sets when none is.
    pub(crate) async fn open_dedup_legacy(&self, created: Option<bool>) -> Result<()> {
        let inner = &self.inner;
        let key = &inner.keys.dedup_legacy;
        let ttl_ms = u64::try_from(inner.options.dedup_ttl.as_millis()).unwrap_or(u64::MAX);
        let until = unix_ms().saturating_add(ttl_ms);
        let kept: Option<u64> = match created {
            Some(created) => {
                let value = if created { 0 } else { until };
                let mut pipe = redis::pipe();
                pipe.cmd("SET").arg(key).arg(value).arg("NX").ignore();
                pipe.get(key);
                let (kept,): (Option<u64>,) = self.query_pipe(&pipe).await?;
                kept
            }
            None => self.query(&redis::Cmd::get(key)).await?,
        };
        inner
            .dedup_legacy_until_ms
            .store(kept.unwrap_or(until), Ordering::Relaxed);
        Ok(())
    }

    /// The listeners recorded as succeeded for `event_id`: one `GET` (and
    /// one `SMEMBERS` while sets of earlier versions are read).
    async fn stored_successes(&self, event_id: &str) -> Result<Vec<String>> {
        let keys = &self.inner.keys;
        if !self.reads_legacy_sets() {
            let value: Value = self
                .query(&redis::Cmd::get(keys.successes(event_id)))
                .await?;
            return Ok(parse_reply(&value));
        }
        let mut pipe = redis::pipe();
        pipe.get(keys.successes(event_id))
            .smembers(keys.dedup(event_id));
        let (value, legacy): (Value, Vec<String>) = self.query_pipe(&pipe).await?;
        let mut handlers = parse_reply(&value);
        handlers.extend(legacy);
        Ok(handlers)
    }

    /// Fetches the succeeded listeners of the deliveries' events in one
    /// round trip (one `MGET`). On failure the bus asks Redis per listener
    /// instead.
    pub(crate) async fn prefetch_successes(&self, deliveries: &[Delivery]) {
        let inner = &self.inner;
        let with_id: Vec<(&str, &str)> = deliveries
            .iter()
            .filter_map(|d| Some((d.receipt.as_str(), d.event.id()?)))
            .collect();
        if with_id.is_empty() {
            return;
        }
        let legacy = self.reads_legacy_sets();
        let mut pipe = redis::pipe();
        pipe.mget(
            with_id
                .iter()
                .map(|(_, event_id)| inner.keys.successes(event_id))
                .collect::<Vec<_>>(),
        );
        if legacy {
            for (_, event_id) in &with_id {
                pipe.smembers(inner.keys.dedup(event_id));
            }
        }
        match self
            .query_pipe::<Vec<Value>>(&pipe)
            .await
            .and_then(split_prefetch)
        {
            Ok((values, sets)) if values.len() == with_id.len() => {
                let mut sets = sets.into_iter();
                inner
                    .dedup_cache
                    .insert_many(with_id.into_iter().zip(values).map(
                        |((receipt, event_id), value)| {
                            let mut handlers = parse_reply(&value);
                            if legacy {
                                handlers.extend(sets.next().unwrap_or_default());
                            }
                            (receipt.to_owned(), event_id.to_owned(), handlers)
                        },
                    ));
            }
            outcome => {
                if let Err(err) = outcome {
                    tracing::debug!(%err, "cannot prefetch handler successes");
                }
                // Still known as held: a lost result holds its delivery back.
                for (receipt, event_id) in with_id {
                    inner.dedup_cache.hold(receipt, event_id);
                }
            }
        }
    }
}

#[async_trait]
impl HandlerDedup for RedisStore {
    async fn handler_succeeded(&self, event_id: &str, handler_id: &str) -> soiree::Result<bool> {
        if let Some(answer) = self.inner.dedup_cache.succeeded(event_id, handler_id) {
            return Ok(answer);
        }
        // Results written behind by this store are read back too.
        self.flush_results().await;
        let handlers = self.stored_successes(event_id).await?;
        Ok(handlers.iter().any(|handler| handler == handler_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_listener_id_reads_back_as_written() {
        let ids = [
            "mailer",
            "",
            "a:b",
            "12:x",
            "7:billing:e",
            "é\n\u{202e}",
            "::",
        ];
        let value: String = ids.iter().map(|id| entry(id)).collect();
        assert_eq!(parse(value.as_bytes()), ids);
    }

    #[test]
    fn a_damaged_record_gives_what_came_before_the_damage() {
        let good = entry("mailer");
        for damage in ["x", "3", "9:ab", "-1:a", "99999999999999999999999:a"] {
            let value = format!("{good}{damage}");
            assert_eq!(parse(value.as_bytes()), ["mailer"], "{damage:?}");
        }
        // A length that ends inside a character is damage too.
        let mut split = entry("mailer").into_bytes();
        split.extend_from_slice(b"1:\xc3\xa9");
        assert_eq!(parse(&split), ["mailer"]);
        assert!(parse(b"").is_empty());
    }
}
