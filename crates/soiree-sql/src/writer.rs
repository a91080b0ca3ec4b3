//! Batching of concurrent writes: callers queue items and wait; one task
//! writes whatever has queued up in one statement, and answers each caller.
//!
//! One poison item must not fail its neighbours: a batch that fails with a
//! permanent error (see [`Error::is_permanent`]) is split in halves, down
//! to single items, so that only the offending items fail, each with its
//! own error. A transient error (the connection) fails the whole batch
//! (the writer) or is retried for [`TRANSIENT_RETRY_WINDOW`] (the recorder).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};

use crate::{Error, Result};

/// Items written in one statement at most.
const MAX_BATCH: usize = 1000;

type Request<T> = (T, oneshot::Sender<Result<(), Arc<Error>>>);

/// A queue of items in front of a task that writes them in batches.
#[derive(Debug)]
pub(crate) struct Writer<T> {
    sender: mpsc::Sender<Request<T>>,
}

impl<T> Clone for Writer<T> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

/// Writes `items` with `write`; on a permanent error, writes each half
/// again, down to single items. Calls `settle` once per item, in order,
/// with its outcome. Statements: at most `2 n - 1` for `n` items.
async fn write_isolating<T, F, Fut>(
    write: &F,
    items: Vec<T>,
    mut settle: impl FnMut(usize, Result<(), Arc<Error>>),
) where
    T: Clone,
    F: Fn(Arc<[T]>) -> Fut,
    Fut: Future<Output = Result<()>>,
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

impl<T: Clone + Send + Sync + 'static> Writer<T> {
    /// Spawns the writing task on the current runtime; it ends when every
    /// handle on the writer is dropped.
    pub(crate) fn spawn<F, Fut>(write: F) -> Self
    where
        F: Fn(Arc<[T]>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send,
    {
        let (sender, mut receiver) = mpsc::channel::<Request<T>>(4 * MAX_BATCH);
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
    /// Cancel safe in the store traits' sense: a cancelled call may or may
    /// not have been written.
    pub(crate) async fn write(&self, item: T) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((item, reply))
            .await
            .map_err(|_| Error::WriterStopped)?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(Error::Batch(err)),
            Err(_) => Err(Error::WriterStopped),
        }
    }
}

/// A write-behind queue: items are accepted at once and written in batches
/// by a task; [`flush`] waits until everything accepted before it is
/// settled.
///
/// An item the database refuses for good (a permanent error: too large to
/// index, invalid encoding, a constraint) is logged, counted and given up
/// alone; its neighbours are written. A batch failing for a transient
/// reason (the connection) is retried for [`TRANSIENT_RETRY_WINDOW`], then
/// given up: a [`flush`] that waited for it fails with
/// [`Error::ResultsLost`], so that the acknowledgement depending on it
/// fails and the event is delivered again.
///
/// [`flush`]: Recorder::flush
#[derive(Debug)]
pub(crate) struct Recorder<T> {
    /// Assigns positions in send order: the channel is FIFO, so "settled up
    /// to n" means every item accepted before the n-th is settled.
    sender: tokio::sync::Mutex<(u64, mpsc::Sender<T>)>,
    settled: tokio::sync::watch::Receiver<u64>,
    /// Positions `(from, to]` of items given up after transient errors,
    /// the latest [`LOST_REMEMBERED`] runs.
    lost: Arc<Mutex<VecDeque<(u64, u64)>>>,
    window: Duration,
}

/// The longest pause between two attempts at a failing batch.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);
/// How long a batch failing for a transient reason is retried before its
/// items are given up (and the acknowledgements waiting for them fail).
pub(crate) const TRANSIENT_RETRY_WINDOW: Duration = Duration::from_secs(60);
/// Runs of lost positions remembered for [`Recorder::flush`].
const LOST_REMEMBERED: usize = 64;

impl<T: Clone + Send + Sync + std::fmt::Debug + 'static> Recorder<T> {
    /// Spawns the writing task; `refused` counts the items given up for
    /// good; a batch failing for a transient reason is given up after
    /// `window` (the store passes [`TRANSIENT_RETRY_WINDOW`]).
    pub(crate) fn spawn<F, Fut>(write: F, refused: Counter, window: Duration) -> Self
    where
        F: Fn(Arc<[T]>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send,
    {
        let (sender, mut receiver) = mpsc::channel::<T>(4 * MAX_BATCH);
        let (done, settled) = tokio::sync::watch::channel(0u64);
        let lost = Arc::new(Mutex::new(VecDeque::new()));
        let lost_runs = Arc::clone(&lost);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            let mut total = 0u64;
            while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let items: Vec<T> = std::mem::take(&mut batch);
                let count = items.len() as u64;
                let mut pause = Duration::from_millis(50);
                let first_failure = tokio::time::Instant::now();
                let mut pending = Some(items);
                while let Some(items) = pending.take() {
                    let mut transient = None;
                    let mut failed = Vec::new();
                    write_isolating(&write, items.clone(), |n, outcome| match outcome {
                        Ok(()) => {}
                        Err(err) if err.is_permanent() => {
                            refused.inc();
                            tracing::error!(
                                %err, item = ?items[n],
                                "the database refuses this result for good; it is not saved"
                            );
                        }
                        Err(err) => {
                            transient = Some(err);
                            failed.push(items[n].clone());
                        }
                    })
                    .await;
                    let Some(err) = transient else { break };
                    if first_failure.elapsed() >= window {
                        tracing::error!(
                            %err, count = failed.len(), ?window,
                            "cannot save results; giving them up (their events are delivered again)"
                        );
                        let mut runs = lost_runs.lock().unwrap_or_else(|p| p.into_inner());
                        if runs.len() == LOST_REMEMBERED {
                            runs.pop_front();
                        }
                        runs.push_back((total, total + count));
                        break;
                    }
                    tracing::warn!(%err, count = failed.len(), ?pause, "cannot save results; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    pending = Some(failed);
                }
                total += count;
                done.send_replace(total);
            }
        });
        Self {
            sender: tokio::sync::Mutex::new((0, sender)),
            settled,
            lost,
            window,
        }
    }

    /// Accepts an item; waits only for room in the queue.
    pub(crate) async fn submit(&self, item: T) -> Result<()> {
        let mut sender = self.sender.lock().await;
        sender
            .1
            .send(item)
            .await
            .map_err(|_| Error::WriterStopped)?;
        sender.0 += 1;
        Ok(())
    }

    /// Waits until every item accepted so far is settled, at most `limit`.
    ///
    /// Fails with [`Error::ResultsLost`] when items that were waiting to
    /// be written when it started were given up after transient errors.
    pub(crate) async fn flush(&self, limit: Duration) -> Result<()> {
        let target = self.sender.lock().await.0;
        let mut settled = self.settled.clone();
        let from = *settled.borrow();
        match tokio::time::timeout(limit, settled.wait_for(|n| *n >= target)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(Error::WriterStopped),
            Err(_) => return Err(Error::FlushTimeout(limit)),
        }
        let runs = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        if runs.iter().any(|&(lo, hi)| lo < target && hi > from) {
            return Err(Error::ResultsLost(self.window));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A write that refuses batches holding `permanent` for good and those
    /// holding `transient` for now, and records what it wrote.
    fn fake(
        permanent: u32,
        transient: u32,
        written: Arc<Mutex<Vec<u32>>>,
    ) -> impl Fn(Arc<[u32]>) -> std::future::Ready<Result<()>> + Send + Sync + 'static {
        move |items: Arc<[u32]>| {
            std::future::ready(if items.contains(&permanent) {
                Err(Error::NulCharacter("the item"))
            } else if items.contains(&transient) {
                Err(Error::WriterStopped)
            } else {
                written.lock().unwrap().extend(items.iter());
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn a_refused_item_fails_alone_and_its_neighbours_are_written() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let writer = Writer::spawn(fake(7, u32::MAX, Arc::clone(&written)));
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
    async fn the_recorder_gives_a_refused_item_up_alone() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let refused = Counter::default();
        let recorder = Recorder::spawn(
            fake(2, u32::MAX, Arc::clone(&written)),
            refused.clone(),
            TRANSIENT_RETRY_WINDOW,
        );
        for n in 0..5 {
            recorder.submit(n).await.unwrap();
        }
        recorder.flush(Duration::from_secs(10)).await.unwrap();
        assert_eq!(*written.lock().unwrap(), [0, 1, 3, 4]);
        assert_eq!(refused.get(), 1);
    }

    #[tokio::test]
    async fn the_recorder_gives_transient_failures_up_after_its_window() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder::spawn(
            fake(u32::MAX, 99, Arc::clone(&written)),
            Counter::default(),
            Duration::from_millis(200),
        );
        recorder.submit(99).await.unwrap();
        let lost = recorder.flush(Duration::from_secs(10)).await;
        assert!(matches!(lost, Err(Error::ResultsLost(_))), "{lost:?}");
        // Later flushes do not inherit the loss.
        recorder.submit(1).await.unwrap();
        recorder.flush(Duration::from_secs(10)).await.unwrap();
        assert_eq!(*written.lock().unwrap(), [1]);
    }
}
