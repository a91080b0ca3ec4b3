//! Delayed events: an event due later is published to the stream
//! `SOIREE_<prefix>_SCHEDULED` instead of the events stream, on the subject
//! `<prefix>_sched.<event id in hex>`, with its due time (Unix ms, rounded
//! up) in the header `Soiree-Due` and its events subject in
//! `Soiree-Subject`. No consumer group reads that stream, so nothing is
//! delivered early.
//!
//! A *mover* republishes each event into the events stream once due, with
//! the event id as its `Nats-Msg-Id` (a second move within the duplicate
//! window is dropped), and only then deletes it from the scheduled stream
//! (a crash between the two moves it again: at least once). One mover runs
//! per prefix, in the process holding the leader lease
//! `soiree.scheduled-mover` in the lease bucket; every store handle that
//! dequeues runs a candidate (a task started by its first dequeue, ended
//! when the handle's last clone is dropped, which releases the lease).
//! The mover keeps an index of (due, sequence) in memory, built by reading
//! the stream from its start when it takes the lease, then its new entries
//! every [`POLL`].
//!
//! Lateness: an event is moved at most [`POLL`] after its due time (plus a
//! publish), on the mover's clock; after the mover's process dies, at most
//! [`MOVER_TTL`] more, until another process takes the lease. Due times
//! are the emitting process's clock against the mover's: keep them in step.
//!
//! Why a stream and a mover rather than a NAK with the remaining delay on
//! each delivery (nats-server 2.9 has no scheduled messages): JetStream
//! counts every NAK as a delivery, so a long delay would use up
//! `max_deliveries`, and every group would hold the event in flight; a
//! stream lists the delayed events ([`soiree::Inspect::scheduled`]) and
//! cancels one by id (a purge of its subject).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use async_nats::jetstream::stream::{self, RawMessageErrorKind};
use async_nats::jetstream::{self, message::StreamMessage};
use soiree::{Lease, Page, Query, ScheduledEvent, StoredEvent};

use crate::lease::Leases;
use crate::names::{hex, message_id};
use crate::redact::scrub;
use crate::store::Inner;
use crate::{Error, NatsStore, Result};

/// How often the mover looks for new delayed events and due ones: the
/// lateness of a delayed event while a mover runs.
pub(crate) const POLL: Duration = Duration::from_millis(200);
/// The mover's lease time to live: how long delayed events wait, at most,
/// after the mover's process died, before another process moves them.
pub(crate) const MOVER_TTL: Duration = Duration::from_secs(6);
/// The lease the mover holds.
pub(crate) const MOVER_LEASE: &str = "soiree.scheduled-mover";
/// The header holding a delayed event's due time, in Unix milliseconds.
pub(crate) const DUE_HEADER: &str = "Soiree-Due";
/// The header holding the events subject it moves to.
const SUBJECT_HEADER: &str = "Soiree-Subject";
/// Entries read per mover round, at most.
const SCAN_BATCH: usize = 1000;
/// Entries moved per mover round, at most.
const MOVE_BATCH: usize = 500;
/// Entries a listing reads to sort them by due time, at most.
const LIST_MAX: usize = 10_000;

/// A prefix's scheduled stream, and the mover's start and stop.
pub(crate) struct Scheduled {
    pub(crate) stream: stream::Stream,
    /// `<prefix>_sched`.
    subject_prefix: String,
    started: AtomicBool,
    /// Dropped with the store's last handle: the mover then stops.
    stop: tokio::sync::watch::Sender<()>,
}

/// The name of a prefix's scheduled stream.
pub(crate) fn stream_name(prefix: &str) -> String {
    format!("SOIREE_{prefix}_SCHEDULED")
}

impl Scheduled {
    pub(crate) fn new(stream: stream::Stream, prefix: &str) -> Self {
        Self {
            stream,
            subject_prefix: format!("{prefix}_sched"),
            started: AtomicBool::new(false),
            stop: tokio::sync::watch::channel(()).0,
        }
    }

    /// The subjects of the stream.
    pub(crate) fn subjects(prefix: &str) -> String {
        format!("{prefix}_sched.>")
    }

    fn subject(&self, event_id: &str) -> String {
        format!("{}.{}", self.subject_prefix, hex(event_id))
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// The due time of an entry of the scheduled stream, from its header, else
/// from its event; 0 (due) when it has neither.
fn due_of(message: &StreamMessage) -> u64 {
    if let Some(due) = message
        .headers
        .get(DUE_HEADER)
        .and_then(|v| v.as_str().parse::<u64>().ok())
    {
        return due;
    }
    serde_json::from_slice::<StoredEvent>(&message.payload)
        .ok()
        .and_then(|event| event.due_at().ok().flatten())
        .map_or(0, unix_ms)
}

/// What a mover candidate keeps between rounds.
struct Mover {
    holder: String,
    lease: Option<Lease>,
    renew_at: tokio::time::Instant,
    attempt_at: tokio::time::Instant,
    /// (due ms, sequence) of the entries read and not moved.
    index: BTreeSet<(u64, u64)>,
    /// The next sequence to read.
    next_seq: u64,
}

impl NatsStore {
    fn scheduled_stream(&self) -> soiree::Result<&Scheduled> {
        self.inner.scheduled.as_ref().ok_or_else(|| {
            soiree::Error::Unsupported(format!(
                "delayed events: the stream {} is missing (open the store with create_missing)",
                stream_name(&self.inner.names.prefix)
            ))
        })
    }

    /// Whether this store holds delayed events (its scheduled stream and
    /// lease bucket exist).
    pub(crate) fn can_schedule(&self) -> bool {
        self.inner.scheduled.is_some() && self.inner.leases.is_some()
    }

    /// Publishes `event` to the scheduled stream when it is due later;
    /// `false` when it is due now (the caller appends it).
    pub(crate) async fn schedule_if_later(&self, event: &StoredEvent) -> soiree::Result<bool> {
        let Some(due) = event.due_at()? else {
            return Ok(false);
        };
        let due_ms = unix_ms(due);
        if due_ms <= now_ms() {
            return Ok(false);
        }
        let scheduled = self.scheduled_stream()?;
        let json = soiree::limits::encode_event(event)?;
        let id = soiree::inspect::event_id_text(event);
        let subject = scheduled.subject(id.as_deref().unwrap_or_default());
        // A keyed event of a store ordered by key is moved into its partition.
        let (prefix, _) = self.partition_for(event);
        let target = crate::subject::topic_to_subject(&prefix, &event.topic);
        let mut publish = jetstream::message::PublishMessage::build()
            .payload(json.into())
            .header(DUE_HEADER, due_ms.to_string().as_str())
            .header(SUBJECT_HEADER, target.as_str());
        if let Some(id) = &id {
            publish = publish.message_id(message_id(id));
        }
        let name = stream_name(&self.inner.names.prefix);
        let ack = self
            .inner
            .js
            .send_publish(subject, publish)
            .await
            .map_err(|err| self.err("publish", &name, err))?
            .await
            .map_err(|err| self.err("publish", &name, err))?;
        if !ack.duplicate {
            self.inner.metrics.persisted.inc();
        }
        Ok(true)
    }

    /// Removes the delayed events of `event_id` (a purge of its subject);
    /// whether any waited.
    pub(crate) async fn cancel_delayed(&self, event_id: &str) -> soiree::Result<bool> {
        let scheduled = self.scheduled_stream()?;
        let purged = scheduled
            .stream
            .purge()
            .filter(scheduled.subject(event_id))
            .await
            .map_err(|err| self.err("purge", &stream_name(&self.inner.names.prefix), err))?;
        Ok(purged.purged > 0)
    }

    /// How many delayed events wait.
    pub(crate) async fn scheduled_count(&self) -> soiree::Result<u64> {
        let Some(scheduled) = &self.inner.scheduled else {
            return Ok(0);
        };
        let name = stream_name(&self.inner.names.prefix);
        Ok(self
            .stream_info(&scheduled.stream, &name)
            .await?
            .state
            .messages)
    }

    /// Starts this handle's mover candidate, once (the first dequeue does).
    pub(crate) fn start_mover(&self) {
        let (Some(scheduled), Some(leases)) = (&self.inner.scheduled, &self.inner.leases) else {
            return;
        };
        if scheduled.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            scheduled.started.store(false, Ordering::Release);
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        let stop = scheduled.stop.subscribe();
        let leases = Arc::clone(leases);
        runtime.spawn(run_mover(weak, leases, stop));
    }

    /// One round of the mover: takes or keeps the lease, reads new
    /// entries, moves the due ones; how long to wait before the next.
    async fn mover_round(&self, leases: &Leases, mover: &mut Mover) -> Result<Duration> {
        let now = tokio::time::Instant::now();
        match mover.lease.clone() {
            None => {
                if now < mover.attempt_at {
                    return Ok(mover.attempt_at - now);
                }
                mover.attempt_at = now + MOVER_TTL / 4;
                match leases
                    .acquire(MOVER_LEASE, &mover.holder, MOVER_TTL)
                    .await
                    .map_err(|err| self.err("lease", MOVER_LEASE, err))?
                {
                    Some(lease) => {
                        tracing::debug!(holder = %mover.holder, "moving delayed events");
                        mover.lease = Some(lease);
                        mover.renew_at = now + MOVER_TTL / 3;
                        mover.index.clear();
                        mover.next_seq = 1;
                    }
                    None => return Ok(MOVER_TTL / 4),
                }
            }
            Some(lease) if now >= mover.renew_at => {
                let kept = leases.renew(&lease, MOVER_TTL, None).await;
                if !matches!(kept, Ok(true)) {
                    mover.lease = None;
                    mover.index.clear();
                    kept.map_err(|err| self.err("lease", MOVER_LEASE, err))?;
                    return Ok(POLL);
                }
                mover.renew_at = now + MOVER_TTL / 3;
            }
            Some(_) => {}
        }
        let more_to_read = self.read_new(mover).await?;
        let more_to_move = self.move_due(mover).await?;
        if more_to_read || more_to_move {
            return Ok(Duration::ZERO);
        }
        let mut wait = POLL.min(mover.renew_at.saturating_duration_since(now));
        if let Some((due, _)) = mover.index.first() {
            wait = wait.min(Duration::from_millis(due.saturating_sub(now_ms())));
        }
        Ok(wait)
    }

    /// Reads the scheduled stream's entries from `next_seq` into the index;
    /// whether more may be there.
    async fn read_new(&self, mover: &mut Mover) -> Result<bool> {
        let scheduled = self.scheduled_stream().map_err(Error::Event)?;
        let name = stream_name(&self.inner.names.prefix);
        for _ in 0..SCAN_BATCH {
            let message = scheduled
                .stream
                .raw_message_builder()
                .sequence(mover.next_seq.max(1))
                .next_by_subject(">")
                .send()
                .await;
            match message {
                Ok(message) => {
                    mover.next_seq = message.sequence + 1;
                    mover.index.insert((due_of(&message), message.sequence));
                }
                Err(err) if matches!(err.kind(), RawMessageErrorKind::NoMessageFound) => {
                    return Ok(false);
                }
                Err(err) => return Err(self.err("get", &name, err)),
            }
        }
        Ok(true)
    }

    /// Moves the due entries of the index into the events stream; whether
    /// more are due.
    async fn move_due(&self, mover: &mut Mover) -> Result<bool> {
        for _ in 0..MOVE_BATCH {
            let Some(&(due, seq)) = mover.index.first() else {
                return Ok(false);
            };
            if due > now_ms() {
                return Ok(false);
            }
            self.move_one(seq).await?;
            mover.index.remove(&(due, seq));
        }
        Ok(true)
    }

    async fn move_one(&self, seq: u64) -> Result<()> {
        let scheduled = self.scheduled_stream().map_err(Error::Event)?;
        let name = stream_name(&self.inner.names.prefix);
        let message = match scheduled.stream.get_raw_message(seq).await {
            Ok(message) => message,
            // Cancelled, or moved by a mover before.
            Err(err) if matches!(err.kind(), RawMessageErrorKind::NoMessageFound) => return Ok(()),
            Err(err) => return Err(self.err("get", &name, err)),
        };
        let event = serde_json::from_slice::<StoredEvent>(&message.payload).ok();
        let target = message
            .headers
            .get(SUBJECT_HEADER)
            .map(|v| v.as_str().to_owned())
            .or_else(|| {
                let event = event.as_ref()?;
                Some(crate::subject::topic_to_subject(
                    &self.inner.names.prefix,
                    &event.topic,
                ))
            });
        let Some(target) = target else {
            tracing::warn!(sequence = seq, stream = %name, "a delayed entry names no topic: dropped");
            self.delete_scheduled(seq).await?;
            return Ok(());
        };
        let mut headers = HeaderMap::new();
        let msg_id = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_else(|| format!("~sched.{seq}"));
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id.as_str());
        let events = &self.inner.names.events_stream;
        let ack = self
            .inner
            .js
            .publish_with_headers(target, headers, message.payload.clone())
            .await
            .map_err(|err| self.err("publish", events, err))?
            .await
            .map_err(|err| self.err("publish", events, err))?;
        if event
            .as_ref()
            .is_some_and(|e| self.for_this_group(&e.topic))
        {
            self.inner
                .last_published
                .fetch_max(ack.sequence, Ordering::AcqRel);
        }
        if !self.delete_scheduled(seq).await? && !ack.duplicate {
            // Cancelled while it moved: cancel wins unless a group took it
            // already.
            let _ = self.inner.events.delete_message(ack.sequence).await;
        }
        Ok(())
    }

    /// Deletes an entry of the scheduled stream; whether it was there.
    async fn delete_scheduled(&self, seq: u64) -> Result<bool> {
        let scheduled = self.scheduled_stream().map_err(Error::Event)?;
        match scheduled.stream.delete_message(seq).await {
            Ok(deleted) => Ok(deleted),
            Err(err) => match err.kind() {
                stream::DeleteMessageErrorKind::JetStream(e)
                    if e.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND =>
                {
                    Ok(false)
                }
                _ => Err(self.err("delete", &stream_name(&self.inner.names.prefix), err)),
            },
        }
    }

    /// A page of delayed events, soonest first (latest first with
    /// `newest_first`); the cursor is `<due ms>.<sequence>`. Reads up to
    /// 10,000 entries of the stream to sort them.
    pub(crate) async fn scheduled_page(
        &self,
        query: &Query,
    ) -> soiree::Result<Page<ScheduledEvent>> {
        let Some(scheduled) = &self.inner.scheduled else {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        };
        let name = stream_name(&self.inner.names.prefix);
        let limit = query.limit.clamp(1, Query::MAX_LIMIT);
        let after: Option<(u64, u64)> = match &query.cursor {
            Some(cursor) => Some(
                cursor
                    .split_once('.')
                    .and_then(|(due, seq)| Some((due.parse().ok()?, seq.parse().ok()?)))
                    .ok_or_else(|| {
                        self.err(
                            "read",
                            &name,
                            format!(
                                "cursor {:?} is not one of this listing",
                                cursor.chars().take(64).collect::<String>()
                            ),
                        )
                    })?,
            ),
            None => None,
        };
        let mut keys = Vec::new();
        let mut seq = 1;
        while keys.len() < LIST_MAX {
            let message = scheduled
                .stream
                .raw_message_builder()
                .sequence(seq)
                .next_by_subject(">")
                .send()
                .await;
            match message {
                Ok(message) => {
                    seq = message.sequence + 1;
                    keys.push((due_of(&message), message.sequence));
                }
                Err(err) if matches!(err.kind(), RawMessageErrorKind::NoMessageFound) => break,
                Err(err) => return Err(self.err("get", &name, err).into()),
            }
        }
        keys.sort_unstable();
        if query.newest_first {
            keys.reverse();
        }
        let keys = keys.into_iter().filter(|key| match after {
            None => true,
            Some(after) if query.newest_first => *key < after,
            Some(after) => *key > after,
        });
        let mut items = Vec::new();
        let budget = query.scan_budget();
        let mut last = None;
        for (scanned, (due, seq)) in keys.enumerate() {
            if items.len() >= limit || scanned >= budget {
                return Ok(Page {
                    items,
                    next: last.map(|(d, s)| format!("{d}.{s}")),
                });
            }
            last = Some((due, seq));
            let message = match scheduled.stream.get_raw_message(seq).await {
                Ok(message) => message,
                Err(err) if matches!(err.kind(), RawMessageErrorKind::NoMessageFound) => continue,
                Err(err) => return Err(self.err("get", &name, err).into()),
            };
            let event = event_lossy(&message.payload);
            if !query.filter.matches_event(&event, None) {
                continue;
            }
            let at = UNIX_EPOCH + Duration::from_millis(due);
            items.push(ScheduledEvent::new(format!("{due}.{seq}"), at, event));
        }
        Ok(Page { items, next: None })
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

/// The mover candidate of one store handle, until the handle's last clone
/// is dropped; it then releases the lease if it held it.
async fn run_mover(
    store: std::sync::Weak<Inner>,
    leases: Arc<Leases>,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
    let now = tokio::time::Instant::now();
    let mut mover = Mover {
        holder: format!(
            "{}-mover-{:x}-{:p}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
            store.as_ptr()
        ),
        lease: None,
        renew_at: now,
        attempt_at: now,
        index: BTreeSet::new(),
        next_seq: 1,
    };
    let mut failing = false;
    loop {
        let wait = {
            let Some(inner) = store.upgrade() else {
                break;
            };
            let handle = NatsStore { inner };
            match handle.mover_round(&leases, &mut mover).await {
                Ok(wait) => {
                    failing = false;
                    wait
                }
                Err(err) => {
                    // Once per run of failures: a server down fails every round.
                    if !failing {
                        tracing::warn!(%err, "delayed events not moved; trying again every 200 ms");
                    }
                    failing = true;
                    POLL
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    if let Some(lease) = &mover.lease {
        let _ = tokio::time::timeout(MOVER_TTL, leases.release(lease)).await;
    }
}

/// Opens the prefix's scheduled stream; `None` when it is missing and not
/// created.
pub(crate) async fn open(
    js: &jetstream::Context,
    config: stream::Config,
    create: bool,
    secrets: &[String],
) -> Result<Option<stream::Stream>> {
    let name = config.name.clone();
    if create {
        return crate::store::create_stream(js, config)
            .await
            .map(Some)
            .map_err(|err| {
                Error::jetstream("create stream", &name, scrub(&err.to_string(), secrets))
            });
    }
    Ok(js.get_stream(&name).await.ok())
}
