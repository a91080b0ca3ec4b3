//! [`soiree::Inspect`] for [`RedisStore`]: the store's streams seen through
//! the trait the `soiree` CLI and the dashboard use.
//!
//! Record ids are stream entry ids and record times their millisecond
//! parts, so a time range narrows the XRANGE bounds themselves.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use redis::{FromRedisValue, Value};
use soiree::{
    ConsumerInfo, DeadLetterSelection, Filter, Inspect, Page, PendingDelivery, Query, Record,
    StoreInfo, StoreStats, StoredEvent, StoredResult,
};

use super::{Range, StreamId, event_lossy, parse, parse_or_skip};
use crate::entry::{self, Entry};
use crate::keys::field;
use crate::store::is_no_such_key;
use crate::{DeadLetter, Error, RedisStore, Result};

/// Dead letters deleted per XDEL.
const DELETE_BATCH: usize = 1000;

#[async_trait]
impl Inspect for RedisStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new(
            "redis",
            self.inner.location.clone(),
            Some(self.inner.options.group.clone()),
        )
    }

    /// One pipelined round trip (XINFO STREAM, XLEN of the results and
    /// dead-letter streams, XINFO GROUPS, XINFO CONSUMERS, XPENDING), and
    /// one more only when the group has undelivered entries and nothing
    /// pending (for the oldest one's age) or Redis reports a lag it may
    /// have miscounted (see [`soiree::EventQueue::backlog`]).
    async fn stats(&self) -> soiree::Result<StoreStats> {
        Ok(self.stats_inner().await?)
    }

    async fn events(&self, query: &Query) -> soiree::Result<Page<Record<StoredEvent>>> {
        Ok(self
            .scan_page(&self.inner.keys.events, query, |entry, at| {
                let event = event_lossy(entry)?;
                query
                    .filter
                    .matches_event(&event, Some(at))
                    .then(|| record(entry, at, event))
            })
            .await?)
    }

    async fn results(&self, query: &Query) -> soiree::Result<Page<Record<StoredResult>>> {
        // Results written behind are read back too.
        self.flush_results().await;
        Ok(self
            .scan_page(&self.inner.keys.results, query, |entry, at| {
                let result: StoredResult = parse_or_skip(entry, field::RESULT)?;
                query
                    .filter
                    .matches_result(&result, Some(at))
                    .then(|| record(entry, at, result))
            })
            .await?)
    }

    /// XPENDING (extended form) for the page, then each entry's event in one
    /// pipelined round trip.
    async fn pending(&self, query: &Query) -> soiree::Result<Page<PendingDelivery>> {
        Ok(self.pending_deliveries(query).await?)
    }

    /// The group's consumers (`XINFO CONSUMERS`), leaving out those with
    /// nothing pending that have not read for the claim timeout (see
    /// `is_live`): gone, though still in the group.
    async fn consumers(&self) -> soiree::Result<Vec<ConsumerInfo>> {
        let inner = &self.inner;
        let reply = self
            .query::<Value>(&redis::Cmd::xinfo_consumers(
                &inner.keys.events,
                &inner.options.group,
            ))
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) if no_group(&err) => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        let reply: redis::streams::StreamInfoConsumersReply = decode(reply)?;
        let bound = inner.options.claim_timeout;
        Ok(reply
            .consumers
            .into_iter()
            .filter(|consumer| is_live(consumer, bound))
            .map(|consumer| {
                ConsumerInfo::new(
                    consumer.name,
                    consumer.pending as u64,
                    Some(Duration::from_millis(consumer.idle as u64)),
                )
            })
            .collect())
    }

    async fn dead_letters(&self, query: &Query) -> soiree::Result<Page<soiree::DeadLetter>> {
        Ok(self
            .scan_page(&self.inner.keys.dead, query, |entry, at| {
                let letter = DeadLetter::from_entry(entry);
                letter_matches(&letter, &query.filter, at).then(|| letter.into())
            })
            .await?)
    }

    /// Read from the sorted set of delayed events and their JSON; the
    /// cursor is `due_ms.member`.
    async fn scheduled(
        &self,
        query: &soiree::Query,
    ) -> soiree::Result<soiree::Page<soiree::ScheduledEvent>> {
        Ok(self.scheduled_page(query).await?)
    }

    /// A bounded SCAN of the lease hashes, then one HMGET each.
    async fn leader_leases(&self, limit: usize) -> soiree::Result<Vec<soiree::LeaseInfo>> {
        Ok(self.lease_infos(limit.clamp(1, Query::MAX_LIMIT)).await?)
    }

    /// A bounded SCAN of the slot sets, then one ZRANGEBYSCORE each.
    async fn limit_slots(&self, limit: usize) -> soiree::Result<Vec<soiree::LimitSlot>> {
        Ok(self.slot_infos(limit.clamp(1, Query::MAX_LIMIT)).await?)
    }

    /// One XRANGE of that id; `None` also for an id that is not a stream
    /// entry id.
    async fn dead_letter(&self, id: &str) -> soiree::Result<Option<soiree::DeadLetter>> {
        let Some(id) = StreamId::parse(id) else {
            return Ok(None);
        };
        let letters = self.letters_by_id(&[id]).await?;
        Ok(letters.into_iter().next().map(Into::into))
    }

    async fn replay_dead_letters(&self, selection: &DeadLetterSelection) -> soiree::Result<u64> {
        let letters = self.select_letters(selection).await?;
        let replay = self.replay_letters(letters);
        Ok(self.privileged(crate::existing::REPLAY, replay).await? as u64)
    }

    async fn purge_dead_letters(&self, selection: &DeadLetterSelection) -> soiree::Result<u64> {
        let letters = self.select_letters(selection).await?;
        let purge = async {
            let ids: Vec<String> = letters.into_iter().map(|letter| letter.id).collect();
            let mut deleted = 0;
            for ids in ids.chunks(DELETE_BATCH) {
                deleted += self
                    .query::<u64>(&redis::Cmd::xdel(&self.inner.keys.dead, ids))
                    .await?;
            }
            Ok(deleted)
        };
        Ok(self.privileged(crate::existing::PURGE, purge).await?)
    }

    async fn replay(&self, event_id: &str) -> soiree::Result<()> {
        match self
            .privileged(crate::existing::REPLAY, RedisStore::replay(self, event_id))
            .await
        {
            Err(Error::NotFound(id)) => Err(soiree::Error::NotFound { what: "event", id }),
            other => Ok(other?),
        }
    }
}

impl RedisStore {
    async fn stats_inner(&self) -> Result<StoreStats> {
        let inner = &self.inner;
        let (keys, group) = (&inner.keys, &inner.options.group);
        // Results written behind are counted too.
        self.flush_results().await;
        let mut stats = StoreStats::default();
        stats.taken_at = Some(SystemTime::now());
        let mut pipe = redis::pipe();
        pipe.ignore_errors()
            .xinfo_stream(&keys.events)
            .xlen(&keys.results)
            .xlen(&keys.dead)
            .xinfo_groups(&keys.events)
            .xinfo_consumers(&keys.events, group)
            .xpending(&keys.events, group);
        let mut conn = inner.conn.clone();
        let replies: Vec<redis::RedisResult<Value>> = pipe.query_async(&mut conn).await?;
        let mut replies = replies.into_iter().map(|reply| reply.map_err(Error::from));
        let mut next = || {
            replies
                .next()
                .unwrap_or_else(|| Err(Error::UnexpectedReply("a short pipeline reply".into())))
        };
        let (stream, results, dead) = (next(), next(), next());
        let (groups, consumers, pending) = (next(), next(), next());

        match stream {
            Ok(info) => {
                let info = entry::pairs(info);
                let get = |name: &str| {
                    info.iter()
                        .find(|(key, _)| key == name)
                        .and_then(|(_, value)| entry::integer(value))
                };
                stats.events = get("length").unwrap_or(0);
                // Redis 7+ counts every entry ever added; before, the length.
                stats.emitted = get("entries-added").unwrap_or(stats.events);
            }
            Err(err) if is_no_such_key(&err) => {}
            Err(err) => return Err(err),
        }
        stats.results = decode(results?)?;
        stats.dead_letters = decode(dead?)?;
        let state = self.group_state(groups, Some(stats.events)).await?;
        stats.backlog = state.backlog;
        stats.in_flight = state.pending;
        stats.scheduled = self.scheduled_count().await?;
        stats.consumers = match consumers {
            Ok(reply) => decode::<redis::streams::StreamInfoConsumersReply>(reply)?
                .consumers
                .iter()
                .filter(|consumer| is_live(consumer, inner.options.claim_timeout))
                .count() as u64,
            Err(err) if no_group(&err) => 0,
            Err(err) => return Err(err),
        };
        let oldest_pending = match pending {
            Ok(reply) => match decode::<redis::streams::StreamPendingReply>(reply)? {
                redis::streams::StreamPendingReply::Data(data) if data.count > 0 => {
                    StreamId::parse(&data.start_id)
                }
                _ => None,
            },
            Err(err) if no_group(&err) => None,
            Err(err) => return Err(err),
        };
        // Pending entries were delivered before any undelivered one: the
        // oldest unacknowledged entry is the oldest pending, or else the
        // first entry after the last delivered.
        let oldest = match oldest_pending {
            Some(id) => Some(id),
            None if state.backlog > 0 => {
                let low = state
                    .last_delivered
                    .as_deref()
                    .and_then(StreamId::parse)
                    .map_or(Range::ALL.low, |last| last.next().unwrap_or(last));
                let range = Range {
                    low,
                    high: Range::ALL.high,
                };
                self.read_range(&keys.events, range, 1, false)
                    .await?
                    .first()
                    .and_then(|entry| StreamId::parse(&entry.id))
            }
            None => None,
        };
        stats.oldest_pending_age = oldest.map(|id| {
            SystemTime::now()
                .duration_since(id.time())
                .unwrap_or(Duration::ZERO)
        });
        Ok(stats)
    }

    async fn pending_deliveries(&self, query: &Query) -> Result<Page<PendingDelivery>> {
        let page = match self
            .pending_rows(query.cursor.as_deref(), query.limit.max(1))
            .await
        {
            // No group (the stream was deleted): nothing is pending.
            Err(err) if no_group(&err) => super::empty_page(),
            other => other?,
        };
        let mut events = Vec::new();
        if !page.items.is_empty() {
            let mut pipe = redis::pipe();
            for row in &page.items {
                pipe.xrange(&self.inner.keys.events, &row.id, &row.id);
            }
            let mut conn = self.inner.conn.clone();
            let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
            for reply in replies {
                let event = entry::entries(reply)?
                    .first()
                    .and_then(|entry| parse::<StoredEvent>(entry, field::EVENT).ok());
                events.push(event);
            }
        }
        events.resize(page.items.len(), None);
        Ok(Page {
            items: page
                .items
                .into_iter()
                .zip(events)
                .map(|(row, event)| {
                    PendingDelivery::new(
                        row.id,
                        row.consumer,
                        Duration::from_millis(row.idle_ms),
                        u32::try_from(row.deliveries).unwrap_or(u32::MAX),
                    )
                    .event(event)
                })
                .collect(),
            next: page.next,
        })
    }

    /// The dead letters with these ids that exist, in one pipelined round
    /// trip.
    async fn letters_by_id(&self, ids: &[StreamId]) -> Result<Vec<DeadLetter>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            let id = id.to_string();
            pipe.xrange(&self.inner.keys.dead, &id, &id);
        }
        let mut conn = self.inner.conn.clone();
        let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
        let mut letters = Vec::new();
        for reply in replies {
            letters.extend(entry::entries(reply)?.iter().map(DeadLetter::from_entry));
        }
        Ok(letters)
    }

    /// The dead letters a selection names, oldest first. Ids that are not
    /// entry ids, or of no letter, select nothing. A filter is applied to
    /// a snapshot: letters added while it runs may be left out.
    async fn select_letters(
        &self,
        selection: &DeadLetterSelection,
    ) -> soiree::Result<Vec<DeadLetter>> {
        match selection {
            DeadLetterSelection::Ids(ids) => {
                let ids: BTreeSet<StreamId> =
                    ids.iter().filter_map(|id| StreamId::parse(id)).collect();
                let ids: Vec<StreamId> = ids.into_iter().collect();
                let mut letters = Vec::new();
                for ids in ids.chunks(DELETE_BATCH) {
                    letters.extend(self.letters_by_id(ids).await?);
                }
                Ok(letters)
            }
            DeadLetterSelection::Matching(filter) => {
                let mut query = Query::oldest(Query::MAX_LIMIT).filter(filter.clone());
                let mut letters = Vec::new();
                loop {
                    let page = self
                        .scan_page(&self.inner.keys.dead, &query, |entry, at| {
                            let letter = DeadLetter::from_entry(entry);
                            letter_matches(&letter, filter, at).then_some(letter)
                        })
                        .await?;
                    letters.extend(page.items);
                    match page.next {
                        Some(next) => query.cursor = Some(next),
                        None => return Ok(letters),
                    }
                }
            }
            other => Err(soiree::Error::store(format!(
                "soiree-redis does not support the dead-letter selection {other:?}"
            ))),
        }
    }
}

fn record<T>(entry: &Entry, at: SystemTime, item: T) -> Record<T> {
    Record {
        id: entry.id.clone(),
        at: Some(at),
        item,
    }
}

/// Whether a filter selects a dead letter set aside at `at`; a letter that
/// holds no event has no topic or event id.
fn letter_matches(letter: &DeadLetter, filter: &Filter, at: SystemTime) -> bool {
    match &letter.event {
        Some(event) => filter.matches_event(event, Some(at)),
        None => filter.matches("", None, Some(at)),
    }
}

/// Whether a consumer counts as one of the group: it holds pending entries,
/// or it read within `bound` (the claim timeout). A consumer of a running
/// bus reads every poll wait (1 s by default); one that stopped without
/// being removed from the group stays in `XINFO CONSUMERS` until the idle
/// cleanup (`remove_idle_consumers`), and is not shown meanwhile.
fn is_live(consumer: &redis::streams::StreamInfoConsumer, bound: Duration) -> bool {
    consumer.pending > 0 || u128::try_from(consumer.idle).unwrap_or(0) < bound.as_millis()
}

/// Whether Redis said the group (or its stream) does not exist.
fn no_group(err: &Error) -> bool {
    err.code() == Some("NOGROUP") || is_no_such_key(err)
}

fn decode<T: FromRedisValue>(value: Value) -> Result<T> {
    T::from_redis_value(value).map_err(|err| Error::UnexpectedReply(err.to_string()))
}
