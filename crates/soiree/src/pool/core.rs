//! The pool's machinery, generic over the job type so that the bus's jobs run
//! without boxing a future per event.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};

use crossbeam_queue::SegQueue;
use crossbeam_utils::CachePadded;
use futures::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::options::validate_workers;
use crate::metrics::PoolMetrics;
use crate::{Error, MetricsRegistry, PoolOptions, Result};

tokio::task_local! {
    /// The pool (by address) whose job the current task runs.
    static RUNNING_IN: usize;
}

/// Scheduler turns an idle worker waits for more work before exiting.
/// Measured with `soiree bench` on 2 cores: 6 beat 0, 2 and 16 on every
/// in-memory scenario (round-trip 0.46-0.56 M/s against 0.25-0.43 M/s).
const LINGER_TURNS: usize = 6;

/// A unit of work the pool runs.
pub(crate) trait Job: Send + Sized + 'static {
    /// What every job of the pool shares (the bus's configuration), reached
    /// through the worker's handle so that submitting touches no refcount.
    type Context: Send + Sync + 'static;

    fn run(self, pool: &Arc<PoolCore<Self>>) -> impl Future<Output = ()> + Send;
}

pub(crate) struct PoolCore<J: Job> {
    queue: SegQueue<J>,
    /// Jobs that go before the queue: a queue store's deliveries, so that they
    /// do not wait behind every pending append.
    urgent: SegQueue<J>,
    max_workers: AtomicUsize,
    /// Workers spawned and not yet exited.
    active: AtomicUsize,
    /// Jobs submitted (written only by submitters) and finished (written only
    /// by workers): separate counters, so that no cache line is written by
    /// both sides for every job.
    submitted: CachePadded<AtomicU64>,
    completed: CachePadded<AtomicU64>,
    /// Callers inside `wait_for_idle`; workers look for idleness only then.
    idle_waiters: AtomicUsize,
    /// Jobs of this pool that are inside `wait_for_idle` themselves.
    waiting_jobs: AtomicUsize,
    idle: Notify,
    closed: AtomicBool,
    runtime: OnceLock<Handle>,
    metrics: PoolMetrics,
    name: String,
    context: J::Context,
}

impl<J: Job> std::fmt::Debug for PoolCore<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("workers", &self.max_workers.load(Ordering::Relaxed))
            .field("active", &self.active.load(Ordering::Relaxed))
            .field("pending", &self.pending())
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl<J: Job> PoolCore<J> {
    /// Builds a pool from options that were validated.
    pub(crate) fn new(options: &PoolOptions, context: J::Context) -> Arc<Self> {
        let registry = options
            .registry
            .clone()
            .unwrap_or_else(|| MetricsRegistry::global().clone());
        Arc::new(Self {
            queue: SegQueue::new(),
            urgent: SegQueue::new(),
            max_workers: AtomicUsize::new(options.workers),
            active: AtomicUsize::new(0),
            submitted: CachePadded::new(AtomicU64::new(0)),
            completed: CachePadded::new(AtomicU64::new(0)),
            idle_waiters: AtomicUsize::new(0),
            waiting_jobs: AtomicUsize::new(0),
            idle: Notify::new(),
            closed: AtomicBool::new(false),
            runtime: OnceLock::new(),
            metrics: PoolMetrics::new(&registry, &options.name),
            name: options.name.clone(),
            context,
        })
    }

    pub(crate) fn context(&self) -> &J::Context {
        &self.context
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn workers(&self) -> usize {
        self.max_workers.load(Ordering::Relaxed)
    }

    /// Jobs submitted and not yet finished.
    pub(crate) fn pending(&self) -> usize {
        // Completed first: both only grow, so a race can only overstate the
        // pending work, never report idle too early.
        let completed = self.completed.load(Ordering::SeqCst);
        let submitted = self.submitted.load(Ordering::SeqCst);
        usize::try_from(submitted.saturating_sub(completed)).unwrap_or(usize::MAX)
    }

    /// Reports whether the calling task runs one of this pool's jobs (a
    /// listener waiting for its own bus to go idle must not wait for itself).
    pub(crate) fn caller_is_inside(&self) -> bool {
        RUNNING_IN
            .try_with(|pool| *pool == self.address())
            .unwrap_or(false)
    }

    fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    fn notify_idle_waiters(&self) {
        if self.idle_waiters.load(Ordering::SeqCst) > 0 {
            self.idle.notify_waiters();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Queues a job, handing it back when the pool is closed or there is no
    /// runtime to run it on.
    pub(crate) fn submit(self: &Arc<Self>, job: J) -> Result<(), (Error, J)> {
        self.submit_to(job, false)
    }

    /// Queues a job ahead of the ordinary ones.
    pub(crate) fn submit_urgent(self: &Arc<Self>, job: J) -> Result<(), (Error, J)> {
        self.submit_to(job, true)
    }

    fn submit_to(self: &Arc<Self>, job: J, urgent: bool) -> Result<(), (Error, J)> {
        if self.is_closed() {
            return Err((Error::Closed, job));
        }
        if self.runtime.get().is_none() {
            match Handle::try_current() {
                Ok(current) => {
                    let _ = self.runtime.set(current);
                }
                Err(_) => return Err((Error::NoRuntime, job)),
            }
        }
        // Count the job before checking `closed` (and `close` sets it before
        // counting): either this sees the pool closed, or `close`'s wait for
        // idleness sees this job.
        self.submitted.fetch_add(1, Ordering::SeqCst);
        if self.is_closed() {
            self.completed.fetch_add(1, Ordering::SeqCst);
            self.notify_idle_waiters();
            return Err((Error::Closed, job));
        }
        self.metrics.submitted.inc();
        if urgent {
            self.urgent.push(job);
        } else {
            self.queue.push(job);
        }
        // Pairs with the fence in `work`: a worker that gives up its slot sees
        // this job, or this sees the slot free.
        fence(Ordering::SeqCst);
        if self.claim_worker() {
            self.spawn_worker();
        }
        Ok(())
    }

    /// Changes the number of workers; extra workers exit after their current job.
    pub(crate) fn resize(self: &Arc<Self>, workers: usize) -> Result<()> {
        validate_workers(workers)?;
        self.max_workers.store(workers, Ordering::Release);
        while self.has_queued() && self.claim_worker() {
            self.spawn_worker();
        }
        Ok(())
    }

    /// Stops accepting jobs; queued and running ones still finish.
    pub(crate) fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::SeqCst)
    }

    pub(crate) async fn wait_for_idle(&self) {
        self.idle_waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = IdleWaiter(&self.idle_waiters);
        // A job waiting for idleness does not count as pending work: neither
        // for itself nor for other jobs waiting the same way.
        let _inside = self.caller_is_inside().then(|| {
            self.waiting_jobs.fetch_add(1, Ordering::SeqCst);
            self.idle.notify_waiters();
            IdleWaiter(&self.waiting_jobs)
        });
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            let waiting_jobs = self.waiting_jobs.load(Ordering::SeqCst);
            if self.pending().saturating_sub(waiting_jobs) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Spawns a worker for a slot already claimed: on the caller's runtime,
    /// or else on the first runtime the pool saw.
    fn spawn_worker(self: &Arc<Self>) {
        // The slot travels with the future: if a runtime drops the worker,
        // polled or not, the slot is given back.
        let slot = WorkerSlot {
            pool: Arc::clone(self),
            held: true,
        };
        let worker = slot.work();
        match Handle::try_current() {
            Ok(current) => drop(current.spawn(worker)),
            Err(_) => {
                if let Some(first) = self.runtime.get() {
                    drop(first.spawn(worker));
                }
            }
        }
    }

    fn claim_worker(&self) -> bool {
        let max = self.max_workers.load(Ordering::Acquire);
        self.active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |active| {
                (active < max).then_some(active + 1)
            })
            .is_ok()
    }

    /// Gives up this worker's slot if the pool was resized below the number
    /// of active workers.
    fn retire_if_over(&self) -> bool {
        let max = self.max_workers.load(Ordering::Acquire);
        self.active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |active| {
                (active > max).then_some(active - 1)
            })
            .is_ok()
    }

    /// Stays a few scheduler turns for more work before exiting: a producer
    /// emitting in a loop refills the queue within microseconds, and a worker
    /// that stays saves a task spawn and a thread wake-up per job.
    async fn linger(&self) -> bool {
        for _ in 0..LINGER_TURNS {
            tokio::task::yield_now().await;
            if self.has_queued() {
                return true;
            }
        }
        false
    }

    fn has_queued(&self) -> bool {
        !self.urgent.is_empty() || !self.queue.is_empty()
    }

    /// Counts a job as finished, however it ended.
    fn finish_job(&self) {
        self.metrics.completed.inc();
        self.completed.fetch_add(1, Ordering::SeqCst);
        self.notify_idle_waiters();
    }
}

/// A claimed worker slot, given back when dropped unless the worker gave it
/// back itself.
struct WorkerSlot<J: Job> {
    pool: Arc<PoolCore<J>>,
    held: bool,
}

impl<J: Job> WorkerSlot<J> {
    async fn work(mut self) {
        let pool = Arc::clone(&self.pool);
        let address = pool.address();
        loop {
            while let Some(job) = pool.urgent.pop().or_else(|| pool.queue.pop()) {
                pool.metrics.started.inc();
                let done = JobDone(&pool);
                let run = RUNNING_IN.scope(address, job.run(&pool));
                if AssertUnwindSafe(run).catch_unwind().await.is_err() {
                    pool.metrics.panicked.inc();
                }
                drop(done);
                if pool.retire_if_over() {
                    self.held = false;
                    return;
                }
                // Let other tasks on this thread run between jobs that never
                // yield on their own.
                tokio::task::consume_budget().await;
            }
            if pool.linger().await {
                continue;
            }
            pool.active.fetch_sub(1, Ordering::SeqCst);
            self.held = false;
            // Pairs with the fence in `submit`: a job pushed after our last
            // pop may have seen every slot taken, so look again.
            fence(Ordering::SeqCst);
            if !pool.has_queued() || !pool.claim_worker() {
                return;
            }
            self.held = true;
        }
    }
}

impl<J: Job> Drop for WorkerSlot<J> {
    fn drop(&mut self) {
        if self.held {
            self.pool.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Finishes a job when dropped, so that a job dropped mid-run (its runtime
/// shut down) still counts as finished.
struct JobDone<'a, J: Job>(&'a PoolCore<J>);

impl<J: Job> Drop for JobDone<'_, J> {
    fn drop(&mut self) {
        self.0.finish_job();
    }
}

/// Counts a caller in `wait_for_idle` until it returns or is cancelled.
struct IdleWaiter<'a>(&'a AtomicUsize);

impl Drop for IdleWaiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
