//! Batched writes with a per-item outcome: callers queue items, one task
//! writes whatever has queued up in one round trip, and each item gets its
//! own outcome.
//!
//! One poison item must not fail its batch-mates: a batch that fails with a
//! permanent error ([`BatchError::is_permanent`]) is split in halves, down
//! to single items, so that only the offending items fail, each with its
//! own error (at most `2 n - 1` writes for `n` items). A transient error
//! (the connection) fails the whole batch here; the
//! [`ResultWriter`](super::ResultWriter) retries it for a bounded window.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

/// Items written in one round trip at most.
pub(super) const MAX_BATCH: usize = 1000;

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
    /// [`ResultWriter::flush`](super::ResultWriter::flush) waited longer than its limit.
    Timeout(Duration),
}

impl<E: fmt::Display> fmt::Display for WriteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stopped => f.write_str("the store's writer task stopped (its runtime shut down)"),
            Self::Failed(err) => write!(f, "{err}"),
            Self::Timeout(limit) => write!(f, "earlier writes not done within {limit:?}"),
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

/// A fake storage for the writers' tests.
#[cfg(test)]
pub(super) mod fake {
    use std::sync::{Arc, Mutex};

    use super::BatchError;

    #[derive(Debug, thiserror::Error)]
    pub(crate) enum Fake {
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
    pub(crate) fn fake(
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
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::fake::fake;
    use super::*;

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
}
