//! Results written behind, in batches with per-item outcomes (see
//! [`write_isolating`]), and flushed before an acknowledgement: results
//! before ack. A batch failing for a transient reason is retried for a
//! bounded window, never forever; what still fails then is told item by
//! item, so that only the deliveries of those items are held back.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::batch_writer::{BatchError, MAX_BATCH, WriteError, write_isolating};

/// The longest pause between two attempts at a failing batch.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Why the [`ResultWriter`] gave an item up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GivenUp {
    /// The storage refuses the item for good (too large, invalid, a
    /// constraint): writing it again cannot succeed. Its delivery is
    /// acknowledged all the same, so that it cannot wedge; the store logs
    /// and counts it (`soiree_store_results_refused_total`).
    Refused,
    /// The item failed for a transient reason for the whole retry window.
    /// Its delivery must not be acknowledged: the store holds it back (see
    /// [`DedupCache::results_lost`](super::DedupCache::results_lost)) and
    /// it is delivered again after its lease.
    Lost,
}

/// A write-behind queue for listener results: items are accepted at once
/// and written in batches by a task; [`flush`](Self::flush) waits until
/// everything accepted before it is settled, which is how a store writes
/// a delivery's results before its acknowledgement.
///
/// Each item given up is told to `given_up`, alone, with why
/// ([`GivenUp`]); its batch-mates are written. An item the storage refuses
/// for good is given up at once. A batch failing for a transient reason is
/// retried, with a growing pause, for the retry window; then its items are
/// tried once more apart (halves, down to single items, within another
/// window), so that one item that keeps failing loses only itself, and
/// those still failing are given up as [`GivenUp::Lost`].
///
/// The rule a store builds on it (results before ack, see
/// [`EventQueue::ack`](crate::EventQueue::ack)): a delivery is acknowledged
/// only once its results are settled; one with a lost result is not
/// acknowledged, and one with a refused result is.
pub struct ResultWriter<T, E> {
    /// Assigns positions in send order: the channel is FIFO, so "settled up
    /// to n" means every item accepted before the n-th is settled.
    sender: tokio::sync::Mutex<(u64, mpsc::Sender<T>)>,
    settled: watch::Receiver<u64>,
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
    /// Spawns the writing task on the current runtime. `given_up` is told
    /// of each item given up, and why, before a [`flush`](Self::flush)
    /// waiting for it returns; a batch failing for a transient reason is
    /// given up after `window` (and at most another `window` spent
    /// finding which of its items still fail).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn<F, Fut, G>(write: F, given_up: G, window: Duration) -> Self
    where
        F: Fn(Arc<[T]>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        G: Fn(&T, &E, GivenUp) + Send + Sync + 'static,
    {
        let (sender, receiver) = mpsc::channel::<T>(4 * MAX_BATCH);
        let (done, settled) = watch::channel(0u64);
        tokio::spawn(run(write, given_up, window, receiver, done));
        Self {
            sender: tokio::sync::Mutex::new((0, sender)),
            settled,
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

    /// Waits until every item accepted so far is settled (written or given
    /// up, see [`spawn`](Self::spawn)), at most `limit`. A limit of twice
    /// the window and then some outlasts an outage's give-up.
    ///
    /// # Errors
    ///
    /// [`WriteError::Timeout`] past `limit`; [`WriteError::Stopped`] when
    /// the writing task is gone. Either way nothing is known of the items
    /// waiting: no delivery depending on them may be acknowledged.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn flush(&self, limit: Duration) -> Result<(), WriteError<E>> {
        let target = self.sender.lock().await.0;
        let mut settled = self.settled.clone();
        match tokio::time::timeout(limit, settled.wait_for(|n| *n >= target)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(WriteError::Stopped),
            Err(_) => Err(WriteError::Timeout(limit)),
        }
    }
}

/// The writing task of a [`ResultWriter`].
async fn run<T, E, F, Fut, G>(
    write: F,
    given_up: G,
    window: Duration,
    mut receiver: mpsc::Receiver<T>,
    done: watch::Sender<u64>,
) where
    T: Clone,
    E: BatchError,
    F: Fn(Arc<[T]>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    G: Fn(&T, &E, GivenUp),
{
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut total = 0u64;
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let items: Vec<T> = std::mem::take(&mut batch);
        let count = items.len() as u64;
        write_retrying(&write, &given_up, window, items).await;
        total += count;
        done.send_replace(total);
    }
}

/// A transient error dressed as permanent, so that [`write_isolating`]
/// splits a batch on it too: the last pass over items given up.
#[derive(Debug)]
struct Split<E>(E);

impl<E: fmt::Display> fmt::Display for Split<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: std::error::Error> std::error::Error for Split<E> {}

impl<E: BatchError> BatchError for Split<E> {
    fn is_permanent(&self) -> bool {
        true
    }
}

/// Writes a batch, giving up alone each item refused for good and retrying
/// the items that failed for a transient reason for `window`; then tries
/// those apart once (for at most another `window`) and gives up, item by
/// item, the ones that still fail.
async fn write_retrying<T, E, F, Fut, G>(write: &F, given_up: &G, window: Duration, items: Vec<T>)
where
    T: Clone,
    E: BatchError,
    F: Fn(Arc<[T]>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    G: Fn(&T, &E, GivenUp),
{
    let mut pause = Duration::from_millis(50);
    let first_failure = tokio::time::Instant::now();
    let mut pending = items;
    loop {
        let mut transient = None;
        let mut failed = Vec::new();
        write_isolating(write, pending.clone(), |n, outcome| match outcome {
            Ok(()) => {}
            Err(err) if err.is_permanent() => given_up(&pending[n], &err, GivenUp::Refused),
            Err(err) => {
                transient = Some(err);
                failed.push(pending[n].clone());
            }
        })
        .await;
        let Some(err) = transient else { return };
        if first_failure.elapsed() >= window {
            give_up_apart(write, given_up, window, failed, &err).await;
            return;
        }
        tracing::warn!(%err, count = failed.len(), ?pause, "cannot save results; retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
        pending = failed;
    }
}

/// The last pass over items that kept failing for a transient reason:
/// written apart (halves, down to single items) so that the ones that
/// fail only with others are saved; those failing still, or not tried
/// within `window`, are given up as lost.
async fn give_up_apart<T, E, F, Fut, G>(
    write: &F,
    given_up: &G,
    window: Duration,
    items: Vec<T>,
    last: &Arc<E>,
) where
    T: Clone,
    E: BatchError,
    F: Fn(Arc<[T]>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    G: Fn(&T, &E, GivenUp),
{
    let split = |part: Arc<[T]>| {
        let written = write(part);
        async move { written.await.map_err(Split) }
    };
    let mut settled = vec![false; items.len()];
    let mut lost = 0usize;
    let pass = write_isolating(&split, items.clone(), |n, outcome| {
        settled[n] = true;
        if let Err(err) = outcome {
            let kind = if err.0.is_permanent() {
                GivenUp::Refused
            } else {
                lost += 1;
                GivenUp::Lost
            };
            given_up(&items[n], &err.0, kind);
        }
    });
    // Bounded: while the storage is down, each of the up to `2 n - 1`
    // writes may take its own timeout.
    let _ = tokio::time::timeout(window, pass).await;
    for (item, _) in items.iter().zip(&settled).filter(|(_, s)| !**s) {
        lost += 1;
        given_up(item, &**last, GivenUp::Lost);
    }
    if lost > 0 {
        tracing::error!(
            err = %last, count = lost, ?window,
            "cannot save results; giving them up (their deliveries are not acknowledged: delivered again)"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::super::batch_writer::fake::{Fake, fake};
    use super::*;

    /// What the fake storage wrote, and what the writer gave up.
    type Written = Arc<Mutex<Vec<u32>>>;
    type Told = Arc<Mutex<Vec<(u32, GivenUp)>>>;

    /// A writer over the fake storage that records what it gave up.
    fn writer(
        permanent: u32,
        transient: u32,
        window: Duration,
    ) -> (ResultWriter<u32, Fake>, Written, Told) {
        let written = Arc::new(Mutex::new(Vec::new()));
        let given_up = Arc::new(Mutex::new(Vec::new()));
        let told = Arc::clone(&given_up);
        let writer = ResultWriter::spawn(
            fake(permanent, transient, Arc::clone(&written)),
            move |item: &u32, _: &Fake, why| told.lock().unwrap().push((*item, why)),
            window,
        );
        (writer, written, given_up)
    }

    #[tokio::test]
    async fn the_result_writer_gives_a_refused_item_up_alone() {
        let (writer, written, given_up) = writer(2, u32::MAX, Duration::from_secs(60));
        for n in 0..5 {
            writer.submit(n).await.unwrap();
        }
        writer.flush(Duration::from_secs(10)).await.unwrap();
        assert_eq!(*written.lock().unwrap(), [0, 1, 3, 4]);
        assert_eq!(*given_up.lock().unwrap(), [(2, GivenUp::Refused)]);
    }

    #[tokio::test]
    async fn an_item_that_keeps_failing_for_now_is_lost_alone_after_the_window() {
        let (writer, written, given_up) = writer(u32::MAX, 2, Duration::from_millis(200));
        for n in 0..5 {
            writer.submit(n).await.unwrap();
        }
        // Settled, not failed: the loss is told item by item.
        writer.flush(Duration::from_secs(10)).await.unwrap();
        let mut saved = written.lock().unwrap().clone();
        saved.sort_unstable();
        assert_eq!(saved, [0, 1, 3, 4], "its batch-mates are written");
        assert_eq!(*given_up.lock().unwrap(), [(2, GivenUp::Lost)]);
        // Later items are not affected.
        writer.submit(7).await.unwrap();
        writer.flush(Duration::from_secs(10)).await.unwrap();
        assert!(written.lock().unwrap().contains(&7));
        assert_eq!(given_up.lock().unwrap().len(), 1);
    }
}
