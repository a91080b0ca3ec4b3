//! Batched writes with a per-item outcome: callers queue items, one task
//! writes whatever has queued up in one round trip, and each item gets its
//! own outcome.
//!
//! One poison item must not fail its batch-mates: a batch that fails with a
//! permanent error ([`BatchError::is_permanent`]) is split in halves, down
//! to single items, so that only the offending items fail, each with its
//! own error (at most `2 n - 1` writes for `n` items). A transient error
//! (the connection) fails the whole batch ([`BatchWriter`]) or is retried
//! for a bounded window, never forever ([`ResultWriter`]).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

/// Items written in one round trip at most.
const MAX_BATCH: usize = 1000;
/// The longest pause between two attempts at a failing batch.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);
/// Runs of lost positions remembered for [`ResultWriter::flush`].
const LOST_REMEMBERED: usize = 64;

/// An error of a batch write, which says whether writing the same items
/// again can succeed.
pub trait BatchError: std::error::Error + Send + Sync + 'static {
    /// `true` when the storage refuses the items for good (too large, an
    /// invalid encoding, a constraint): the batch is split to find them.
    /// `false` for a transient failure (the connection).
    fn is_permanent(&self) -> bool;
}

/// Why an item was not written.
#[derive(Debug)]
#[non_exhaustive]
pub enum WriteError<E> {
    /// The writing task is gone (its runtime shut down).
    Stopped,
    /// The write failed; shared by the items of the part that failed.
    Failed(Arc<E>),
    /// [`ResultWriter::flush`] waited longer than its limit.
    Timeout(Duration),
    /// Items waiting when [`ResultWriter::flush`] started were given up
    /// after failing for the whole retry window (the duration).
    Lost(Duration),
}

impl<E: fmt::Display> fmt::Display for WriteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stopped => f.write_str("the store's writer task stopped (its runtime shut down)"),
            Self::Failed(err) => write!(f, "{err}"),
            Self::Timeout(limit) => write!(f, "earlier writes not done within {limit:?}"),
            Self::Lost(window) => write!(f, "earlier writes kept failing for {window:?}; given up"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for WriteError<E> {}

/// Writes `items` with `write`; on a permanent error, writes each half
/// again, down to single items. Calls `settle` once per item, in order,
/// with its outcome.
pub async fn write_isolating<T, E, F, Fut>(
    write: &F,
    items: Vec<T>,
    mut settle: impl FnMut(usize, Result<(), Arc<E>>),
) where
    T: Clone,
    E: BatchError,
    F: Fn(Arc<[T]>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    // Ranges of `items` still to write, the next first.
    let items: Arc<[T]> = items.into();
    let mut todo = vec![(0, items.len())];
    while let Some((start, end)) = todo.pop() {
        let part: Arc<[T]> = if (start, end) == (0, items.len()) {
            Arc::clone(&items)
        } else {
            items[start..end].into()
        };
        match write(part).await {
            Ok(()) => (start..end).for_each(|n| settle(n, Ok(()))),
            Err(err) if err.is_permanent() && end - start > 1 => {
                let middle = start + (end - start) / 2;
                todo.push((middle, end));
                todo.push((start, middle));
            }
            Err(err) => {
                let err = Arc::new(err);
                (start..end).for_each(|n| settle(n, Err(Arc::clone(&err))));
            }
        }
    }
}

type Request<T, E> = (T, oneshot::Sender<Result<(), Arc<E>>>);

/// A queue of items in front of a task that writes them in batches; each
/// caller waits for its own item's outcome.
pub struct BatchWriter<T, E> {
    sender: mpsc::Sender<Request<T, E>>,
}

impl<T, E> fmt::Debug for BatchWriter<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchWriter").finish_non_exhaustive()
    }
}

impl<T, E> Clone for BatchWriter<T, E> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static, E: BatchError> BatchWriter<T, E> {
    /// Spawns the writing task on the current runtime; it ends when every
    /// handle on the writer is dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn<F, Fut>(write: F) -> Self
    where
        F: Fn(Arc<[T]>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send,
    {
        let (sender, mut receiver) = mpsc::channel::<Request<T, E>>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (items, replies): (Vec<T>, Vec<_>) = batch.drain(..).unzip();
                let mut replies: Vec<_> = replies.into_iter().map(Some).collect();
                write_isolating(&write, items, |n, outcome| {
                    if let Some(reply) = replies[n].take() {
                        let _ = reply.send(outcome);
                    }
                })
                .await;
            }
        });
        Self { sender }
    }

    /// Queues an item and waits until it is written.
    ///
    /// # Errors
    ///
    /// [`WriteError::Failed`] with the error of the write that held it
    /// (its own, when the storage refused it for good);
    /// [`WriteError::Stopped`] when the writing task is gone.
    ///
    /// # Cancel safety
    ///
    /// A cancelled call may or may not have been written.
    pub async fn write(&self, item: T) -> Result<(), WriteError<E>> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((item, reply))
            .await
            .map_err(|_| WriteError::Stopped)?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(WriteError::Failed(err)),
            Err(_) => Err(WriteError::Stopped),
        }
    }
}

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

    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Fake {
        #[error("refused")]
        Refused,
        #[error("unreachable")]
        Unreachable,
    }

    impl BatchError for Fake {
        fn is_permanent(&self) -> bool {
            matches!(self, Self::Refused)
        }
    }

    /// A write that refuses batches holding `permanent` for good and those
    /// holding `transient` for now, and records what it wrote.
    fn fake(
        permanent: u32,
        transient: u32,
        written: Arc<Mutex<Vec<u32>>>,
    ) -> impl Fn(Arc<[u32]>) -> std::future::Ready<Result<(), Fake>> + Send + Sync + 'static {
        move |items: Arc<[u32]>| {
            std::future::ready(if items.contains(&permanent) {
                Err(Fake::Refused)
            } else if items.contains(&transient) {
                Err(Fake::Unreachable)
            } else {
                written.lock().unwrap().extend(items.iter());
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn a_refused_item_fails_alone_and_its_neighbours_are_written() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let writer = BatchWriter::spawn(fake(7, u32::MAX, Arc::clone(&written)));
        let outcomes = futures::future::join_all((0..20).map(|n| {
            let writer = writer.clone();
            async move { writer.write(n).await }
        }))
        .await;
        for (n, outcome) in outcomes.iter().enumerate() {
            assert_eq!(outcome.is_err(), n == 7, "{n}: {outcome:?}");
        }
        let mut written = written.lock().unwrap().clone();
        written.sort_unstable();
        assert_eq!(written, (0..20).filter(|&n| n != 7).collect::<Vec<_>>());
    }

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
