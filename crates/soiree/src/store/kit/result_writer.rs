//! Results written behind, in batches with per-item outcomes (see
//! [`write_isolating`]), and flushed before an acknowledgement: results
//! before ack. A batch failing for a transient reason is retried for a
//! bounded window, never forever.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::batch_writer::{BatchError, MAX_BATCH, WriteError, write_isolating};

/// The longest pause between two attempts at a failing batch.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);
/// Runs of lost positions remembered for [`ResultWriter::flush`].
const LOST_REMEMBERED: usize = 64;

/// A write-behind queue for listener results: items are accepted at once
/// and written in batches by a task; [`flush`](Self::flush) waits until
/// everything accepted before it is settled, which is how a store writes
/// a delivery's results before its acknowledgement.
///
/// An item the storage refuses for good is reported to `refused` and given
/// up alone; its batch-mates are written. A batch failing for a transient
/// reason is retried, with a growing pause, for the retry window, then
/// given up: a [`flush`](Self::flush) that waited for it fails with
/// [`WriteError::Lost`], so that the acknowledgement depending on it fails
/// and the event is delivered again.
pub struct ResultWriter<T, E> {
    /// Assigns positions in send order: the channel is FIFO, so "settled up
    /// to n" means every item accepted before the n-th is settled.
    sender: tokio::sync::Mutex<(u64, mpsc::Sender<T>)>,
    settled: watch::Receiver<u64>,
    /// Positions `(from, to]` of items given up after transient errors,
    /// the latest [`LOST_REMEMBERED`] runs.
    lost: Arc<Mutex<VecDeque<(u64, u64)>>>,
    window: Duration,
    error: std::marker::PhantomData<fn() -> E>,
}

impl<T, E> fmt::Debug for ResultWriter<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultWriter")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + Sync + 'static, E: BatchError> ResultWriter<T, E> {
    /// Spawns the writing task on the current runtime. `refused` is told of
    /// each item given up for good; a batch failing for a transient reason
    /// is given up after `window`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn<F, Fut, R>(write: F, refused: R, window: Duration) -> Self
    where
        F: Fn(Arc<[T]>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        R: Fn(&T, &E) + Send + Sync + 'static,
    {
        let (sender, receiver) = mpsc::channel::<T>(4 * MAX_BATCH);
        let (done, settled) = watch::channel(0u64);
        let lost = Arc::new(Mutex::new(VecDeque::new()));
        tokio::spawn(run(
            write,
            refused,
            window,
            receiver,
            done,
            Arc::clone(&lost),
        ));
        Self {
            sender: tokio::sync::Mutex::new((0, sender)),
            settled,
            lost,
            window,
            error: std::marker::PhantomData,
        }
    }

    /// Accepts an item; waits only for room in the queue.
    ///
    /// # Errors
    ///
    /// [`WriteError::Stopped`] when the writing task is gone.
    ///
    /// # Cancel safety
    ///
    /// A cancelled call has not accepted the item.
    pub async fn submit(&self, item: T) -> Result<(), WriteError<E>> {
        let mut sender = self.sender.lock().await;
        sender.1.send(item).await.map_err(|_| WriteError::Stopped)?;
        sender.0 += 1;
        Ok(())
    }

    /// Waits until every item accepted so far is settled, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`WriteError::Lost`] when items that were waiting to be written when
    /// it started were given up after transient errors;
    /// [`WriteError::Timeout`] past `limit`; [`WriteError::Stopped`] when
    /// the writing task is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn flush(&self, limit: Duration) -> Result<(), WriteError<E>> {
        let target = self.sender.lock().await.0;
        let mut settled = self.settled.clone();
        let from = *settled.borrow();
        match tokio::time::timeout(limit, settled.wait_for(|n| *n >= target)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(WriteError::Stopped),
            Err(_) => return Err(WriteError::Timeout(limit)),
        }
        let runs = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        if runs.iter().any(|&(lo, hi)| lo < target && hi > from) {
            return Err(WriteError::Lost(self.window));
        }
        Ok(())
    }
}

/// The writing task of a [`ResultWriter`].
async fn run<T, E, F, Fut, R>(
    write: F,
    refused: R,
    window: Duration,
    mut receiver: mpsc::Receiver<T>,
    done: watch::Sender<u64>,
    lost: Arc<Mutex<VecDeque<(u64, u64)>>>,
) where
    T: Clone,
    E: BatchError,
    F: Fn(Arc<[T]>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    R: Fn(&T, &E),
{
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut total = 0u64;
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let items: Vec<T> = std::mem::take(&mut batch);
        let count = items.len() as u64;
        if !write_retrying(&write, &refused, window, items).await {
            let mut runs = lost.lock().unwrap_or_else(|p| p.into_inner());
            if runs.len() == LOST_REMEMBERED {
                runs.pop_front();
            }
            runs.push_back((total, total + count));
        }
        total += count;
        done.send_replace(total);
    }
}

/// Writes a batch, giving up alone each item refused for good and retrying
/// the items that failed for a transient reason for `window`; `false` when
/// some were given up after the window.
async fn write_retrying<T, E, F, Fut, R>(
    write: &F,
    refused: &R,
    window: Duration,
    items: Vec<T>,
) -> bool
where
    T: Clone,
    E: BatchError,
    F: Fn(Arc<[T]>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    R: Fn(&T, &E),
{
    let mut pause = Duration::from_millis(50);
    let first_failure = tokio::time::Instant::now();
    let mut pending = items;
    loop {
        let mut transient = None;
        let mut failed = Vec::new();
        write_isolating(write, pending.clone(), |n, outcome| match outcome {
            Ok(()) => {}
            Err(err) if err.is_permanent() => refused(&pending[n], &err),
            Err(err) => {
                transient = Some(err);
                failed.push(pending[n].clone());
            }
        })
        .await;
        let Some(err) = transient else { return true };
        if first_failure.elapsed() >= window {
            tracing::error!(
                %err, count = failed.len(), ?window,
                "cannot save results; giving them up (their events are delivered again)"
            );
            return false;
        }
        tracing::warn!(%err, count = failed.len(), ?pause, "cannot save results; retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
        pending = failed;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::batch_writer::fake::{Fake, fake};
    use super::*;

    #[tokio::test]
    async fn the_result_writer_gives_a_refused_item_up_alone() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&refused);
        let writer = ResultWriter::spawn(
            fake(2, u32::MAX, Arc::clone(&written)),
            move |item: &u32, _: &Fake| {
                assert_eq!(*item, 2);
                counted.fetch_add(1, Ordering::SeqCst);
            },
            Duration::from_secs(60),
        );
        for n in 0..5 {
            writer.submit(n).await.unwrap();
        }
        writer.flush(Duration::from_secs(10)).await.unwrap();
        assert_eq!(*written.lock().unwrap(), [0, 1, 3, 4]);
        assert_eq!(refused.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_result_writer_gives_transient_failures_up_after_its_window() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let writer = ResultWriter::spawn(
            fake(u32::MAX, 99, Arc::clone(&written)),
            |_: &u32, _: &Fake| {},
            Duration::from_millis(200),
        );
        writer.submit(99).await.unwrap();
        let lost = writer.flush(Duration::from_secs(10)).await;
        assert!(matches!(lost, Err(WriteError::Lost(_))), "{lost:?}");
        // Later flushes do not inherit the loss.
        writer.submit(1).await.unwrap();
        writer.flush(Duration::from_secs(10)).await.unwrap();
        assert_eq!(*written.lock().unwrap(), [1]);
    }
}
