//! The handle side of a pool: a bounded queue of jobs, its counters, and the
//! wake-ups between submitters and workers.
//!
//! Built from a lock-free bounded queue (crossbeam's `ArrayQueue`) and tokio's
//! `Notify`: a worker registers for a wake-up before it looks at the queue a
//! last time, so a job pushed in between is either seen or wakes it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use std::panic::AssertUnwindSafe;

use crossbeam_queue::ArrayQueue;
use futures::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::idle::{IdleCounts, Slot};
use super::options::validate_workers;
use super::worker;
use crate::metrics::{PoolLabel, PoolMetrics};
use crate::{Error, PoolOptions, Result};

/// Runs the pool's jobs: the part of a pool that knows what a job is.
pub(crate) trait Handler<J>: Send + Sync + 'static {
    /// Takes a popped job to run it; false when another task took it over
    /// (and counts it started and finished itself): the worker drops it
    /// uncounted.
    fn claim(&self, job: &J) -> bool {
        let _ = job;
        true
    }

    /// Runs one claimed job.
    fn run(&self, job: J) -> impl Future<Output = ()> + Send;
}

/// Why a job was not queued.
#[derive(Debug)]
pub(crate) enum Rejected {
    Full,
    Closed,
    NoRuntime,
}

impl Rejected {
    pub(crate) fn into_error(self) -> Error {
        match self {
            Self::Full => Error::QueueFull,
            Self::Closed => Error::Closed,
            Self::NoRuntime => Error::NoRuntime,
        }
    }
}

pub(crate) struct Queued<J> {
    pub(crate) job: J,
    pub(crate) slot: Slot,
}

/// The pool's shared state.
pub(crate) struct WorkQueue<J> {
    items: ArrayQueue<Queued<J>>,
    /// Wakes a parked worker.
    work: Notify,
    /// Wakes submitters waiting for room.
    room: Notify,
    /// Workers wanted, and worker tasks alive.
    target: AtomicUsize,
    pub(crate) alive: AtomicUsize,
    closed: AtomicBool,
    pub(crate) counts: IdleCounts,
    /// Callers inside `wait_for_idle`, and the lock that orders their epochs.
    idle_waiters: AtomicUsize,
    idle: Notify,
    epochs: tokio::sync::Mutex<()>,
    pub(crate) metrics: PoolMetrics,
    name: String,
    /// The `pool` label of its metrics: the name, unless another live pool
    /// of the registry has it.
    label: PoolLabel,
}

impl<J> std::fmt::Debug for WorkQueue<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("workers", &self.target.load(Ordering::Relaxed))
            .field("alive", &self.alive.load(Ordering::Relaxed))
            .field("queued", &self.items.len())
            .field("pending", &self.counts.pending())
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

tokio::task_local! {
    /// The job the current task runs: its pool, its slot and whether
    /// `wait_for_idle` already counted it finished.
    static CURRENT_JOB: JobScope;
}

pub(crate) struct JobScope {
    pool: usize,
    flags: Arc<JobFlags>,
}

/// What a task that runs jobs shares with its scope: the slot of the job it
/// runs now, and whether `wait_for_idle` already counted that job finished.
/// Written and read by that task alone (one at a time, whichever thread it
/// is polled on).
#[derive(Debug, Default)]
pub(crate) struct JobFlags {
    slot: AtomicU8,
    released: AtomicBool,
}

/// Counts a job finished when its run ends, however it ends.
struct FinishGuard<'a, J: Send + 'static> {
    queue: &'a WorkQueue<J>,
    slot: Slot,
    released: &'a AtomicBool,
}

impl<J: Send + 'static> Drop for FinishGuard<'_, J> {
    fn drop(&mut self) {
        let released = self.released.swap(false, Ordering::SeqCst);
        if !released {
            self.queue.finish(self.slot);
        }
    }
}

/// Reports whether the calling task runs a job of any pool: such a task must
/// not wait for a worker (there may be none left), so it runs work itself.
pub(crate) fn inside_job() -> bool {
    CURRENT_JOB.try_with(|_| ()).is_ok()
}

impl<J: Send + 'static> WorkQueue<J> {
    /// Builds a pool's queue from options that were validated.
    pub(crate) fn new(options: &PoolOptions) -> Arc<Self> {
        let registry = options.metrics_registry();
        let label = registry.claim_pool_label(&options.name);
        Arc::new(Self {
            items: ArrayQueue::new(options.queue_capacity),
            work: Notify::new(),
            room: Notify::new(),
            target: AtomicUsize::new(options.workers),
            alive: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            counts: IdleCounts::default(),
            idle_waiters: AtomicUsize::new(0),
            idle: Notify::new(),
            epochs: tokio::sync::Mutex::new(()),
            metrics: PoolMetrics::new(&registry, label.as_str()),
            name: options.name.clone(),
            label,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The `pool` label of the pool's metrics.
    pub(crate) fn label(&self) -> &str {
        self.label.as_str()
    }

    pub(crate) fn workers(&self) -> usize {
        self.target.load(Ordering::Relaxed)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.items.capacity()
    }

    /// Jobs queued, not yet taken by a worker.
    pub(crate) fn queued(&self) -> usize {
        self.items.len()
    }

    /// Jobs submitted and not yet finished.
    pub(crate) fn pending(&self) -> usize {
        usize::try_from(self.counts.pending()).unwrap_or(usize::MAX)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Stops accepting jobs; queued and running ones still finish, then the
    /// workers exit. Returns false when it was closed already.
    pub(crate) fn close(&self) -> bool {
        let first = !self.closed.swap(true, Ordering::SeqCst);
        self.work.notify_waiters();
        self.room.notify_waiters();
        first
    }

    /// Counts a new job as submitted, before it is queued (or run inline):
    /// from here on `wait_for_idle` waits for it. Every slot entered is
    /// given back by [`finish`](Self::finish) or [`cancel`](Self::cancel).
    pub(crate) fn enter(&self) -> Slot {
        self.counts.enter()
    }

    /// Counts a continuation of a running job of `slot` as submitted, in
    /// that job's slot: `wait_for_idle` calls that wait for the job wait
    /// for it too. Called before the running job finishes.
    pub(crate) fn enter_in(&self, slot: Slot) {
        self.counts.enter_in(slot);
    }

    /// Queues a job without waiting: [`Rejected::Full`] when there is no room.
    /// `handler` makes the handler of a worker that has to be started. A
    /// rejected job's slot is still entered: the caller cancels it.
    pub(crate) fn try_push<H: Handler<J>>(
        self: &Arc<Self>,
        queued: Queued<J>,
        handler: impl FnOnce() -> H,
    ) -> Result<(), (Rejected, Queued<J>)> {
        if self.is_closed() {
            return Err((Rejected::Closed, queued));
        }
        // The runtime is looked up only when a worker may have to start:
        // `Handle::try_current` clones a handle every thread shares.
        let alive = self.alive.load(Ordering::SeqCst);
        let runtime = if alive < self.target.load(Ordering::Acquire) {
            Handle::try_current().ok()
        } else {
            None
        };
        if alive == 0 && runtime.is_none() {
            // Nobody could ever run it: refuse rather than queue it for good.
            return Err((Rejected::NoRuntime, queued));
        }
        if let Err(queued) = self.items.push(queued) {
            return Err((Rejected::Full, queued));
        }
        self.metrics.submitted.inc();
        self.work.notify_one();
        if let Some(runtime) = runtime {
            self.grow(&runtime, handler);
        }
        Ok(())
    }

    /// Queues a job, waiting for room.
    ///
    /// # Cancel safety
    ///
    /// Cancelling drops the job unqueued (its slot stays entered).
    pub(crate) async fn push<H: Handler<J>>(
        self: &Arc<Self>,
        queued: Queued<J>,
        handler: impl Fn() -> H,
    ) -> Result<(), (Rejected, Queued<J>)> {
        // The common case first: room, and no wake-up registered.
        let mut queued = match self.try_push(queued, &handler) {
            Err((Rejected::Full, back)) => back,
            other => return other,
        };
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_push(queued, &handler) {
                Err((Rejected::Full, back)) => queued = back,
                other => return other,
            }
            room.await;
        }
    }

    /// Counts a job that runs outside the queue (inline, by its caller) as
    /// started, and as submitted unless `queued`: pushed (and counted
    /// submitted) first, then taken over; the worker that pops it drops it
    /// uncounted ([`Handler::claim`]).
    pub(crate) fn count_inline(&self, queued: bool) {
        if !queued {
            self.metrics.submitted.inc();
        }
        self.metrics.started.inc();
    }

    /// Counts a job of `slot` finished, by whoever ran it.
    pub(crate) fn finish(&self, slot: Slot) {
        self.metrics.completed.inc();
        self.counts.finish(slot);
        self.notify_idle();
    }

    /// Gives back the slot of a job that was never queued, counting a
    /// refusal for a full queue.
    pub(crate) fn cancel(&self, slot: Slot, rejected: Option<&Rejected>) {
        if matches!(rejected, Some(Rejected::Full)) {
            self.metrics.rejected.inc();
        }
        self.counts.finish(slot);
        self.notify_idle();
    }

    fn notify_idle(&self) {
        if self.idle_waiters.load(Ordering::SeqCst) > 0 {
            self.idle.notify_waiters();
        }
    }

    /// Takes the next job, telling submitters waiting for room. Always
    /// told (a stored permit when nobody waits): checking for waiters first
    /// would need a fence pairing with theirs to be sound.
    pub(crate) fn pop(&self) -> Option<Queued<J>> {
        let queued = self.items.pop()?;
        self.room.notify_one();
        Some(queued)
    }

    /// Registers for a wake-up, then looks once more: a job pushed after the
    /// look wakes the worker. `None` once the pool is closed and empty.
    pub(crate) async fn next(&self) -> Option<Queued<J>> {
        loop {
            let work = self.work.notified();
            tokio::pin!(work);
            work.as_mut().enable();
            if let Some(queued) = self.pop() {
                return Some(queued);
            }
            if self.is_closed() {
                return None;
            }
            work.await;
        }
    }

    /// Starts workers up to the target while jobs wait.
    fn grow<H: Handler<J>>(self: &Arc<Self>, runtime: &Handle, handler: impl FnOnce() -> H) {
        let target = self.target.load(Ordering::Acquire);
        let claimed = self
            .alive
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |alive| {
                (alive < target).then_some(alive + 1)
            })
            .is_ok();
        if claimed {
            worker::spawn(runtime, Arc::clone(self), handler());
        }
    }

    /// Gives up a worker's place when the pool has more workers than wanted.
    pub(crate) fn retire_if_over(&self) -> bool {
        let target = self.target.load(Ordering::Acquire);
        self.alive.load(Ordering::Relaxed) > target
            && self
                .alive
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |alive| {
                    (alive > target).then_some(alive - 1)
                })
                .is_ok()
    }

    /// Changes the number of workers: more start at once (on the caller's
    /// runtime) while jobs wait; extra ones exit after their current job.
    pub(crate) fn resize<H: Handler<J>>(
        self: &Arc<Self>,
        workers: usize,
        handler: impl Fn() -> H,
    ) -> Result<()> {
        validate_workers(workers)?;
        self.target.store(workers, Ordering::Release);
        // Wake parked workers so that surplus ones see the new target.
        self.work.notify_waiters();
        if let Ok(runtime) = Handle::try_current() {
            for _ in 0..workers.min(self.items.len()) {
                self.grow(&runtime, &handler);
            }
        }
        Ok(())
    }

    /// Runs one job in a scope that marks the task as inside it, and counts
    /// it finished when it ends, panics or is dropped unfinished (a runtime
    /// shutting down) — unless `wait_for_idle` counted it already. `flags`
    /// are the runner's, reset here.
    pub(crate) async fn run_job<F>(&self, slot: Slot, flags: &Arc<JobFlags>, job: F)
    where
        F: Future<Output = ()>,
    {
        self.scoped(flags, self.run_scoped(slot, flags, job)).await
    }

    /// Runs `work` in a scope of this pool that shares `flags`: a task that
    /// runs jobs in it is inside them. A worker runs all its jobs in one,
    /// made when it starts, so that a job costs no scope of its own (see
    /// [`run_scoped`](Self::run_scoped)); between jobs it runs no user code.
    pub(crate) async fn scoped<F: Future>(&self, flags: &Arc<JobFlags>, work: F) -> F::Output {
        let scope = JobScope {
            pool: self.address(),
            flags: Arc::clone(flags),
        };
        CURRENT_JOB.scope(scope, work).await
    }

    /// [`run_job`](Self::run_job) for a task already running `scoped` with
    /// `flags`: the job's slot is noted there.
    pub(crate) async fn run_scoped<F>(&self, slot: Slot, flags: &JobFlags, job: F)
    where
        F: Future<Output = ()>,
    {
        flags.slot.store(slot.to_bits(), Ordering::Relaxed);
        let _guard = FinishGuard {
            queue: self,
            slot,
            released: &flags.released,
        };
        if AssertUnwindSafe(job).catch_unwind().await.is_err() {
            self.metrics.panicked.inc();
        }
    }

    fn address(&self) -> usize {
        std::ptr::from_ref(self).cast::<()>() as usize
    }

    /// Reports whether the calling task runs one of this pool's jobs.
    pub(crate) fn caller_is_inside(&self) -> bool {
        CURRENT_JOB
            .try_with(|scope| scope.pool == self.address())
            .unwrap_or(false)
    }

    /// Waits until every job submitted before the call has finished. From
    /// inside one of this pool's jobs, that job first counts itself finished:
    /// it cannot wait for itself.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only observes the pool (a job that released itself
    /// stays released).
    pub(crate) async fn wait_for_idle(&self) {
        self.idle_waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Counted(&self.idle_waiters);
        let own = CURRENT_JOB
            .try_with(|scope| {
                let flags = &scope.flags;
                (scope.pool == self.address() && !flags.released.swap(true, Ordering::SeqCst))
                    .then(|| Slot::from_bits(flags.slot.load(Ordering::Relaxed)))
            })
            .ok()
            .flatten();
        if let Some(slot) = own {
            self.finish(slot);
        }
        // One waiter moves the epoch at a time, so that nobody reuses a slot
        // another waiter still waits on.
        let _epoch = self.epochs.lock().await;
        let current = self.counts.current();
        let previous = super::idle::Slot::other(current);
        // The other slot may still hold jobs of an older epoch: they came
        // before this call too, and its slot is about to be reused.
        self.wait_drained(previous).await;
        let before = self.counts.advance();
        self.wait_drained(before).await;
    }

    async fn wait_drained(&self, slot: Slot) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.counts.drained(slot) {
                return;
            }
            idle.await;
        }
    }
}

/// Decrements a counter of waiters when the wait ends or is cancelled.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
