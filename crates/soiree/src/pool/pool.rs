//! The standalone pool, for concurrency outside the bus.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::FutureExt;

use super::PoolOptions;
use super::queue::{Handler, Queued, Rejected, WorkQueue};
use crate::{Error, Result};

/// A boxed task. A named type rather than an alias, so that the pool's
/// futures stay `Send` without higher-ranked lifetime trouble.
struct Task(Pin<Box<dyn Future<Output = ()> + Send + 'static>>);

/// Runs a standalone pool's tasks.
struct RunTask;

impl Handler<Task> for RunTask {
    async fn run(&self, task: Task) {
        task.0.await;
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
    queue: Arc<WorkQueue<Task>>,
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
            queue: WorkQueue::new(&options),
        })
    }

    /// Queues a task without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::QueueFull`] when the queue holds
    /// [`queue_capacity`](PoolOptions::queue_capacity) tasks already (see
    /// [`Pool::submit_async`]); [`Error::PoolReleased`] after
    /// [`Pool::release`]; [`Error::NoRuntime`] when called outside a tokio
    /// runtime while the pool has no worker.
    pub fn submit<F>(&self, task: F) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let slot = self.queue.enter();
        let queued = Queued {
            job: Task(Box::pin(task)),
            slot,
        };
        self.queue
            .try_push(queued, || RunTask)
            .map_err(|(rejected, _)| {
                self.queue.cancel(slot, Some(&rejected));
                released(rejected)
            })
    }

    /// Queues a task, waiting for room in the queue.
    ///
    /// # Errors
    ///
    /// [`Error::PoolReleased`] after [`Pool::release`]; [`Error::NoRuntime`]
    /// when called outside a tokio runtime while the pool has no worker.
    ///
    /// # Cancel safety
    ///
    /// Cancelling the wait drops the task unqueued.
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::{Pool, PoolOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
    /// let pool = Pool::new(PoolOptions::default().workers(1).queue_capacity(2))?;
    /// for _ in 0..100 {
    ///     // Waits whenever two tasks are queued already.
    ///     pool.submit_async(async {}).await?;
    /// }
    /// pool.release().await;
    /// # Ok(()) }
    /// ```
    pub async fn submit_async<F>(&self, task: F) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let slot = self.queue.enter();
        let queued = Queued {
            job: Task(Box::pin(task)),
            slot,
        };
        let mut cancel = CancelOnDrop(Some((&*self.queue, slot)));
        let pushed = self.queue.push(queued, || RunTask).await;
        if pushed.is_ok() {
            cancel.0 = None;
        }
        pushed.map_err(|(rejected, _)| released(rejected))
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
        self.queue.resize(workers, || RunTask)
    }

    /// The configured number of workers.
    pub fn workers(&self) -> usize {
        self.queue.workers()
    }

    /// The pool's name: its metrics' `pool` label, unless another live pool
    /// of the same registry has that name (see [`Pool::metrics_label`]).
    pub fn name(&self) -> &str {
        self.queue.name()
    }

    /// The `pool` label of this pool's metrics: its name, or `name-2`,
    /// `name-3`, … while another live pool of the same registry has the
    /// name, so that two pools never share series.
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::{MetricsRegistry, Pool, PoolOptions};
    ///
    /// let registry = MetricsRegistry::new();
    /// let options = PoolOptions::default().name("mailer").registry(registry);
    /// let first = Pool::new(options.clone()).unwrap();
    /// let second = Pool::new(options).unwrap();
    /// assert_eq!(first.metrics_label(), "mailer");
    /// assert_eq!(second.metrics_label(), "mailer-2");
    /// ```
    pub fn metrics_label(&self) -> &str {
        self.queue.label()
    }

    /// Tasks submitted and not yet finished.
    pub fn pending(&self) -> usize {
        self.queue.pending()
    }

    /// Waits until every task submitted so far has finished.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only observes the pool.
    pub async fn wait_for_idle(&self) {
        self.queue.wait_for_idle().await;
    }

    /// Stops accepting tasks and waits for the queued and running ones.
    ///
    /// # Cancel safety
    ///
    /// Cancelling the wait leaves the pool closed; its tasks still finish.
    pub async fn release(&self) {
        self.queue.close();
        self.queue.wait_for_idle().await;
    }
}

/// Gives back a task's slot unless it was queued, also when the wait for
/// room is cancelled.
struct CancelOnDrop<'a>(Option<(&'a WorkQueue<Task>, super::idle::Slot)>);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some((queue, slot)) = self.0.take() {
            queue.cancel(slot, None);
        }
    }
}

/// The pool's words for a rejected task.
fn released(rejected: Rejected) -> Error {
    match rejected {
        Rejected::Closed => Error::PoolReleased,
        other => other.into_error(),
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
