//! The queue: reading the events stream through the consumer group.
//!
//! A dequeue takes, in order: this consumer's own pending entries (once,
//! after start: they were delivered to a previous run of this process and
//! never acknowledged), entries idle for longer than the claim timeout at
//! other consumers (XAUTOCLAIM, every so often), and finally new entries
//! (XREADGROUP `>`, blocking up to the poll time).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::streams::{StreamAutoClaimOptions, StreamPendingCountReply, StreamReadOptions};
use soiree::{DeferredDelivery, Delivery, EventQueue, FailedDelivery, StoredEvent};
use tokio::time::Instant;

use crate::entry::{self, Entry};
use crate::keys::field;
use crate::{Error, FailurePolicy, RedisStore, Result};

/// Where the consumer is in its start-up and claim scans.
#[derive(Debug)]
pub(crate) struct ConsumerState {
    /// The id after which this consumer's own pending entries are still to
    /// be re-read; `None` once they all were.
    reread_from: Option<String>,
    claim_cursor: String,
    next_claim: Instant,
    /// When due delayed events are next moved into the stream.
    next_move: Instant,
}

impl ConsumerState {
    pub(crate) fn new() -> Self {
        Self {
            reread_from: Some("0".to_owned()),
            claim_cursor: "0-0".to_owned(),
            next_claim: Instant::now(),
            next_move: Instant::now(),
        }
    }
}

/// The longest a blocking read waits before it is issued again.
const MAX_BLOCK: Duration = Duration::from_secs(3600);

/// Entries handed back per script call.
const RELEASE_BATCH: usize = 256;

/// Hands entries pending under a consumer back to the group: for each one
/// still pending under it, sets its delivery count one lower and its idle
/// time to the claim timeout (XCLAIM … IDLE … RETRYCOUNT … JUSTID, which
/// does not count a delivery). Returns how many were handed back.
///
/// KEYS: events stream. ARGV: group, consumer, idle ms, then entry ids.
pub(crate) const RELEASE_SCRIPT: &str = r"
local released = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local row = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if #row == 1 then
    local count = math.max(row[1][4] - 1, 0)
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id,
      'IDLE', ARGV[3], 'RETRYCOUNT', count, 'JUSTID')
    released = released + 1
  end
end
return released
";

/// Keeps entries with the consumer whose listeners still run: for each one
/// still pending under it, resets its idle time (XCLAIM … JUSTID, which
/// counts no delivery). An entry another consumer claimed meanwhile is left
/// alone. Returns how many were kept.
///
/// KEYS: events stream. ARGV: group, consumer, then entry ids.
pub(crate) const EXTEND_SCRIPT: &str = r"
local kept = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local row = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if #row == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
    kept = kept + 1
  end
end
return kept
";

/// Entries the bus reads per dequeue at most ([`EventQueue::read_ahead`]):
/// a fast bus pays one round trip per up to a thousand events.
const READ_AHEAD: usize = 1000;

/// Why an entry is not delivered.
enum Verdict {
    Deliver(Box<StoredEvent>),
    DeadLetter(String),
    /// Deleted while pending: nothing left to deliver.
    Gone,
}

impl RedisStore {
    async fn dequeue_inner(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let mut state = self.inner.consumer.lock().await;
        let mut out = Vec::new();
        if state.reread_from.is_some() {
            self.reread_own(&mut state, max, &mut out).await?;
        }
        if out.is_empty() && Instant::now() >= state.next_claim {
            self.claim_stale(&mut state, max, &mut out).await?;
        }
        if out.is_empty() {
            let wait = self.move_scheduled(&mut state, wait).await;
            self.read_new(max, wait, &mut out).await?;
        }
        self.prefetch_successes(&out).await;
        Ok(out)
    }

    /// Re-delivers this consumer's own pending entries (XREADGROUP from id
    /// 0, which reads the consumer's pending list and counts a delivery),
    /// a page per call until none is left: after a restart under the same
    /// name the entries in flight at the crash come back at once, without
    /// waiting for the claim timeout.
    async fn reread_own(
        &self,
        state: &mut ConsumerState,
        max: usize,
        out: &mut Vec<Delivery>,
    ) -> Result<()> {
        let inner = &self.inner;
        let Some(start) = state.reread_from.clone() else {
            return Ok(());
        };
        let options = StreamReadOptions::default()
            .group(&inner.options.group, &inner.options.consumer)
            .count(max);
        // The reply is walked by hand: it holds `[id, nil]` for an entry
        // deleted while pending, which the typed reply cannot tell.
        let entries = entry::read_reply(
            self.query(&redis::Cmd::xread_options(
                &[&inner.keys.events],
                &[&start],
                &options,
            ))
            .await?,
        )?;
        let Some(last) = entries.last() else {
            state.reread_from = None;
            return Ok(());
        };
        state.reread_from = Some(last.id.clone());
        // A deferred entry this consumer took before a crash, not due yet.
        let entries = self.keep_deferred(entries).await?;
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        // XREADGROUP does not report delivery counts: read them back.
        let counts = self
            .delivery_counts(&first.id, &last.id, entries.len())
            .await?;
        let before = out.len();
        self.accept(entries, |id| counts.get(id).copied().unwrap_or(2), out)
            .await?;
        inner
            .metrics
            .redelivered
            .inc_by((out.len() - before) as u64);
        Ok(())
    }

    /// Hands entries pending under this consumer back to the group without
    /// counting a delivery: their delivery count goes back by one (the
    /// delivery that never ran) and their idle time is set to the claim
    /// timeout, so any consumer claims them at once.
    pub(crate) async fn release_ids(&self, ids: &[String]) -> Result<u64> {
        let inner = &self.inner;
        let mut released = 0;
        for batch in ids.chunks(RELEASE_BATCH) {
            let mut invocation = inner.release_script.prepare_invoke();
            invocation
                .key(&inner.keys.events)
                .arg(&inner.options.group)
                .arg(&inner.options.consumer)
                .arg(u64::try_from(inner.options.claim_timeout.as_millis()).unwrap_or(u64::MAX));
            for id in batch {
                invocation.arg(id);
            }
            let mut conn = inner.conn.clone();
            released += invocation.invoke_async::<u64>(&mut conn).await?;
        }
        inner.dedup_cache.remove(ids);
        Ok(released)
    }

    /// Resets the idle time of entries this consumer still runs.
    pub(crate) async fn extend_ids(&self, ids: &[String]) -> Result<u64> {
        let inner = &self.inner;
        let mut kept = 0;
        for batch in ids.chunks(RELEASE_BATCH) {
            let mut invocation = inner.extend_script.prepare_invoke();
            invocation
                .key(&inner.keys.events)
                .arg(&inner.options.group)
                .arg(&inner.options.consumer);
            for id in batch {
                invocation.arg(id);
            }
            let mut conn = inner.conn.clone();
            kept += invocation.invoke_async::<u64>(&mut conn).await?;
        }
        Ok(kept)
    }

    /// Claims entries that other consumers left pending for longer than the
    /// claim timeout.
    async fn claim_stale(
        &self,
        state: &mut ConsumerState,
        max: usize,
        out: &mut Vec<Delivery>,
    ) -> Result<()> {
        let inner = &self.inner;
        let min_idle = u64::try_from(inner.options.claim_timeout.as_millis()).unwrap_or(u64::MAX);
        // The reply is walked by hand (see `entry`): the typed one drops
        // entries deleted while pending.
        let reply = self
            .query(&redis::Cmd::xautoclaim_options(
                &inner.keys.events,
                &inner.options.group,
                &inner.options.consumer,
                min_idle,
                &state.claim_cursor,
                StreamAutoClaimOptions::default().count(max),
            ))
            .await?;
        let (cursor, claimed, deleted) = entry::autoclaim_reply(reply)?;
        // Deferred entries idle past the claim timeout, not due yet.
        let claimed = self.keep_deferred(claimed).await?;
        if cursor == "0-0" {
            // A full pass: look again in a fraction of the claim timeout.
            let pause = (inner.options.claim_timeout / 4)
                .clamp(Duration::from_millis(50), Duration::from_secs(5));
            state.next_claim = Instant::now() + pause;
        }
        state.claim_cursor = cursor;
        if !deleted.is_empty() {
            tracing::warn!(
                count = deleted.len(),
                stream = %inner.keys.events,
                "pending entries were trimmed from the stream before they were handled; raise max_len"
            );
        }
        let (Some(first), Some(last)) = (claimed.first(), claimed.last()) else {
            return Ok(());
        };
        // XAUTOCLAIM does not report delivery counts: read them back.
        let counts = self
            .delivery_counts(&first.id, &last.id, claimed.len() + 10_000)
            .await?;
        let before = out.len();
        self.accept(claimed, |id| counts.get(id).copied().unwrap_or(2), out)
            .await?;
        inner
            .metrics
            .redelivered
            .inc_by((out.len() - before) as u64);
        Ok(())
    }

    /// The delivery counts of the entries from `first` to `last` pending
    /// under this consumer (XPENDING's extended form, up to `count` rows).
    async fn delivery_counts(
        &self,
        first: &str,
        last: &str,
        count: usize,
    ) -> Result<HashMap<String, u64>> {
        let inner = &self.inner;
        let rows: StreamPendingCountReply = self
            .query(&redis::Cmd::xpending_consumer_count(
                &inner.keys.events,
                &inner.options.group,
                first,
                last,
                count,
                &inner.options.consumer,
            ))
            .await?;
        Ok(rows
            .ids
            .into_iter()
            .map(|row| (row.id, row.times_delivered as u64))
            .collect())
    }

    /// Moves due delayed events into the stream when it is time; answers
    /// `wait` cut to the next time (a failure is logged: it holds back
    /// delayed events only, not the stream).
    async fn move_scheduled(&self, state: &mut ConsumerState, wait: Duration) -> Duration {
        let now = Instant::now();
        if now >= state.next_move {
            // Deferred entries come due on the same schedule.
            let deferred = match self.wake_deferred().await {
                Ok(next) => next,
                Err(err) => {
                    tracing::warn!(%err, "cannot wake due deferred deliveries");
                    None
                }
            };
            let interval = match self.move_due().await.map(|next| match (next, deferred) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }) {
                Ok(Some(next)) => {
                    next.clamp(Duration::from_millis(1), crate::scheduled::MOVE_INTERVAL)
                }
                Ok(None) => crate::scheduled::IDLE_MOVE_INTERVAL,
                Err(err) => {
                    tracing::warn!(%err, "cannot move due delayed events into the stream");
                    crate::scheduled::IDLE_MOVE_INTERVAL
                }
            };
            state.next_move = now + interval;
        }
        wait.min(state.next_move.saturating_duration_since(now))
    }

    /// Reads entries never delivered to the group, blocking up to `wait`.
    async fn read_new(&self, max: usize, wait: Duration, out: &mut Vec<Delivery>) -> Result<()> {
        let inner = &self.inner;
        // BLOCK 0 would wait forever; Redis rejects a timeout past its
        // range, and a read can always be issued again.
        let wait = wait.min(MAX_BLOCK);
        let block_ms = usize::try_from(wait.as_millis())
            .unwrap_or(usize::MAX)
            .max(1);
        let options = StreamReadOptions::default()
            .group(&inner.options.group, &inner.options.consumer)
            .count(max)
            .block(block_ms);
        let cmd = redis::Cmd::xread_options(&[&inner.keys.events], &[">"], &options);
        let limit = wait.saturating_add(inner.options.response_timeout);
        let mut conn = inner.blocking.clone();
        let reply: redis::Value = tokio::time::timeout(limit, cmd.query_async(&mut conn))
            .await
            .map_err(|_| Error::Timeout(limit))??;
        let entries = entry::read_reply(reply)?;
        self.accept(entries, |_| 1, out).await
    }

    /// Dead-letters an entry; when that fails, leaves it pending (it comes
    /// back after the claim timeout) rather than abandoning the whole batch.
    async fn dead_letter_or_leave(&self, entry: &Entry, error: &str) {
        if let Err(err) = self.dead_letter(&[(&entry.id, error)]).await {
            tracing::warn!(%err, id = %entry.id, "dead-lettering failed; the entry stays pending");
        }
    }

    /// Turns entries into deliveries; dead-letters the malformed and the
    /// over-delivered ones, acknowledges the vanished ones.
    async fn accept(
        &self,
        entries: Vec<Entry>,
        deliveries: impl Fn(&str) -> u64,
        out: &mut Vec<Delivery>,
    ) -> Result<()> {
        let inner = &self.inner;
        let max = u64::from(inner.options.max_deliveries);
        let mut gone = Vec::new();
        let before = out.len();
        for entry in entries {
            let count = deliveries(&entry.id);
            match verdict(&entry) {
                Verdict::Gone => gone.push(entry.id),
                Verdict::DeadLetter(error) => self.dead_letter_or_leave(&entry, &error).await,
                Verdict::Deliver(event) if count > max => {
                    let last_error = match event.id() {
                        Some(id) => self
                            .query::<Option<String>>(&redis::Cmd::get(inner.keys.last_error(id)))
                            .await
                            .unwrap_or_default(),
                        None => None,
                    };
                    let error = match last_error {
                        Some(last) => {
                            format!("delivered {count} times (max {max}); last error: {last}")
                        }
                        None => {
                            format!("delivered {count} times (max {max}) without acknowledgement")
                        }
                    };
                    self.dead_letter_or_leave(&entry, &error).await;
                }
                Verdict::Deliver(event) => out.push(Delivery {
                    receipt: entry.id,
                    event: *event,
                    delivery_count: u32::try_from(count).unwrap_or(u32::MAX),
                }),
            }
        }
        if !gone.is_empty() {
            self.ack_ids(&gone).await?;
        }
        inner.metrics.dequeued.inc_by((out.len() - before) as u64);
        Ok(())
    }

    /// Waits until the results written so far are answered (results before
    /// ack, see [`EventQueue::ack`]) and returns the items to settle: those
    /// with a result of their event lost are left pending (claimed again
    /// after the claim timeout, their listeners with them). A result Redis
    /// refused for good was counted and does not hold its delivery back.
    ///
    /// # Errors
    ///
    /// When the writer did not answer within its timeout: nothing is known
    /// of the results, and nothing may be settled.
    async fn results_settled<T: Clone>(
        &self,
        items: &[T],
        receipt: impl Fn(&T) -> &str,
    ) -> Result<Vec<T>> {
        self.inner.results_writer.flush().await?;
        Ok(self.inner.dedup_cache.settleable(items, receipt))
    }

    /// Acknowledges entries whose results are settled
    /// ([`results_settled`](Self::results_settled) waited for them): on the
    /// connection itself, in batches, not queued behind the results that
    /// listeners still running keep handing to the ordered results writer.
    async fn ack_after_results(&self, ids: &[String]) -> Result<()> {
        const BATCH: usize = 1000;
        for chunk in ids.chunks(BATCH) {
            self.ack_ids(chunk).await?;
        }
        Ok(())
    }

    pub(crate) async fn ack_ids(&self, ids: &[String]) -> Result<()> {
        let inner = &self.inner;
        let cmd = redis::Cmd::xack(&inner.keys.events, &inner.options.group, ids);
        match self.query::<u64>(&cmd).await {
            // The group (and with it the pending list) is gone, after a
            // restart of a Redis without persistence: nothing to acknowledge.
            Err(err) if err.code() == Some("NOGROUP") => Ok(()),
            other => other.map(drop),
        }
    }
}

fn verdict(entry: &Entry) -> Verdict {
    if entry.fields.is_none() {
        return Verdict::Gone;
    }
    let Some(json) = entry.field(field::EVENT) else {
        return Verdict::DeadLetter(format!(
            "parse error: entry has no {:?} field",
            field::EVENT
        ));
    };
    match serde_json::from_slice::<StoredEvent>(json) {
        Ok(event) if event.topic.trim().is_empty() => Verdict::DeadLetter(match event.id() {
            Some(id) => format!("parse error (event id {id:?}): the event has an empty topic"),
            None => "parse error: the event has an empty topic".into(),
        }),
        Ok(event) => Verdict::Deliver(Box::new(event)),
        // Its event id, when readable, says which event it was.
        Err(err) => Verdict::DeadLetter(match entry::readable_event_id(json) {
            Some(id) => format!("parse error (event id {id}): {err}"),
            None => format!("parse error: {err}"),
        }),
    }
}

#[async_trait]
impl EventQueue for RedisStore {
    async fn enqueue(&self, event: &StoredEvent) -> soiree::Result<()> {
        self.append(event).await?;
        Ok(())
    }

    /// Delayed events wait in a sorted set until due; consumers move them
    /// into the stream before reading (see the crate's "Delayed events and unique keys").
    fn schedules(&self) -> bool {
        true
    }

    async fn cancel_scheduled(&self, event_id: &str) -> soiree::Result<bool> {
        Ok(self.cancel_delayed(event_id).await?)
    }

    async fn dequeue(&self, max: usize, wait: Duration) -> soiree::Result<Vec<Delivery>> {
        let max = max.max(1);
        match self.dequeue_inner(max, wait).await {
            Err(err) if err.code() == Some("NOGROUP") => {
                // Redis restarted empty, or someone deleted the stream.
                tracing::warn!(stream = %self.inner.keys.events, "consumer group vanished; recreating it");
                self.ensure_group().await?;
                Ok(self.dequeue_inner(max, wait).await?)
            }
            other => Ok(other?),
        }
    }

    async fn ack(&self, receipts: &[String]) -> soiree::Result<()> {
        let settle = self.results_settled(receipts, String::as_str).await?;
        self.ack_after_results(&settle).await?;
        self.inner.dedup_cache.remove(receipts);
        soiree::kit::held_back(&self.inner.metrics, receipts.len() - settle.len())
    }

    /// With the default [`FailurePolicy::DeadLetter`], every failed delivery.
    fn dead_letters_failure(&self, _delivery_count: u32) -> bool {
        self.inner.options.on_failure == FailurePolicy::DeadLetter
    }

    /// Settles failed deliveries as the [`FailurePolicy`] says: by default
    /// moves them to the dead-letter stream with their errors (and
    /// acknowledges them), listable with [`RedisStore::dead_letters`] and
    /// replayable with [`RedisStore::replay_dead_letters`].
    async fn fail(&self, failures: &[FailedDelivery]) -> soiree::Result<()> {
        let receipts: Vec<String> = failures.iter().map(|f| f.receipt.clone()).collect();
        let failures = self.results_settled(failures, |f| &f.receipt).await?;
        let held = receipts.len() - failures.len();
        match self.inner.options.on_failure {
            FailurePolicy::DeadLetter => {
                let pairs: Vec<(&str, &str)> = failures
                    .iter()
                    .map(|f| (f.receipt.as_str(), f.error.as_str()))
                    .collect();
                match self.dead_letter(&pairs).await {
                    // The group is gone (see `ack_ids`): nothing is pending.
                    Err(err) if err.code() == Some("NOGROUP") => {}
                    other => {
                        other?;
                    }
                }
            }
            FailurePolicy::Acknowledge => {
                let settle: Vec<String> = failures.iter().map(|f| f.receipt.clone()).collect();
                self.ack_after_results(&settle).await?;
            }
            FailurePolicy::Redeliver => {
                for failure in &failures {
                    tracing::debug!(
                        entry_id = %failure.receipt,
                        error = %failure.error,
                        "failed delivery left pending for redelivery"
                    );
                }
            }
        }
        self.inner.dedup_cache.remove(&receipts);
        soiree::kit::held_back(&self.inner.metrics, held)
    }

    /// Hands back the deliveries the bus took but did not run, those it
    /// read ahead included, without counting a delivery: any consumer of
    /// the group claims them at once.
    async fn release(&self, receipts: &[String]) -> soiree::Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let released = self.release_ids(receipts).await?;
        tracing::debug!(released, consumer = %self.inner.options.consumer, "handed back undispatched entries");
        Ok(())
    }

    /// The response timeout: at close the bus waits that long, after its
    /// last listener finished, for the acknowledgements still unanswered,
    /// then abandons them (their entries stay pending and are delivered
    /// again).
    fn close_timeout(&self) -> Duration {
        self.inner.options.response_timeout
    }

    /// A third of the claim timeout: a running delivery's idle time never
    /// reaches it, so no other consumer claims an entry whose listeners run.
    fn lease_interval(&self) -> Option<Duration> {
        Some(self.inner.options.claim_timeout / 3)
    }

    /// Up to a thousand entries per XREADGROUP: the bus reads ahead about
    /// a quarter of the claim timeout's worth at its rate, keeps the
    /// entries it holds with the running ones and hands them back at close
    /// (see [`EventQueue::read_ahead`]).
    fn read_ahead(&self) -> usize {
        READ_AHEAD
    }

    /// Keeps running deliveries with this consumer (see
    /// [`EventQueue::extend`]); a hung listener is bounded by the bus's
    /// `listener_timeout`. With no receipts it returns at once: the store
    /// holds no entry of its own (those the bus reads ahead are among the
    /// receipts).
    async fn extend(&self, receipts: &[String]) -> soiree::Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let kept = self.extend_ids(receipts).await?;
        if (kept as usize) < receipts.len() {
            tracing::debug!(
                kept,
                running = receipts.len(),
                "some running deliveries were claimed by another consumer"
            );
        }
        Ok(())
    }

    /// Deferred entries stay pending in the group under a consumer no bus
    /// reads as, with their delivery count kept, until due (see the
    /// crate's "Deferred deliveries"): durable as the stream is, in the
    /// backlog meanwhile, due times on the consumers' clocks. Once due,
    /// an entry is delivered by the next claim scan of a consumer of the
    /// group (within a fraction of the claim timeout, 5 s at most).
    fn defers(&self) -> bool {
        true
    }

    async fn defer(&self, deferrals: &[DeferredDelivery]) -> soiree::Result<()> {
        // Results before the settling call, as for `ack`.
        let receipts: Vec<String> = deferrals.iter().map(|d| d.receipt.clone()).collect();
        let deferrals = self.results_settled(deferrals, |d| &d.receipt).await?;
        match self.defer_entries(&deferrals).await {
            // The group is gone (see `ack_ids`): nothing is pending.
            Err(err) if err.code() == Some("NOGROUP") => {}
            other => {
                other?;
            }
        }
        self.inner.dedup_cache.remove(&receipts);
        soiree::kit::held_back(&self.inner.metrics, receipts.len() - deferrals.len())
    }

    async fn backlog(&self) -> soiree::Result<u64> {
        Ok(self.backlog_count().await?)
    }
}
