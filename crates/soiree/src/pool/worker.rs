//! The worker side of a pool: tasks that take jobs from the queue and run
//! them, one at a time each.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::runtime::Handle;

use super::queue::{Handler, JobFlags, Queued, WorkQueue};

/// Starts a worker on `runtime` for a place already counted in `alive`.
pub(super) fn spawn<J, H>(runtime: &Handle, queue: Arc<WorkQueue<J>>, handler: H)
where
    J: Send + 'static,
    H: Handler<J>,
{
    let place = Place {
        queue,
        counted: true,
        exited: false,
    };
    drop(runtime.spawn(place.work(handler)));
}

/// A worker's place in the pool, given back when the worker ends, however
/// it ends: a runtime that shuts down drops its tasks unfinished.
struct Place<J: Send + 'static> {
    queue: Arc<WorkQueue<J>>,
    /// Still counted in the pool's `alive`.
    counted: bool,
    /// Ended on its own rather than dropped by its runtime.
    exited: bool,
}

impl<J: Send + 'static> Place<J> {
    async fn work<H: Handler<J>>(mut self, handler: H) {
        let queue = Arc::clone(&self.queue);
        // One scope per worker, shared by each of its jobs.
        let flags = Arc::new(JobFlags::default());
        queue
            .scoped(&flags, self.take_jobs(&queue, &handler, &flags))
            .await;
        self.exited = true;
    }

    async fn take_jobs<H: Handler<J>>(
        &mut self,
        queue: &Arc<WorkQueue<J>>,
        handler: &H,
        flags: &JobFlags,
    ) {
        loop {
            if queue.retire_if_over() {
                self.counted = false;
                break;
            }
            let next = match queue.pop() {
                Some(queued) => Some(queued),
                None => match linger(queue).await {
                    Some(queued) => Some(queued),
                    None => queue.next().await,
                },
            };
            let Some(Queued { job, slot }) = next else {
                break;
            };
            // A task awaiting the job may have taken it over (and counts it).
            if !handler.claim(&job) {
                continue;
            }
            queue.metrics.started.inc();
            // Pinned here, once: the job's future is large, and handing it
            // down by value would copy it at every layer.
            let job = std::pin::pin!(handler.run(job));
            queue.run_scoped(slot, flags, job).await;
            // Let other tasks on this thread run between jobs that never
            // yield on their own.
            tokio::task::consume_budget().await;
        }
    }
}

/// Scheduler turns an idle worker looks for more work before it parks.
/// A producer emitting in a loop refills the queue within microseconds, and
/// a worker that is still awake spares the producer a wake-up per job
/// (measured with `soiree-bench` on 2 cores: 6 turns beat 0, 2 and 16).
const LINGER_TURNS: usize = 6;

async fn linger<J: Send + 'static>(queue: &WorkQueue<J>) -> Option<Queued<J>> {
    for _ in 0..LINGER_TURNS {
        tokio::task::yield_now().await;
        if let Some(queued) = queue.pop() {
            return Some(queued);
        }
        if queue.is_closed() {
            return None;
        }
    }
    None
}

impl<J: Send + 'static> Drop for Place<J> {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let alive = self.queue.alive.fetch_sub(1, Ordering::SeqCst) - 1;
        let queued = self.queue.queued();
        if !self.exited && alive == 0 && queued > 0 {
            tracing::warn!(
                pool = self.queue.name(),
                queued,
                "the runtime shut down with jobs still queued: they did not run"
            );
        }
    }
}
