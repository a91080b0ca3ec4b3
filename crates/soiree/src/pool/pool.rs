//! The standalone pool, for concurrency outside the bus.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::FutureExt;

use super::{Job, PoolCore, PoolOptions};
use crate::{Error, Result};

/// A boxed task. A named type rather than an alias, so that the pool's
/// futures stay `Send` without higher-ranked lifetime trouble.
struct Task(Pin<Box<dyn Future<Output = ()> + Send + 'static>>);

impl Job for Task {
    type Context = ();

    fn run(self, _pool: &Arc<PoolCore<Self>>) -> impl Future<Output = ()> + Send {
        self.0
    }
}

/// A bounded pool of workers running futures, with Prometheus metrics.
///
/// At most [`workers`](PoolOptions::workers) tasks run at once; the rest wait
/// in a queue. A panicking task is caught and counted
/// (`soiree_pool_tasks_panicked_total`) and does not affect the others. The
/// bus runs its listeners on the same machinery. Cloning a pool gives another
/// handle to the same workers.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use soiree::{Pool, PoolOptions};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
/// let pool = Pool::new(PoolOptions::default().workers(2))?;
/// let done = Arc::new(AtomicUsize::new(0));
/// for _ in 0..10 {
///     let done = done.clone();
///     pool.submit(async move { done.fetch_add(1, Ordering::Relaxed); })?;
/// }
/// pool.wait_for_idle().await;
/// assert_eq!(done.load(Ordering::Relaxed), 10);
/// pool.release().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Pool {
    core: Arc<PoolCore<Task>>,
}

impl Pool {
    /// Builds a pool.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for zero workers.
    pub fn new(options: PoolOptions) -> Result<Self> {
        options.validate()?;
        Ok(Self {
            core: PoolCore::new(&options, ()),
        })
    }

    /// Queues a task.
    ///
    /// # Errors
    ///
    /// [`Error::PoolReleased`] after [`Pool::release`]; [`Error::NoRuntime`] when
    /// called outside a tokio runtime by a pool that has never seen one.
    pub fn submit<F>(&self, task: F) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.core
            .submit(Task(Box::pin(task)))
            .map_err(|(err, _)| match err {
                Error::Closed => Error::PoolReleased,
                other => other,
            })
    }

    /// Queues every task and waits for all of them to finish.
    ///
    /// # Errors
    ///
    /// [`Error::PoolReleased`] or [`Error::NoRuntime`] when a task could not be
    /// queued (the ones queued before it still run and are waited for), and
    /// [`Error::Panicked`] for the first task that panicked.
    ///
    /// # Cancel safety
    ///
    /// Cancelling the wait does not cancel the tasks.
    pub async fn submit_all_and_wait<I, F>(&self, tasks: I) -> Result<()>
    where
        I: IntoIterator<Item = F>,
        F: Future<Output = ()> + Send + 'static,
    {
        let group = Arc::new(Group::default());
        let mut outcome = Ok(());
        for (index, task) in tasks.into_iter().enumerate() {
            let member = Arc::clone(&group);
            let task = async move {
                let outcome = AssertUnwindSafe(task).catch_unwind().await;
                if let Err(panic) = &outcome {
                    member.record_panic(index, crate::listener::panic_message(&**panic));
                }
                member.finish_one();
                // Panic on, so that the pool counts it like any task panic.
                if let Err(panic) = outcome {
                    std::panic::resume_unwind(panic);
                }
            };
            group.start_one();
            if let Err(err) = self.submit(task) {
                group.finish_one();
                outcome = Err(err);
                break;
            }
        }
        group.wait().await;
        outcome?;
        match group.take_panic() {
            Some((index, message)) => Err(Error::Panicked {
                listener_id: crate::ListenerId::new(format!("task {index}")),
                message,
            }),
            None => Ok(()),
        }
    }

    /// Changes the number of workers while work is running: more workers start
    /// at once when work is queued; surplus workers exit after their current task.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for zero workers.
    pub fn resize(&self, workers: usize) -> Result<()> {
        self.core.resize(workers)
    }

    /// The configured number of workers.
    pub fn workers(&self) -> usize {
        self.core.workers()
    }

    /// The pool's name (its metrics' `pool` label).
    pub fn name(&self) -> &str {
        self.core.name()
    }

    /// Tasks submitted and not yet finished.
    pub fn pending(&self) -> usize {
        self.core.pending()
    }

    /// Waits until every task submitted so far has finished.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only observes the pool.
    pub async fn wait_for_idle(&self) {
        self.core.wait_for_idle().await;
    }

    /// Stops accepting tasks and waits for the queued and running ones.
    ///
    /// # Cancel safety
    ///
    /// Cancelling the wait leaves the pool closed; its tasks still finish.
    pub async fn release(&self) {
        self.core.close();
        self.core.wait_for_idle().await;
    }
}

/// Completion tracking for `submit_all_and_wait`.
#[derive(Default)]
struct Group {
    outstanding: std::sync::atomic::AtomicUsize,
    done: tokio::sync::Notify,
    first_panic: Mutex<Option<(usize, String)>>,
}

impl Group {
    fn start_one(&self) {
        self.outstanding
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn finish_one(&self) {
        if self
            .outstanding
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.done.notify_waiters();
        }
    }

    fn record_panic(&self, index: usize, message: String) {
        let mut first = self.first_panic.lock().unwrap_or_else(|p| p.into_inner());
        if first.as_ref().is_none_or(|(i, _)| index < *i) {
            *first = Some((index, message));
        }
    }

    fn take_panic(&self) -> Option<(usize, String)> {
        self.first_panic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    async fn wait(&self) {
        loop {
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.outstanding.load(std::sync::atomic::Ordering::Acquire) == 0 {
                return;
            }
            done.await;
        }
    }
}
