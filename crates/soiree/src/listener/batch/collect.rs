//! The per-event side of a batch listener: each event's call joins the
//! batch being gathered and waits for its own outcome.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::run::{BatchFn, Verdict, Waiting, run_batch};
use super::{Batch, BatchOutcome};
use crate::BoxError;
use crate::listener::{EventContext, Listener};

/// A batch listener as the bus sees it: one [`Listener`] whose calls, one
/// per event, are gathered into batches.
pub(crate) struct BatchListener {
    collector: Arc<Collector>,
}

/// The batch being gathered, and how to run one.
struct Collector {
    max_items: usize,
    max_wait: Duration,
    listener: Box<BatchFn>,
    pending: Mutex<Pending>,
}

/// The events of the batch being gathered.
#[derive(Default)]
struct Pending {
    items: Vec<Waiting>,
    /// Counts the batches taken, so that a timer whose batch was taken
    /// already (full, or at close) does nothing.
    generation: u64,
    /// The timer of the batch being gathered.
    timer: Option<AbortHandle>,
}

impl Pending {
    /// Takes the batch being gathered; the next event starts a new one.
    fn take(&mut self) -> Vec<Waiting> {
        self.generation = self.generation.wrapping_add(1);
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
        std::mem::take(&mut self.items)
    }
}

impl BatchListener {
    /// `max_items` is at least 1 (the bus checks it).
    pub(crate) fn new<F, Fut>(max_items: usize, max_wait: Duration, listener: F) -> Self
    where
        F: Fn(Batch) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<BatchOutcome, BoxError>> + Send + 'static,
    {
        let listener: Box<BatchFn> = Box::new(move |batch| Box::pin(listener(batch)));
        Self {
            collector: Arc::new(Collector {
                max_items,
                max_wait,
                listener,
                pending: Mutex::new(Pending::default()),
            }),
        }
    }
}

impl Listener for BatchListener {
    fn call(&self, ctx: EventContext) -> BoxFuture<'static, Result<(), BoxError>> {
        let (outcome, verdict) = oneshot::channel();
        Arc::clone(&self.collector).add(ctx, outcome);
        Box::pin(async move {
            match verdict.await {
                Ok(Verdict::Handled(outcome)) => outcome,
                // Caught by the pipeline as this event's panic.
                Ok(Verdict::Panicked(message)) => std::panic::resume_unwind(Box::new(message)),
                Err(_) => Err("the event's batch ended without running: \
                               the runtime is shutting down; the event is delivered again"
                    .into()),
            }
        })
    }
}

impl Collector {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds an event to the batch being gathered: a full batch (or any,
    /// once the bus is closing) runs at once; the first event of a batch
    /// starts its `max_wait` timer.
    fn add(self: Arc<Self>, ctx: EventContext, outcome: oneshot::Sender<Verdict>) {
        let shutdown = ctx.shutdown().clone();
        let mut pending = self.lock();
        pending.items.push((ctx, outcome));
        if pending.items.len() >= self.max_items || shutdown.is_cancelled() {
            let items = pending.take();
            drop(pending);
            drop(tokio::spawn(async move {
                run_batch(&*self.listener, items).await;
            }));
            return;
        }
        if pending.items.len() == 1 {
            let generation = pending.generation;
            let timer = tokio::spawn(Arc::clone(&self).flush_after(generation, shutdown));
            pending.timer = Some(timer.abort_handle());
        }
    }

    /// Runs batch `generation` after `max_wait`, or as soon as the bus
    /// closes, unless it was taken before.
    async fn flush_after(self: Arc<Self>, generation: u64, shutdown: CancellationToken) {
        tokio::select! {
            () = tokio::time::sleep(self.max_wait) => {}
            () = shutdown.cancelled() => {}
        }
        let items = {
            let mut pending = self.lock();
            if pending.generation != generation {
                return;
            }
            // Taken here, so that nothing aborts the run below.
            pending.timer = None;
            pending.take()
        };
        run_batch(&*self.listener, items).await;
    }
}
