//! Batching of concurrent writes: callers queue items and wait; one task
//! writes whatever has queued up in one statement, and answers each caller.

use std::future::Future;
use std::sync::Arc;

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

impl<T: Send + 'static> Writer<T> {
    /// Spawns the writing task on the current runtime; it ends when every
    /// handle on the writer is dropped.
    pub(crate) fn spawn<F, Fut>(write: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send,
    {
        let (sender, mut receiver) = mpsc::channel::<Request<T>>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (items, replies): (Vec<T>, Vec<_>) = batch.drain(..).unzip();
                let outcome = write(items).await.map_err(Arc::new);
                for reply in replies {
                    let _ = reply.send(outcome.clone());
                }
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
/// by a task that retries until the database takes them; [`flush`] waits
/// until everything accepted before it is written.
///
/// [`flush`]: Recorder::flush
#[derive(Debug)]
pub(crate) struct Recorder<T> {
    /// Assigns positions in send order: the channel is FIFO, so "written up
    /// to n" means every item accepted before the n-th is written.
    sender: tokio::sync::Mutex<(u64, mpsc::Sender<T>)>,
    written: tokio::sync::watch::Receiver<u64>,
}

/// The longest pause between two attempts at a failing batch.
const MAX_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

impl<T: Clone + Send + Sync + 'static> Recorder<T> {
    pub(crate) fn spawn<F, Fut>(write: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send,
    {
        let (sender, mut receiver) = mpsc::channel::<T>(4 * MAX_BATCH);
        let (done, written) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            let mut total = 0u64;
            let mut pause = std::time::Duration::from_millis(50);
            loop {
                if batch.is_empty() && receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
                    return;
                }
                match write(batch.clone()).await {
                    Ok(()) => {
                        total += batch.len() as u64;
                        batch.clear();
                        done.send_replace(total);
                        pause = std::time::Duration::from_millis(50);
                    }
                    Err(err) => {
                        tracing::warn!(%err, count = batch.len(), ?pause, "cannot save results; retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    }
                }
            }
        });
        Self {
            sender: tokio::sync::Mutex::new((0, sender)),
            written,
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

    /// Waits until every item accepted so far is written, at most `limit`.
    pub(crate) async fn flush(&self, limit: std::time::Duration) -> Result<()> {
        let target = self.sender.lock().await.0;
        let mut written = self.written.clone();
        match tokio::time::timeout(limit, written.wait_for(|n| *n >= target)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::WriterStopped),
            Err(_) => Err(Error::FlushTimeout(limit)),
        }
    }
}
