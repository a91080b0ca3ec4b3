//! The pool's machinery, generic over the job type so that the bus's jobs run
//! without boxing a future per event.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crossbeam_queue::SegQueue;
use futures::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::options::validate_workers;
use crate::metrics::PoolMetrics;
use crate::{Error, MetricsRegistry, PoolOptions, Result};

/// Scheduler turns an idle worker waits for more work before exiting.
const LINGER_TURNS: usize = 16;

/// A unit of work the pool runs.
pub(crate) trait Job: Send + Sized + 'static {
    /// What every job of the pool shares (the bus's configuration), reached
    /// through the worker's handle so that submitting touches no refcount.
    type Context: Send + Sync + 'static;

    fn run(self, pool: &Arc<PoolCore<Self>>) -> impl Future<Output = ()> + Send;
}

pub(crate) struct PoolCore<J: Job> {
    queue: SegQueue<J>,
    max_workers: AtomicUsize,
    /// Workers spawned and not yet exited.
    active: AtomicUsize,
    /// Jobs submitted (written only by submitters) and finished (written only
    /// by workers): separate counters, so that no cache line is written by
    /// both sides for every job.
    submitted: AtomicU64,
    completed: AtomicU64,
    /// Callers inside `wait_for_idle`; workers look for idleness only then.
    idle_waiters: AtomicUsize,
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
            max_workers: AtomicUsize::new(options.workers),
            active: AtomicUsize::new(0),
            submitted: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            idle_waiters: AtomicUsize::new(0),
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

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Queues a job, handing it back when the pool is closed or there is no
    /// runtime to run it on.
    pub(crate) fn submit(self: &Arc<Self>, job: J) -> Result<(), (Error, J)> {
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
        self.submitted.fetch_add(1, Ordering::Relaxed);
        self.metrics.submitted.inc();
        self.queue.push(job);
        if self.claim_worker() {
            self.spawn_worker();
        }
        Ok(())
    }

    /// Changes the number of workers; extra workers exit after their current job.
    pub(crate) fn resize(self: &Arc<Self>, workers: usize) -> Result<()> {
        validate_workers(workers)?;
        self.max_workers.store(workers, Ordering::Release);
        while !self.queue.is_empty() && self.claim_worker() {
            self.spawn_worker();
        }
        Ok(())
    }

    /// Stops accepting jobs; queued and running ones still finish.
    pub(crate) fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }

    pub(crate) async fn wait_for_idle(&self) {
        self.idle_waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = IdleWaiter(&self.idle_waiters);
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.pending() == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Spawns a worker for a slot already claimed: on the caller's runtime,
    /// or else on the first runtime the pool saw.
    fn spawn_worker(self: &Arc<Self>) {
        let worker = Arc::clone(self).work();
        match Handle::try_current() {
            Ok(current) => drop(current.spawn(worker)),
            Err(_) => match self.runtime.get() {
                Some(first) => drop(first.spawn(worker)),
                // No runtime was ever seen, so nothing was queued either.
                None => {
                    self.active.fetch_sub(1, Ordering::AcqRel);
                }
            },
        }
    }

    fn claim_worker(&self) -> bool {
        let max = self.max_workers.load(Ordering::Acquire);
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < max).then_some(active + 1)
            })
            .is_ok()
    }

    /// Gives up this worker's slot if the pool was resized below the number
    /// of active workers.
    fn retire_if_over(&self) -> bool {
        let max = self.max_workers.load(Ordering::Acquire);
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
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
            if !self.queue.is_empty() {
                return true;
            }
        }
        false
    }

    async fn work(self: Arc<Self>) {
        loop {
            while let Some(job) = self.queue.pop() {
                self.metrics.started.inc();
                if AssertUnwindSafe(job.run(&self))
                    .catch_unwind()
                    .await
                    .is_err()
                {
                    self.metrics.panicked.inc();
                }
                self.metrics.completed.inc();
                self.completed.fetch_add(1, Ordering::SeqCst);
                if self.idle_waiters.load(Ordering::SeqCst) > 0 && self.pending() == 0 {
                    self.idle.notify_waiters();
                }
                if self.retire_if_over() {
                    return;
                }
                // Let other tasks on this thread run between jobs that never
                // yield on their own.
                tokio::task::consume_budget().await;
            }
            if self.linger().await {
                continue;
            }
            self.active.fetch_sub(1, Ordering::AcqRel);
            // A job pushed after our last pop may have seen every worker slot
            // taken: take the slot back if work remains.
            if self.queue.is_empty() || !self.claim_worker() {
                return;
            }
        }
    }
}

/// Counts a caller in `wait_for_idle` until it returns or is cancelled.
struct IdleWaiter<'a>(&'a AtomicUsize);

impl Drop for IdleWaiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
