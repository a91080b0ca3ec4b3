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
