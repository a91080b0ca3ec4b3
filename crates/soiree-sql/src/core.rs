//! The state a store shares between its handles: the backend, options and
//! metrics, the batching writers, the dedup cache, and the consumer's
//! parts, each owning its state and lock (see `crate::consumer`), with the
//! background services in `crate::maintenance`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use soiree::kit::{BatchWriter, DedupCache, GivenUp, ResultWriter};
use soiree::{StoredEvent, StoredResult};
use tokio::sync::Notify;

use crate::backend::{Backend, NewEvent};
use crate::consumer::{Buffer, ClaimState, Completions, Leases, Retries};
use crate::maintenance::heartbeat::{Liveness, heartbeat};
use crate::maintenance::notifier::notifier;
use crate::maintenance::retention::retention;
use crate::metrics::SqlMetrics;
use crate::options::Options;
use crate::{Error, QueueStats, Result};

/// The longest a batch of results failing for a transient reason is
/// retried before its items are given up (their deliveries are then not
/// acknowledged); a third of the lease timeout when that is shorter, so
/// that the acknowledgement waiting for them comes while the lease holds.
const TRANSIENT_RETRY_WINDOW: Duration = Duration::from_secs(60);
/// How long an acknowledgement (or a read) waits for earlier results beyond
/// twice the retry window (the window, then the pass that finds which
/// items still fail) before it fails whole.
const FLUSH_MARGIN: Duration = Duration::from_secs(5);
/// How many times a count is read while leases complete under it (see
/// [`Core::read_less_acked`]).
const READ_ATTEMPTS: u32 = 5;

/// The shared state of a store: cheap to reach through an `Arc`.
pub(crate) struct Core<B: Backend> {
    pub(crate) backend: Arc<B>,
    pub(crate) options: Options,
    pub(crate) metrics: SqlMetrics,
    /// Wakes this process's waiting consumers.
    pub(crate) arrived: Notify,
    /// Wakes this process's consumers waiting for events committed behind
    /// an open transaction when its settling writes end: theirs may have
    /// been that transaction.
    pub(crate) settled: Notify,
    /// Wakes the task that tells other processes (throttled).
    poke: Option<Arc<Notify>>,
    pub(crate) buffer: Buffer,
    pub(crate) leases: Leases,
    pub(crate) retries: Retries,
    pub(crate) completions: Completions,
    pub(crate) claiming: tokio::sync::Mutex<ClaimState>,
    appender: BatchWriter<NewEvent, Error>,
    recorder: ResultWriter<StoredResult, Error>,
    /// How long a flush of the results waits (see [`FLUSH_MARGIN`]).
    flush_limit: Duration,
    pub(crate) dedup: Arc<DedupCache>,
    /// Set once the background services run (at the first dequeue).
    maintenance: AtomicBool,
    pub(crate) liveness: Liveness,
    /// Set when rows were put in the retry table: look at it on the next fill.
    pub(crate) retry_due: AtomicBool,
    /// The earliest due time (Unix ms) of the delayed events, as last read
    /// from the table or scheduled by this handle since (`i64::MAX`: none
    /// known): consumers wake for it rather than at their next poll.
    pub(crate) next_due_ms: AtomicI64,
    /// Where a test holds a count read in `read_less_acked`.
    #[cfg(test)]
    pub(crate) after_count: tests::Pause,
}

impl<B: Backend> std::fmt::Debug for Core<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("group", &self.options.group)
            .field("consumer", &self.options.consumer_name())
            .finish_non_exhaustive()
    }
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
            BatchWriter::spawn(move |events: Arc<[NewEvent]>| {
                let backend = Arc::clone(&backend);
                async move { backend.append(&events).await }
            })
        };
        let dedup = Arc::new(DedupCache::default());
        let window = TRANSIENT_RETRY_WINDOW.min(options.lease_timeout / 3);
        let recorder = {
            let backend = Arc::clone(&backend);
            let refused = metrics.results_refused.clone();
            let dedup = Arc::clone(&dedup);
            ResultWriter::spawn(
                move |results: Arc<[StoredResult]>| {
                    let backend = Arc::clone(&backend);
                    async move { backend.save_results(&results).await }
                },
                move |result: &StoredResult, err: &Error, why| match why {
                    GivenUp::Refused => {
                        refused.inc();
                        tracing::error!(
                            %err, item = ?result,
                            "the database refuses this result for good; it is not saved"
                        );
                    }
                    // Logged by the writer; the delivery is held back.
                    _ => {
                        dedup.results_lost(&result.event_id);
                    }
                },
                window,
            )
        };
        let poke = notify_interval.map(|_| Arc::new(Notify::new()));
        let core = Arc::new(Self {
            backend,
            options,
            metrics,
            arrived: Notify::new(),
            settled: Notify::new(),
            poke: poke.clone(),
            buffer: Buffer::default(),
            leases: Leases::default(),
            retries: Retries::default(),
            completions: Completions::default(),
            claiming: tokio::sync::Mutex::default(),
            appender,
            recorder,
            flush_limit: 2 * window + FLUSH_MARGIN,
            dedup,
            maintenance: AtomicBool::new(false),
            liveness: Liveness::default(),
            retry_due: AtomicBool::new(false),
            next_due_ms: AtomicI64::new(i64::MAX),
            #[cfg(test)]
            after_count: tests::Pause::default(),
        });
        if let (Some(poke), Some(interval)) = (poke, notify_interval) {
            tokio::spawn(notifier(Arc::downgrade(&core), poke, interval));
        }
        core
    }

    /// Starts the heartbeat and retention once, when this store first
    /// consumes.
    pub(crate) fn start_maintenance(self: &Arc<Self>) {
        if self.maintenance.load(Ordering::Relaxed) || self.maintenance.swap(true, Ordering::AcqRel)
        {
            return;
        }
        tokio::spawn(heartbeat(Arc::downgrade(self)));
        tokio::spawn(retention(Arc::downgrade(self)));
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
        // The one branch of events without a due time.
        if event.properties.contains_key(soiree::PROPERTY_DUE_AT)
            && self.append_delayed(event).await?
        {
            return Ok(());
        }
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
        Ok(self.recorder.flush(self.flush_limit).await?)
    }

    pub(crate) async fn handler_succeeded(&self, event_id: &str, handler_id: &str) -> Result<bool> {
        if let Some(answer) = self.dedup.succeeded(event_id, handler_id) {
            return Ok(answer);
        }
        self.flush_results().await?;
        let done = self.backend.succeeded(&[event_id.to_owned()]).await?;
        Ok(done.iter().any(|(_, handler)| handler == handler_id))
    }

    /// Rows were put in the retry table: this consumer looks at it on its
    /// next fill, and consumers are woken.
    pub(crate) fn retries_queued(&self) {
        self.retry_due.store(true, Ordering::Release);
        self.wake();
    }

    /// Reads counts from the database with the events of leases held here
    /// that this consumer acknowledged, which the database counts as
    /// unacknowledged until their lease completes: returns the counts and
    /// how many to take off them.
    ///
    /// The acknowledged events are taken before the counts are read and
    /// checked after: when a lease completed in between, the database may
    /// or may not have counted it, and the counts are read again (at most
    /// [`READ_ATTEMPTS`] times; the last answer can only read too much).
    pub(crate) async fn read_less_acked<T, F>(&self, read: impl Fn() -> F) -> Result<(T, u64)>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            let before = self.leases.acked_view();
            let counts = read().await?;
            #[cfg(test)]
            self.after_count.reached().await;
            let (acked, exact) = self.leases.acked_since(&before);
            if exact || attempt == READ_ATTEMPTS {
                return Ok((counts, acked));
            }
            attempt += 1;
        }
    }

    /// Events not yet acknowledged: the database's count less what this
    /// consumer acknowledged in leases not yet complete.
    pub(crate) async fn backlog(&self) -> Result<u64> {
        let (total, acked) = self.read_less_acked(|| self.backend.backlog()).await?;
        let backlog = total.saturating_sub(acked);
        self.metrics
            .queue_length
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        Ok(backlog)
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
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use tokio::sync::oneshot;

    /// Holds the next count read in `Core::read_less_acked`, once armed,
    /// until the test lets it go.
    #[derive(Debug, Default)]
    pub(crate) struct Pause(Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>);

    impl Pause {
        /// Arms the pause: the first receiver fires when a count was read,
        /// which then waits for the sender.
        fn arm(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
            let (reached, on_reached) = oneshot::channel();
            let (resume, on_resume) = oneshot::channel();
            *self.0.lock().unwrap() = Some((reached, on_resume));
            (on_reached, resume)
        }

        pub(crate) async fn reached(&self) {
            let armed = self.0.lock().unwrap().take();
            if let Some((reached, resume)) = armed {
                let _ = reached.send(());
                let _ = resume.await;
            }
        }
    }

    /// A lease that completes (deleted in the database, then dropped here)
    /// after the database's count was read and before what this consumer
    /// acknowledged is taken off it: its acknowledged event is not backlog.
    /// Reading the acknowledged events after the count, as the store once
    /// did, read 1 here.
    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn a_lease_completed_while_the_backlog_is_read_is_not_counted() {
        use std::time::Duration;

        use soiree::{EventQueue, EventStore};

        const LIMIT: Duration = Duration::from_secs(10);
        let dir = std::env::temp_dir().join(format!("soiree-backlog-{}", ulid::Ulid::generate()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = crate::SqliteStore::open(dir.join("queue.db"))
            .await
            .unwrap();
        let event =
            soiree::StoredEvent::from_event(&soiree::Event::new("backlog.read", 1)).unwrap();
        store.save_event(&event).await.unwrap();
        let deliveries = store.dequeue(1, LIMIT).await.unwrap();
        assert_eq!(deliveries.len(), 1);
        assert_eq!(store.backlog().await.unwrap(), 1);

        let (on_count, resume) = store.core.after_count.arm();
        let reading = tokio::spawn({
            let store = store.clone();
            async move { store.backlog().await }
        });
        tokio::time::timeout(LIMIT, on_count)
            .await
            .unwrap()
            .unwrap();
        store.ack(&[deliveries[0].receipt.clone()]).await.unwrap();
        resume.send(()).unwrap();
        let backlog = tokio::time::timeout(LIMIT, reading)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            backlog, 0,
            "a lease completed while the backlog was read is counted"
        );
        assert_eq!(store.backlog().await.unwrap(), 0);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
