//! The queue logic shared by both databases: leases held by this consumer,
//! the buffer of claimed events, acknowledgement, lease extension, wakeups,
//! batched writes and handler dedup.
//!
//! A consumer claims a range of the log (a lease with a fencing token),
//! reads its events and hands them out a few at a time as the bus asks.
//! Receipts name the lease, its token and the event's row. Acknowledged
//! receipts are counted here; once every event of a lease is acknowledged,
//! the lease is dropped in the database (only while its token still
//! matches). A consumer that dies leaves its leases to expire; another
//! consumer (or itself, after a restart) claims them again, with a new token
//! and one more delivery.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use soiree::{Delivery, FailedDelivery, Page, StoredEvent, StoredResult};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::backend::{
    Backend, DeadRow, FailedRetry, FailedRow, LeaseRow, NewEvent, Pos, RawEvent, RetryRow, Run,
    Scan,
};
use crate::dedup_cache::DedupCache;
use crate::metrics::SqlMetrics;
use crate::options::Options;
use crate::ordering::{Blockers, Check, KeyOrder, Keyed};
use crate::writer::{Recorder, Writer};
use crate::{Error, FailurePolicy, QueueStats, Result, SqlDeadLetter, SqlDeadLetterFilter};

/// Leases remembered after completion, so that a repeated acknowledgement
/// (the bus retries a failed ack call) is not taken for a stale one.
const REMEMBERED_COMPLETIONS: usize = 4096;
/// The first pause before claiming again while committed events wait
/// behind an open transaction; doubled up to the poll interval.
const WAITING_PAUSE: Duration = Duration::from_millis(1);
/// How long an acknowledgement (or a read) waits for earlier results to be
/// written before it fails.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);
/// Events deleted per statement by retention.
const PRUNE_BATCH: usize = 10_000;
/// With `ordered_by_key`, new ranges of the log are claimed only while the
/// buffer holds fewer than this many batches (entries held back wait there).
const ORDERED_BUFFER_BATCHES: usize = 4;

/// The shared state of a store: cheap to reach through an `Arc`.
pub(crate) struct Core<B: Backend> {
    pub(crate) backend: Arc<B>,
    pub(crate) options: Options,
    pub(crate) metrics: SqlMetrics,
    /// Wakes this process's waiting consumers.
    arrived: Notify,
    /// Wakes the task that tells other processes (throttled).
    poke: Option<Arc<Notify>>,
    state: Mutex<ConsumerState>,
    claiming: tokio::sync::Mutex<ClaimState>,
    appender: Writer<NewEvent>,
    recorder: Recorder<StoredResult>,
    dedup: DedupCache,
    heartbeat: AtomicBool,
    /// Dequeues running now, and when one last started or ended: the
    /// heartbeat records this consumer only while it consumes.
    dequeuing: AtomicUsize,
    last_dequeue: Mutex<Instant>,
    /// Set when rows were put in the retry table: look at it on the next fill.
    retry_due: AtomicBool,
}

impl<B: Backend> std::fmt::Debug for Core<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("group", &self.options.group)
            .field("consumer", &self.options.consumer_name())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct ConsumerState {
    buffer: VecDeque<Buffered>,
    leases: HashMap<i64, Held>,
    /// Retry-table rows claimed and not yet settled.
    retries: HashMap<i64, HeldRetry>,
    completed: VecDeque<(i64, i64)>,
    completed_set: HashSet<(i64, i64)>,
    /// Keys of buffered and handed-out deliveries (`ordered_by_key` only).
    order: KeyOrder<Receipt>,
}

impl ConsumerState {
    /// A blocker of `key` may have appeared at `after`: its buffered
    /// entries past it wait for a new check ([`KeyOrder::hold_back`]).
    fn hold_back(&mut self, key: &str, after: Pos) {
        self.order.hold_back(
            self.buffer
                .iter_mut()
                .filter_map(|entry| entry.order.as_mut()),
            key,
            after,
        );
    }
}

#[derive(Debug)]
struct Buffered {
    source: Receipt,
    delivery: Delivery,
    /// Its key and position, with `ordered_by_key` and a key.
    order: Option<Keyed>,
}

/// `(id, token)` of leases or retry rows.
type Pairs = Vec<(i64, i64)>;

/// What a receipt names: an event of a lease, or a row of the retry table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Receipt {
    Log { lease: i64, token: i64, row: i64 },
    Retry { id: i64, token: i64 },
}

/// A retry-table row this consumer claimed.
#[derive(Debug)]
struct HeldRetry {
    token: i64,
    deliveries: i32,
    /// Since when the bus has it, once handed out.
    out: Option<Instant>,
}

/// A lease this consumer holds.
#[derive(Debug)]
struct Held {
    token: i64,
    total: usize,
    deliveries: i32,
    /// Rows not yet acknowledged.
    pending: HashSet<i64>,
    /// Every event of the lease, in log order.
    rows: Vec<Pos>,
    /// How many rows are handed out and not yet settled (approximately:
    /// one counter per lease instead of a map entry per event)…
    out_count: usize,
    /// …and since when some have been, continuously.
    out_since: Option<Instant>,
}

#[derive(Debug)]
struct ClaimState {
    next_reclaim: Instant,
    next_retry: Instant,
}

/// What a fill of the buffer found.
enum Fill {
    /// Something happened (events loaded, or a lease dead-lettered): look again.
    Progress,
    /// Nothing to claim; `waiting` when committed events wait behind an
    /// open transaction.
    Empty { waiting: bool },
}

impl<B: Backend> Core<B> {
    /// Builds the core and spawns its writers (and, with `notify_interval`,
    /// the task that wakes other processes) on the current runtime.
    pub(crate) fn new(
        backend: B,
        options: Options,
        metrics: SqlMetrics,
        notify_interval: Option<Duration>,
    ) -> Arc<Self> {
        let backend = Arc::new(backend);
        let appender = {
            let backend = Arc::clone(&backend);
            Writer::spawn(move |events: Arc<[NewEvent]>| {
                let backend = Arc::clone(&backend);
                async move { backend.append(&events).await }
            })
        };
        let recorder = {
            let backend = Arc::clone(&backend);
            Recorder::spawn(
                move |results: Arc<[StoredResult]>| {
                    let backend = Arc::clone(&backend);
                    async move { backend.save_results(&results).await }
                },
                metrics.results_refused.clone(),
                crate::writer::TRANSIENT_RETRY_WINDOW,
            )
        };
        let poke = notify_interval.map(|_| Arc::new(Notify::new()));
        let core = Arc::new(Self {
            backend,
            options,
            metrics,
            arrived: Notify::new(),
            poke: poke.clone(),
            state: Mutex::default(),
            claiming: tokio::sync::Mutex::new(ClaimState {
                next_reclaim: Instant::now(),
                next_retry: Instant::now(),
            }),
            appender,
            recorder,
            dedup: DedupCache::default(),
            heartbeat: AtomicBool::new(false),
            dequeuing: AtomicUsize::new(0),
            last_dequeue: Mutex::new(Instant::now()),
            retry_due: AtomicBool::new(false),
        });
        if let (Some(poke), Some(interval)) = (poke, notify_interval) {
            tokio::spawn(notifier(Arc::downgrade(&core), poke, interval));
        }
        core
    }

    fn lock(&self) -> MutexGuard<'_, ConsumerState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes consumers: this process's at once, other processes' through
    /// the throttled notifier.
    pub(crate) fn wake(&self) {
        self.arrived.notify_waiters();
        if let Some(poke) = &self.poke {
            poke.notify_one();
        }
    }

    /// Wakes this process's consumers only (a notification from another
    /// process arrived).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn wake_local(&self) {
        self.arrived.notify_waiters();
    }

    /// Appends an event through the batching writer, then wakes consumers.
    pub(crate) async fn append(&self, event: &StoredEvent) -> Result<()> {
        let new = NewEvent::from_stored(event)?;
        self.appender.write(new).await?;
        self.metrics.persisted.inc();
        self.wake();
        Ok(())
    }

    pub(crate) async fn save_result(&self, result: &StoredResult) -> Result<()> {
        for (what, text) in [
            ("the topic", &result.topic),
            ("the event id", &result.event_id),
            ("the handler id", &result.handler_id),
        ] {
            crate::topic::no_nul(what, text)?;
        }
        let mut result = result.clone();
        if let Some(error) = &mut result.error
            && error.contains('\0')
        {
            *error = error.replace('\0', "\u{fffd}");
        }
        let succeeded = result.succeeded() && !result.event_id.is_empty();
        if succeeded {
            self.dedup.record(&result.event_id, &result.handler_id);
        }
        // Written behind, in batches; always before the acknowledgement of
        // the event, and before any read through this store.
        self.recorder.submit(result).await?;
        self.metrics.results.inc();
        Ok(())
    }

    /// Waits until every result accepted so far is written.
    pub(crate) async fn flush_results(&self) -> Result<()> {
        self.recorder.flush(FLUSH_LIMIT).await
    }

    pub(crate) async fn handler_succeeded(&self, event_id: &str, handler_id: &str) -> Result<bool> {
        if let Some(answer) = self.dedup.succeeded(event_id, handler_id) {
            return Ok(answer);
        }
        self.flush_results().await?;
        let done = self.backend.succeeded(&[event_id.to_owned()]).await?;
        Ok(done.iter().any(|(_, handler)| handler == handler_id))
    }

    /// Takes up to `max` events, waiting up to `wait` for the first one.
    pub(crate) async fn dequeue(
        self: &Arc<Self>,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        self.start_heartbeat();
        let _active = Dequeuing::start(self);
        let max = max.max(1);
        let deadline = Instant::now()
            .checked_add(wait)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        let mut pause = WAITING_PAUSE;
        loop {
            let notified = self.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let out = self.take_buffered(max);
            if !out.is_empty() {
                return Ok(out);
            }
            let waiting = match self.fill().await? {
                Fill::Progress => continue,
                Fill::Empty { waiting } => waiting,
            };
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let sleep = if waiting {
                let this = pause;
                pause = (pause * 2).min(self.options.poll_interval);
                this
            } else {
                pause = WAITING_PAUSE;
                self.options.poll_interval
            };
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until((now + sleep).min(deadline)) => {}
            }
        }
    }

    /// Hands out buffered deliveries of leases still held.
    fn take_buffered(&self, max: usize) -> Vec<Delivery> {
        let mut state = self.lock();
        let now = Instant::now();
        let mut out = Vec::new();
        if self.options.ordered_by_key {
            take_in_key_order(&mut state, max, now, &mut out);
            return out;
        }
        while out.len() < max {
            let Some(entry) = state.buffer.pop_front() else {
                break;
            };
            if mark_out(&mut state, entry.source, now) {
                out.push(entry.delivery);
            }
        }
        out
    }

    /// Claims more events into the buffer: an expired lease first (every
    /// so often), else the next range of the log.
    async fn fill(&self) -> Result<Fill> {
        let mut claim = self.claiming.lock().await;
        let mut room = true;
        if self.options.ordered_by_key {
            // Entries held back stay in the buffer: look again only if one
            // is ready, else check the held-back ones when due and claim
            // more while there is room (expired leases and retry rows, which
            // hold earlier events, whatever the buffer holds).
            let check = {
                let mut state = self.lock();
                if any_ready(&state) {
                    return Ok(Fill::Progress);
                }
                room = state.buffer.len()
                    < ORDERED_BUFFER_BATCHES.saturating_mul(self.options.batch_size);
                let state = &mut *state;
                state
                    .order
                    .due_check(
                        state.buffer.iter().filter_map(|entry| entry.order.as_ref()),
                        Instant::now(),
                        self.options.poll_interval,
                    )
                    .map(|check| (check, own_pairs(state)))
            };
            if let Some((check, (leases, retries))) = check
                && self.recheck(&check, &leases, &retries).await?
            {
                return Ok(Fill::Progress);
            }
        } else if !self.lock().buffer.is_empty() {
            // Another dequeue filled it while this one waited for the lock.
            return Ok(Fill::Progress);
        }
        let reclaim_due = Instant::now() >= claim.next_reclaim;
        if reclaim_due {
            match self.backend.reclaim().await? {
                Some(lease) => {
                    self.reclaimed(lease).await?;
                    return Ok(Fill::Progress);
                }
                None => {
                    let pause = (self.options.lease_timeout / 4)
                        .clamp(Duration::from_millis(50), Duration::from_secs(5));
                    claim.next_reclaim = Instant::now() + pause;
                }
            }
        }
        if self.retry_due.swap(false, Ordering::AcqRel) || Instant::now() >= claim.next_retry {
            claim.next_retry = Instant::now()
                + self
                    .options
                    .poll_interval
                    .clamp(Duration::from_millis(10), Duration::from_secs(1));
            let rows = self.backend.claim_retries(self.options.batch_size).await?;
            if !rows.is_empty() {
                self.load_retries(rows).await?;
                return Ok(Fill::Progress);
            }
        }
        let claimed = if room {
            self.backend.claim(self.options.batch_size).await?
        } else {
            None
        };
        match claimed {
            Some(lease) => {
                self.load(lease).await?;
                Ok(Fill::Progress)
            }
            None => {
                // Nothing new: take over an expired or handed-back lease now
                // rather than at the next reclaim time.
                if !reclaim_due && let Some(lease) = self.backend.reclaim().await? {
                    self.reclaimed(lease).await?;
                    return Ok(Fill::Progress);
                }
                Ok(Fill::Empty {
                    waiting: room && self.backend.waiting().await?,
                })
            }
        }
    }

    /// Handles a lease taken over after it expired: dead letters past
    /// `max_deliveries`, one lease per event from the third delivery on (so
    /// that a poison event does not take its neighbours down with it).
    async fn reclaimed(&self, lease: LeaseRow) -> Result<()> {
        self.forget_lease(lease.id);
        let max = self.options.max_deliveries;
        if i64::from(lease.deliveries) > i64::from(max) {
            let moved = self.backend.dead_letter_lease(&lease, max).await?;
            tracing::warn!(
                lease = lease.id,
                events = moved,
                deliveries = lease.deliveries,
                "events delivered too often moved to the dead letters"
            );
            self.metrics.dead_lettered.inc_by(moved);
            return Ok(());
        }
        if lease.deliveries > 2 && lease.events > 1 {
            for single in self.backend.split(&lease).await? {
                self.load(single).await?;
            }
            return Ok(());
        }
        self.load(lease).await
    }

    fn forget_lease(&self, lease: i64) {
        let mut state = self.lock();
        state.leases.remove(&lease);
        forget_entries(
            &mut state,
            |source| matches!(source, Receipt::Log { lease: l, .. } if *l == lease),
        );
    }

    fn forget_retry(&self, id: i64) {
        let mut state = self.lock();
        state.retries.remove(&id);
        forget_entries(
            &mut state,
            |source| matches!(source, Receipt::Retry { id: r, .. } if *r == id),
        );
    }

    /// With `ordered_by_key`, checks the keys of events being loaded against
    /// the rest of the group (leaving out this consumer's leases and retry
    /// rows, and `lease` and `retries` being loaded): the epoch the check
    /// began at and, per key, the earliest blocking position. `None` when
    /// no event has a key.
    async fn check_keys<'a>(
        &self,
        events: impl Iterator<Item = (&'a str, Pos)>,
        lease: Option<(i64, i64)>,
        retries: &[(i64, i64)],
    ) -> Result<Option<(u64, Blockers)>> {
        let mut keys: HashSet<&str> = HashSet::new();
        let mut before: Option<Pos> = None;
        for (key, pos) in events {
            keys.insert(key);
            before = Some(before.map_or(pos, |b| b.max(pos)));
        }
        let Some(before) = before else {
            return Ok(None);
        };
        let keys: Vec<String> = keys.into_iter().map(str::to_owned).collect();
        let (epoch, (mut own_leases, mut own_retries)) = {
            let state = self.lock();
            (state.order.epoch(), own_pairs(&state))
        };
        own_leases.extend(lease);
        own_retries.extend_from_slice(retries);
        let blockers = self
            .backend
            .key_blockers(&keys, before, &own_leases, &own_retries)
            .await?;
        Ok(Some((epoch, blockers.into_iter().collect())))
    }

    /// Checks the held-back entries again; returns whether any was released.
    async fn recheck(
        &self,
        check: &Check,
        leases: &[(i64, i64)],
        retries: &[(i64, i64)],
    ) -> Result<bool> {
        let blockers: Blockers = self
            .backend
            .key_blockers(&check.keys, check.before, leases, retries)
            .await?
            .into_iter()
            .collect();
        let mut state = self.lock();
        let state = &mut *state;
        Ok(state.order.apply(
            check,
            &blockers,
            state
                .buffer
                .iter_mut()
                .filter_map(|entry| entry.order.as_mut()),
        ))
    }

    /// With `ordered_by_key`: deliveries are settled (their keys move on),
    /// after `moved` of them went to (or stayed in) the retry table, where
    /// they hold back the later buffered entries of their keys. Wakes the
    /// consumers waiting for a key.
    fn keys_settled(&self, receipts: &[Receipt], moved: &[Receipt]) {
        if !self.options.ordered_by_key {
            return;
        }
        let mut any = false;
        {
            let mut state = self.lock();
            let state = &mut *state;
            for receipt in moved {
                if let Some((key, pos)) = state.order.out_of(receipt) {
                    state.hold_back(&key, pos);
                }
            }
            for receipt in receipts {
                any |= state.order.settle(receipt);
            }
        }
        if any {
            self.arrived.notify_waiters();
        }
    }

    /// The handler successes of these events, by event id (empty when they
    /// cannot be read: the bus then asks per listener).
    async fn prefetch_successes<'a>(
        &self,
        events: impl Iterator<Item = &'a StoredEvent>,
    ) -> HashMap<String, Vec<String>> {
        let event_ids: Vec<String> = events
            .filter_map(|event| event.id().map(str::to_owned))
            .collect();
        let mut by_event: HashMap<String, Vec<String>> = HashMap::new();
        if event_ids.is_empty() {
            return by_event;
        }
        match self.backend.succeeded(&event_ids).await {
            Ok(done) => {
                for (event_id, handler) in done {
                    by_event.entry(event_id).or_default().push(handler);
                }
            }
            Err(err) => tracing::debug!(%err, "cannot prefetch handler successes"),
        }
        by_event
    }

    /// Buffers claimed rows of the retry table; those delivered too often
    /// (their consumers died) or that are not events go to the dead letters.
    async fn load_retries(&self, rows: Vec<RetryRow>) -> Result<()> {
        let max = i32::try_from(self.options.max_deliveries).unwrap_or(i32::MAX);
        let mut ready = Vec::with_capacity(rows.len());
        let mut dead = Vec::new();
        for row in rows {
            if row.deliveries > max {
                dead.push(FailedRetry {
                    id: row.id,
                    token: row.token,
                    error: format!(
                        "delivered {} times (max {max}) without acknowledgement",
                        row.deliveries
                    ),
                    delay_ms: 0,
                });
                continue;
            }
            match row.event.parse() {
                Ok(event) => ready.push((row, event)),
                Err(error) => dead.push(FailedRetry {
                    id: row.id,
                    token: row.token,
                    error,
                    delay_ms: 0,
                }),
            }
        }
        if !dead.is_empty() {
            let moved = self.backend.fail_retries(&dead, false).await?;
            self.metrics.dead_lettered.inc_by(moved);
        }
        if ready.is_empty() {
            return Ok(());
        }
        let by_event = self
            .prefetch_successes(ready.iter().map(|(_, event)| event))
            .await;
        let checked = if self.options.ordered_by_key {
            let claimed: Pairs = ready.iter().map(|(row, _)| (row.id, row.token)).collect();
            self.check_keys(
                ready
                    .iter()
                    .filter_map(|(row, _)| Some((row.event.key.as_deref()?, row.event.pos))),
                None,
                &claimed,
            )
            .await?
        } else {
            None
        };
        let n = ready.len();
        let mut state = self.lock();
        for (row, event) in ready {
            let order = match &row.event.key {
                Some(key) if self.options.ordered_by_key => {
                    Some(state.order.admit(key, row.event.pos, checked.as_ref()))
                }
                _ => None,
            };
            let receipt = retry_receipt(row.id, row.token);
            if let Some(event_id) = event.id() {
                let handlers = by_event.get(event_id).cloned().unwrap_or_default();
                self.dedup.insert(&receipt, event_id, handlers);
            }
            state.retries.insert(
                row.id,
                HeldRetry {
                    token: row.token,
                    deliveries: row.deliveries,
                    out: None,
                },
            );
            state.buffer.push_back(Buffered {
                source: Receipt::Retry {
                    id: row.id,
                    token: row.token,
                },
                delivery: Delivery {
                    receipt,
                    event,
                    delivery_count: u32::try_from(row.deliveries.max(1)).unwrap_or(1),
                },
                order,
            });
        }
        drop(state);
        self.metrics.dequeued.inc_by(n as u64);
        self.metrics.redelivered.inc_by(n as u64);
        Ok(())
    }

    /// Reads a lease's events into the buffer; rows that are not events go
    /// to the dead letters.
    async fn load(&self, lease: LeaseRow) -> Result<()> {
        let rows = self.backend.read(&lease).await?;
        let count = u32::try_from(lease.deliveries.max(1)).unwrap_or(u32::MAX);
        let mut ready = Vec::with_capacity(rows.len());
        let mut dead = Vec::new();
        let ordered = self.options.ordered_by_key;
        for raw in rows {
            match raw.parse() {
                Ok(event) => ready.push((raw.pos, event, raw.key.filter(|_| ordered))),
                Err(error) => dead.push(DeadRow {
                    event: raw,
                    error,
                    deliveries: lease.deliveries,
                }),
            }
        }
        if !dead.is_empty() {
            // On failure the lease is not taken on: it expires and comes back.
            self.backend.dead_letter_rows(&dead).await?;
            tracing::warn!(
                count = dead.len(),
                "rows that are not events moved to the dead letters"
            );
            self.metrics.dead_lettered.inc_by(dead.len() as u64);
        }
        if ready.is_empty() {
            self.backend.complete(&[(lease.id, lease.token)]).await?;
            return Ok(());
        }
        let by_event = self
            .prefetch_successes(ready.iter().map(|(_, event, _)| event))
            .await;
        let checked = if ordered {
            self.check_keys(
                ready
                    .iter()
                    .filter_map(|(pos, _, key)| Some((key.as_deref()?, *pos))),
                Some((lease.id, lease.token)),
                &[],
            )
            .await?
        } else {
            None
        };
        let n = ready.len();
        let mut state = self.lock();
        state.leases.insert(
            lease.id,
            Held {
                token: lease.token,
                total: n,
                deliveries: lease.deliveries,
                pending: ready.iter().map(|(pos, _, _)| pos.id).collect(),
                rows: ready.iter().map(|(pos, _, _)| *pos).collect(),
                out_count: 0,
                out_since: None,
            },
        );
        let mut known = Vec::with_capacity(n);
        for (pos, event, key) in ready {
            let order = key.map(|key| state.order.admit(&key, pos, checked.as_ref()));
            let receipt = log_receipt(lease.id, lease.token, pos);
            if let Some(event_id) = event.id() {
                let handlers = by_event.get(event_id).cloned().unwrap_or_default();
                known.push((receipt.clone(), event_id.to_owned(), handlers));
            }
            state.buffer.push_back(Buffered {
                source: Receipt::Log {
                    lease: lease.id,
                    token: lease.token,
                    row: pos.id,
                },
                delivery: Delivery {
                    receipt,
                    event,
                    delivery_count: count,
                },
                order,
            });
        }
        // Before any dequeue can take them: the bus's dedup lookups then
        // need no round trip.
        self.dedup.insert_many(known);
        drop(state);
        self.metrics.dequeued.inc_by(n as u64);
        if count > 1 {
            self.metrics.redelivered.inc_by(n as u64);
        }
        Ok(())
    }

    /// Acknowledges deliveries; a lease is dropped once all its events are.
    pub(crate) async fn ack(&self, receipts: &[String]) -> Result<()> {
        let parsed = parse_receipts(receipts)?;
        // The results of these events' listeners go first: an acknowledged
        // event's results are never lost.
        self.flush_results().await?;
        let (log, retries) = split_receipts(&parsed);
        let mut stale = self.settle_log(&log).await?;
        if !retries.is_empty() {
            let done: HashSet<i64> = self
                .backend
                .ack_retries(&retries)
                .await?
                .into_iter()
                .collect();
            let mut state = self.lock();
            for &(id, token) in &retries {
                state.retries.remove(&id);
                if done.contains(&id) {
                    remember(&mut state, (-id, token));
                } else if !state.completed_set.contains(&(-id, token)) {
                    stale += 1;
                }
            }
        }
        self.keys_settled(&parsed, &[]);
        self.dedup.remove(receipts);
        if stale > 0 {
            self.metrics.stale_acks.inc_by(stale as u64);
            return Err(Error::StaleLease { receipts: stale });
        }
        Ok(())
    }

    /// Marks events of held leases as done (acknowledged, failed or handed
    /// back) and drops the leases all of whose events are; returns how many
    /// receipts named a lease this consumer no longer holds.
    async fn settle_log(&self, parsed: &[(i64, i64, i64)]) -> Result<usize> {
        if parsed.is_empty() {
            return Ok(0);
        }
        let mut stale = 0usize;
        let mut per_lease: HashMap<(i64, i64), usize> = HashMap::new();
        let mut complete = Vec::new();
        {
            let mut state = self.lock();
            let state = &mut *state;
            for &(lease, token, row) in parsed {
                match state.leases.get_mut(&lease) {
                    Some(held) if held.token == token => {
                        held.pending.remove(&row);
                        held.out_count = held.out_count.saturating_sub(1);
                        if held.out_count == 0 {
                            held.out_since = None;
                        }
                        *per_lease.entry((lease, token)).or_default() += 1;
                    }
                    _ if state.completed_set.contains(&(lease, token)) => {}
                    _ => stale += 1,
                }
            }
            for &(lease, token) in per_lease.keys() {
                if state
                    .leases
                    .get(&lease)
                    .is_some_and(|held| held.token == token && held.pending.is_empty())
                {
                    complete.push((lease, token));
                }
            }
        }
        if !complete.is_empty() {
            let done: HashSet<i64> = self
                .backend
                .complete(&complete)
                .await?
                .into_iter()
                .collect();
            let mut state = self.lock();
            for &(lease, token) in &complete {
                if state
                    .leases
                    .get(&lease)
                    .is_some_and(|held| held.token == token)
                {
                    state.leases.remove(&lease);
                }
                if done.contains(&lease) {
                    remember(&mut state, (lease, token));
                } else {
                    // Expired and taken over before it was completed.
                    stale += per_lease.get(&(lease, token)).copied().unwrap_or(0);
                }
            }
        }
        Ok(stale)
    }

    /// Whether [`fail`](Self::fail) dead-letters a delivery that failed on
    /// its `delivery_count`th delivery (the same rule as `fail`'s).
    pub(crate) fn dead_letters_failure(&self, delivery_count: u32) -> bool {
        match self.options.on_failure {
            FailurePolicy::Acknowledge => false,
            FailurePolicy::Redeliver => delivery_count >= self.options.max_deliveries,
            FailurePolicy::DeadLetter => true,
        }
    }

    /// Settles failed deliveries as the [`FailurePolicy`] says: dead letters
    /// with the error, or the retry table with a backoff (dead letters once
    /// delivered `max_deliveries` times), or an acknowledgement.
    pub(crate) async fn fail(&self, failures: &[FailedDelivery]) -> Result<()> {
        let receipts: Vec<String> = failures.iter().map(|f| f.receipt.clone()).collect();
        let policy = self.options.on_failure;
        if policy == FailurePolicy::Acknowledge {
            return self.ack(&receipts).await;
        }
        let parsed = parse_receipts(&receipts)?;
        self.flush_results().await?;
        let max = i32::try_from(self.options.max_deliveries).unwrap_or(i32::MAX);
        let (mut dead_rows, mut retry_rows) = (Vec::new(), Vec::new());
        let (mut dead_retries, mut again_retries) = (Vec::new(), Vec::new());
        let mut log = Vec::new();
        let mut retries = Vec::new();
        {
            let state = self.lock();
            for (receipt, failure) in parsed.iter().zip(failures) {
                let error = failure.error.replace('\0', "\u{fffd}");
                match *receipt {
                    Receipt::Log { lease, token, row } => {
                        log.push((lease, token, row));
                        let Some(held) = state.leases.get(&lease).filter(|h| h.token == token)
                        else {
                            continue;
                        };
                        let Some(pos) = held.rows.iter().find(|pos| pos.id == row) else {
                            continue;
                        };
                        let failed = FailedRow {
                            lease,
                            token,
                            pos: *pos,
                            error,
                            delay_ms: self.options.retry_delay_ms(held.deliveries),
                        };
                        if policy == FailurePolicy::Redeliver && held.deliveries < max {
                            retry_rows.push(failed);
                        } else {
                            dead_rows.push(failed);
                        }
                    }
                    Receipt::Retry { id, token } => {
                        retries.push((id, token));
                        let deliveries = state
                            .retries
                            .get(&id)
                            .filter(|held| held.token == token)
                            .map_or(max, |held| held.deliveries);
                        let failed = FailedRetry {
                            id,
                            token,
                            error,
                            delay_ms: self.options.retry_delay_ms(deliveries),
                        };
                        if policy == FailurePolicy::Redeliver && deliveries < max {
                            again_retries.push(failed);
                        } else {
                            dead_retries.push(failed);
                        }
                    }
                }
            }
        }
        let mut dead = 0;
        let mut settled_retries = 0;
        if !dead_rows.is_empty() {
            dead += self.backend.fail_leased(&dead_rows, false).await?;
        }
        if !retry_rows.is_empty() {
            self.backend.fail_leased(&retry_rows, true).await?;
            self.retry_due.store(true, Ordering::Release);
        }
        if !dead_retries.is_empty() {
            let moved = self.backend.fail_retries(&dead_retries, false).await?;
            dead += moved;
            settled_retries += moved;
        }
        if !again_retries.is_empty() {
            settled_retries += self.backend.fail_retries(&again_retries, true).await?;
        }
        let moved: Vec<Receipt> = retry_rows
            .iter()
            .map(|r| Receipt::Log {
                lease: r.lease,
                token: r.token,
                row: r.pos.id,
            })
            .chain(again_retries.iter().map(|r| Receipt::Retry {
                id: r.id,
                token: r.token,
            }))
            .collect();
        self.keys_settled(&parsed, &moved);
        self.metrics.dead_lettered.inc_by(dead);
        let mut stale = self.settle_log(&log).await?;
        if !retries.is_empty() {
            let mut state = self.lock();
            for (id, _) in &retries {
                state.retries.remove(id);
            }
            stale += retries
                .len()
                .saturating_sub(usize::try_from(settled_retries).unwrap_or(0));
        }
        self.dedup.remove(&receipts);
        if stale > 0 {
            self.metrics.stale_acks.inc_by(stale as u64);
            return Err(Error::StaleLease { receipts: stale });
        }
        Ok(())
    }

    /// Hands back the deliveries read ahead into the buffer and those the
    /// bus took but did not run, without counting a delivery: their events
    /// become leases of their own, expired at once, that any consumer of the
    /// group claims next (retry-table rows become due at once).
    pub(crate) async fn release(&self, receipts: &[String]) -> Result<()> {
        let mut sources = parse_receipts(receipts)?;
        let taken = sources.clone();
        let mut all: Vec<String> = receipts.to_vec();
        {
            let mut state = self.lock();
            let state = &mut *state;
            for entry in state.buffer.drain(..) {
                sources.push(entry.source);
                all.push(entry.delivery.receipt);
                if let Some(keyed) = entry.order {
                    state.order.unbuffer(&keyed);
                }
            }
            // The events handed back become leases of their own: blockers
            // that a check running now may not have seen.
            state.order.changed();
        }
        let (log, retries) = split_receipts(&sources);
        let mut by_lease: HashMap<(i64, i64), HashSet<i64>> = HashMap::new();
        for &(lease, token, row) in &log {
            by_lease.entry((lease, token)).or_default().insert(row);
        }
        let mut handed = Vec::new();
        for ((lease, token), rows) in by_lease {
            let runs = {
                let state = self.lock();
                let Some(held) = state.leases.get(&lease).filter(|h| h.token == token) else {
                    continue;
                };
                runs_of(&held.rows, |pos| {
                    rows.contains(&pos.id) && held.pending.contains(&pos.id)
                })
            };
            if runs.is_empty() {
                continue;
            }
            if self.backend.hand_back((lease, token), &runs).await? {
                handed.extend(rows.iter().map(|&row| (lease, token, row)));
            }
        }
        let count = handed.len();
        if count > 0 || !retries.is_empty() {
            // Other consumers (in other processes too) claim them next.
            self.wake();
        }
        self.settle_log(&handed).await?;
        if !retries.is_empty() {
            self.backend.release_retries(&retries).await?;
            let mut state = self.lock();
            for (id, _) in &retries {
                state.retries.remove(id);
            }
        }
        self.keys_settled(&taken, &[]);
        self.dedup.remove(&all);
        tracing::debug!(
            events = count,
            retries = retries.len(),
            "handed back undispatched deliveries"
        );
        Ok(())
    }

    /// The group's dead letters, a page at a time (`cursor`: the `next` of
    /// the previous page).
    pub(crate) async fn dead_letters(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<SqlDeadLetter>> {
        let after = cursor
            .map(|c| {
                c.parse::<i64>()
                    .map_err(|_| Error::InvalidCursor(c.to_owned()))
            })
            .transpose()?
            .unwrap_or(0);
        let limit = limit.clamp(1, 10_000);
        let mut rows = self
            .backend
            .dead_letters(&Scan {
                cursor: Some(after),
                limit: limit + 1,
                ..Scan::default()
            })
            .await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = more
            .then(|| rows.last().map(|row| row.id.to_string()))
            .flatten();
        Ok(Page { items: rows, next })
    }

    /// Moves dead letters back to delivery (through the retry table), with
    /// their event ids; returns how many.
    pub(crate) async fn replay_dead_letters(&self, filter: &SqlDeadLetterFilter) -> Result<u64> {
        if let Some(topic) = &filter.topic {
            crate::topic::no_nul("the topic", topic)?;
        }
        if let Some(id) = &filter.event_id {
            crate::topic::no_nul("the event id", id)?;
        }
        let moved = self.backend.replay_dead(filter).await?;
        if moved > 0 {
            self.retries_queued();
        }
        Ok(moved)
    }

    /// Rows were put in the retry table: this consumer looks at it on its
    /// next fill, and consumers are woken.
    pub(crate) fn retries_queued(&self) {
        self.retry_due.store(true, Ordering::Release);
        self.wake();
    }

    /// Events of leases held here that this consumer acknowledged: the
    /// database counts them in the backlog until their lease completes.
    pub(crate) fn acked_in_held_leases(&self) -> u64 {
        self.lock()
            .leases
            .values()
            .map(|held| (held.total - held.pending.len()) as u64)
            .sum()
    }

    /// Events not yet acknowledged: the database's count less what this
    /// consumer acknowledged in leases not yet complete.
    pub(crate) async fn backlog(&self) -> Result<u64> {
        let total = self.backend.backlog().await?;
        let backlog = total.saturating_sub(self.acked_in_held_leases());
        self.metrics
            .queue_length
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        Ok(backlog)
    }

    /// Removes the events every group passed that no lease covers and that
    /// are older than `older_than` (whole partitions on PostgreSQL, then
    /// batches); returns how many.
    pub(crate) async fn prune_consumed(&self, older_than: Duration) -> Result<u64> {
        let ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let mut total = self.backend.prune_partitions(ms).await?;
        loop {
            let deleted = self.backend.prune(ms, PRUNE_BATCH).await?;
            total += deleted;
            if deleted < PRUNE_BATCH as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// The group's backlog, oldest unconsumed age and (PostgreSQL) xmin
    /// lag; sets the gauges.
    pub(crate) async fn stats(&self) -> Result<QueueStats> {
        let backlog = self.backlog().await?;
        let oldest = self
            .backend
            .oldest_unconsumed_ms()
            .await?
            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
        let xmin_lag = self.backend.xmin_lag().await?;
        self.metrics
            .oldest_unconsumed
            .set(oldest.map_or(0.0, |age| age.as_secs_f64()));
        if let Some(lag) = xmin_lag {
            self.metrics.xmin_lag.set(lag);
        }
        Ok(QueueStats {
            backlog,
            oldest_unconsumed_age: oldest,
            xmin_lag: xmin_lag.map(|lag| u64::try_from(lag).unwrap_or(0)),
        })
    }

    pub(crate) async fn events(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<StoredEvent>> {
        let after = cursor.map(parse_pos).transpose()?;
        let limit = limit.clamp(1, 10_000);
        let mut rows = self.backend.events_page(after, limit + 1).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = more
            .then(|| rows.last().map(|row| format_pos(row.pos)))
            .flatten();
        // A row that is not an event is shown lossily rather than failing
        // the page (it is dead-lettered when delivered).
        let items = rows.iter().map(RawEvent::parse_lossy).collect();
        Ok(Page { items, next })
    }

    pub(crate) async fn results(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<StoredResult>> {
        self.flush_results().await?;
        let after = cursor
            .map(|c| {
                c.parse::<i64>()
                    .map_err(|_| Error::InvalidCursor(c.to_owned()))
            })
            .transpose()?;
        let limit = limit.clamp(1, 10_000);
        let mut rows = self.backend.results_page(after, limit + 1).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = more
            .then(|| rows.last().map(|(id, _)| id.to_string()))
            .flatten();
        Ok(Page {
            items: rows.into_iter().map(|(_, result)| result).collect(),
            next,
        })
    }

    fn start_heartbeat(self: &Arc<Self>) {
        if self.heartbeat.load(Ordering::Relaxed) || self.heartbeat.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(heartbeat(Arc::downgrade(self)));
        tokio::spawn(maintenance(Arc::downgrade(self)));
    }

    /// Extends the leases and retry rows this consumer holds while their
    /// events wait in the buffer or their listeners run, until each
    /// delivery is settled or has been out for `max_handler_time` (a stuck
    /// or abandoned delivery then goes to another consumer); forgets those
    /// that were taken over.
    async fn extend_leases(&self) {
        let horizon = self.options.max_handler_time;
        let now = Instant::now();
        let fresh = |since: &Instant| now.duration_since(*since) < horizon;
        let (leases, retries): (Pairs, Pairs) = {
            let state = self.lock();
            (
                state
                    .leases
                    .iter()
                    .filter(|(_, held)| held.out_since.as_ref().is_none_or(fresh))
                    .map(|(id, held)| (*id, held.token))
                    .collect(),
                state
                    .retries
                    .iter()
                    .filter(|(_, held)| held.out.as_ref().is_none_or(fresh))
                    .map(|(id, held)| (*id, held.token))
                    .collect(),
            )
        };
        if !leases.is_empty() {
            match self.backend.extend(&leases).await {
                Ok(extended) => {
                    let extended: HashSet<i64> = extended.into_iter().collect();
                    for (lease, token) in leases {
                        if !extended.contains(&lease) {
                            tracing::warn!(
                                lease,
                                token,
                                "a lease expired and was taken over; its events will be handled elsewhere"
                            );
                            self.forget_lease(lease);
                        }
                    }
                }
                Err(err) => tracing::warn!(%err, "cannot extend leases"),
            }
        }
        if !retries.is_empty() {
            match self.backend.extend_retries(&retries).await {
                Ok(extended) => {
                    let extended: HashSet<i64> = extended.into_iter().collect();
                    for (id, _) in retries {
                        if !extended.contains(&id) {
                            self.forget_retry(id);
                        }
                    }
                }
                Err(err) => tracing::warn!(%err, "cannot extend retries"),
            }
        }
    }
}

/// A dequeue running, for [`Core::consuming`].
struct Dequeuing<'a, B: Backend>(&'a Core<B>);

impl<'a, B: Backend> Dequeuing<'a, B> {
    fn start(core: &'a Core<B>) -> Self {
        core.dequeuing.fetch_add(1, Ordering::AcqRel);
        *lock_instant(&core.last_dequeue) = Instant::now();
        Self(core)
    }
}

impl<B: Backend> Drop for Dequeuing<'_, B> {
    fn drop(&mut self) {
        *lock_instant(&self.0.last_dequeue) = Instant::now();
        self.0.dequeuing.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock_instant(instant: &Mutex<Instant>) -> MutexGuard<'_, Instant> {
    instant
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<B: Backend> Core<B> {
    /// Whether this store consumes: a dequeue runs, or one ran within a
    /// lease timeout (a bus asks again every poll wait).
    fn consuming(&self) -> bool {
        self.dequeuing.load(Ordering::Acquire) > 0
            || lock_instant(&self.last_dequeue).elapsed() < self.options.lease_timeout
    }
}

/// Every third of the lease timeout, while the store lives: records this
/// consumer as live for a lease timeout while it consumes (so that
/// inspection lists it whether or not it holds a lease, and stops listing
/// it a lease timeout after it stopped), and extends its held leases.
async fn heartbeat<B: Backend>(core: Weak<Core<B>>) {
    loop {
        let Some(strong) = core.upgrade() else { return };
        let period = strong.options.lease_timeout / 3;
        if strong.consuming()
            && let Err(err) = strong.backend.beat(strong.options.lease_ms()).await
        {
            tracing::debug!(%err, "cannot record this consumer's heartbeat");
        }
        drop(strong);
        tokio::time::sleep(period).await;
        let Some(core) = core.upgrade() else { return };
        core.extend_leases().await;
    }
}

/// Refreshes the gauges and applies retention, while the store lives.
async fn maintenance<B: Backend>(core: Weak<Core<B>>) {
    loop {
        let Some(period) = core.upgrade().map(|core| {
            core.options
                .retention
                .map_or(Duration::from_secs(15), |window| {
                    (window / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
                })
        }) else {
            return;
        };
        tokio::time::sleep(period).await;
        let Some(core) = core.upgrade() else { return };
        if let Err(err) = core.stats().await {
            tracing::debug!(%err, "cannot refresh the queue gauges");
        }
        if let Some(window) = core.options.retention {
            match core.prune_consumed(window).await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "retention deleted consumed events"),
                Err(err) => tracing::warn!(%err, "retention failed; retrying later"),
            }
        }
    }
}

/// Tells other processes that events arrived, at most once per `interval`.
async fn notifier<B: Backend>(core: Weak<Core<B>>, poke: Arc<Notify>, interval: Duration) {
    loop {
        if tokio::time::timeout(Duration::from_secs(1), poke.notified())
            .await
            .is_err()
        {
            if core.strong_count() == 0 {
                return;
            }
            continue;
        }
        let Some(strong) = core.upgrade() else { return };
        if let Err(err) = strong.backend.notify_others().await {
            tracing::debug!(%err, "cannot notify other processes");
        }
        drop(strong);
        tokio::time::sleep(interval).await;
    }
}

/// Drops the buffered entries of a lease or retry row this consumer lost;
/// with `ordered_by_key`, the later entries of their keys (and of their
/// deliveries still out) wait for a new check, since the lost events are
/// now another consumer's.
fn forget_entries(state: &mut ConsumerState, gone: impl Fn(&Receipt) -> bool) {
    let mut lost = Vec::new();
    state.buffer.retain_mut(|entry| {
        if !gone(&entry.source) {
            return true;
        }
        lost.extend(entry.order.take());
        false
    });
    for keyed in &lost {
        state.order.unbuffer(keyed);
    }
    let mut lost: Vec<_> = lost
        .into_iter()
        .map(|keyed| (keyed.key, keyed.pos))
        .collect();
    lost.extend(state.order.drop_out(&gone));
    for (key, pos) in lost {
        state.hold_back(&key, pos);
    }
}

/// `(id, token)` of the leases and retry rows this consumer holds.
fn own_pairs(state: &ConsumerState) -> (Pairs, Pairs) {
    (
        state
            .leases
            .iter()
            .map(|(id, held)| (*id, held.token))
            .collect(),
        state
            .retries
            .iter()
            .map(|(id, held)| (*id, held.token))
            .collect(),
    )
}

/// Counts a buffered delivery as handed out; false when its lease or retry
/// row is no longer held (or the event is already settled).
fn mark_out(state: &mut ConsumerState, source: Receipt, now: Instant) -> bool {
    match source {
        Receipt::Log { lease, token, row } => match state.leases.get_mut(&lease) {
            Some(held) if held.token == token && held.pending.contains(&row) => {
                if held.out_count == 0 {
                    held.out_since = Some(now);
                }
                held.out_count += 1;
                true
            }
            _ => false,
        },
        Receipt::Retry { id, token } => match state.retries.get_mut(&id) {
            Some(held) if held.token == token => {
                held.out = Some(now);
                true
            }
            _ => false,
        },
    }
}

/// `take_buffered` with `ordered_by_key`: scans the buffer in order, hands
/// out what is ready and keeps the entries held back in place, in order.
fn take_in_key_order(state: &mut ConsumerState, max: usize, now: Instant, out: &mut Vec<Delivery>) {
    let mut kept = VecDeque::new();
    while let Some(mut entry) = state.buffer.pop_front() {
        if out.len() >= max {
            kept.push_back(entry);
            break;
        }
        if entry
            .order
            .as_ref()
            .is_some_and(|keyed| !state.order.ready(keyed))
        {
            kept.push_back(entry);
            continue;
        }
        let live = mark_out(state, entry.source, now);
        if let Some(keyed) = entry.order.take() {
            if live {
                state.order.hand_out(entry.source, keyed);
            } else {
                state.order.unbuffer(&keyed);
            }
        }
        if live {
            out.push(entry.delivery);
        }
    }
    kept.append(&mut state.buffer);
    state.buffer = kept;
}

/// Whether `take_buffered` would hand out (or drop) something.
fn any_ready(state: &ConsumerState) -> bool {
    state.buffer.iter().any(|entry| {
        entry
            .order
            .as_ref()
            .is_none_or(|keyed| state.order.ready(keyed))
    })
}

/// Remembers a completed lease (or retry row, as `(-id, token)`), so that
/// a repeated acknowledgement is not taken for a stale one.
fn remember(state: &mut ConsumerState, key: (i64, i64)) {
    if state.completed_set.insert(key) {
        state.completed.push_back(key);
    }
    if state.completed.len() > REMEMBERED_COMPLETIONS
        && let Some(old) = state.completed.pop_front()
    {
        state.completed_set.remove(&old);
    }
}

/// Maximal runs of consecutive rows (in log order) that `take` selects.
fn runs_of(rows: &[Pos], take: impl Fn(&Pos) -> bool) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut open = false;
    for pos in rows {
        if !take(pos) {
            open = false;
            continue;
        }
        match runs.last_mut() {
            Some(run) if open => {
                run.hi = *pos;
                run.events += 1;
            }
            _ => {
                runs.push(Run {
                    lo: *pos,
                    hi: *pos,
                    events: 1,
                });
                open = true;
            }
        }
    }
    runs
}

/// `<lease>:<token>:<row>`.
fn log_receipt(lease: i64, token: i64, pos: Pos) -> String {
    format!("{lease}:{token}:{}", pos.id)
}

/// `r<id>:<token>`.
fn retry_receipt(id: i64, token: i64) -> String {
    format!("r{id}:{token}")
}

fn parse_receipt(receipt: &str) -> Option<Receipt> {
    if let Some(rest) = receipt.strip_prefix('r') {
        let (id, token) = rest.split_once(':')?;
        return Some(Receipt::Retry {
            id: id.parse().ok()?,
            token: token.parse().ok()?,
        });
    }
    let mut parts = receipt.split(':');
    let lease = parts.next()?.parse().ok()?;
    let token = parts.next()?.parse().ok()?;
    let row = parts.next()?.parse().ok()?;
    parts
        .next()
        .is_none()
        .then_some(Receipt::Log { lease, token, row })
}

fn parse_receipts(receipts: &[String]) -> Result<Vec<Receipt>> {
    receipts
        .iter()
        .map(|r| parse_receipt(r).ok_or_else(|| Error::InvalidReceipt(r.clone())))
        .collect()
}

/// `(lease, token, row)` of the log's receipts, `(id, token)` of the retries'.
fn split_receipts(parsed: &[Receipt]) -> (Vec<(i64, i64, i64)>, Pairs) {
    let mut log = Vec::new();
    let mut retries = Vec::new();
    for receipt in parsed {
        match *receipt {
            Receipt::Log { lease, token, row } => log.push((lease, token, row)),
            Receipt::Retry { id, token } => retries.push((id, token)),
        }
    }
    (log, retries)
}

fn format_pos(pos: Pos) -> String {
    format!("{}.{}", pos.tx, pos.id)
}

fn parse_pos(cursor: &str) -> Result<Pos> {
    let invalid = || Error::InvalidCursor(cursor.to_owned());
    let (tx, id) = cursor.split_once('.').ok_or_else(invalid)?;
    Ok(Pos {
        tx: tx.parse().map_err(|_| invalid())?,
        id: id.parse().map_err(|_| invalid())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_and_cursors_round_trip_and_reject_garbage() {
        let pos = Pos { tx: 7, id: 42 };
        assert_eq!(
            parse_receipt(&log_receipt(1, 2, pos)),
            Some(Receipt::Log {
                lease: 1,
                token: 2,
                row: 42
            })
        );
        assert_eq!(
            parse_receipt(&retry_receipt(3, 4)),
            Some(Receipt::Retry { id: 3, token: 4 })
        );
        for bad in ["", "1:2", "1:2:3:4", "a:b:c", "1-2-3", "r1", "r1:x", "rx:1"] {
            assert_eq!(parse_receipt(bad), None, "{bad:?}");
        }
        assert_eq!(parse_pos(&format_pos(pos)).unwrap(), pos);
        let rows: Vec<Pos> = (1..=6).map(|id| Pos { tx: 0, id }).collect();
        let runs = runs_of(&rows, |pos| pos.id != 3);
        assert_eq!(
            runs.iter()
                .map(|r| (r.lo.id, r.hi.id, r.events))
                .collect::<Vec<_>>(),
            [(1, 2, 2), (4, 6, 3)]
        );
        for bad in ["", "1", "x.1", "1.y", "1.2.3"] {
            assert!(
                matches!(parse_pos(bad), Err(Error::InvalidCursor(_))),
                "{bad:?}"
            );
        }
    }
}
