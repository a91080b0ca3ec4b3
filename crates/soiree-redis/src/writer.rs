//! Batching writes: appends and result records from concurrent callers go
//! out together as one pipeline.
//!
//! The multiplexed connection already lets requests overlap, but one request
//! per command costs a channel hop, a write and a parse each, on both ends.
//! Commands that arrive while pipelines are in flight go out together in
//! the next one (a few are in flight at once), and each caller gets the outcome of its own commands.

use redis::aio::ConnectionManager;
use redis::{Cmd, RedisError, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::{Error, Result};

/// The most requests sent in one pipeline.
const MAX_BATCH: usize = 512;
/// The most pipelines awaiting their replies at once.
/// Pipelines of appends in flight at once.
pub(crate) const MAX_IN_FLIGHT: usize = 4;

struct Request {
    cmds: Vec<Cmd>,
    /// Told the outcome; `None` for commands nobody waits for (the writer
    /// logs their failure).
    done: Option<oneshot::Sender<RedisResult<()>>>,
}

/// A handle on the writer task; the task ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    requests: mpsc::UnboundedSender<Request>,
    /// One pipeline at a time: commands reach Redis in the order handed over.
    ordered: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("cmds", &self.cmds.len())
            .finish()
    }
}

impl Writer {
    /// Starts the writer task on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] outside a tokio runtime.
    /// `max_in_flight` pipelines at once: more is faster, one keeps the
    /// order in which commands were handed over.
    pub(crate) fn spawn(conn: ConnectionManager, max_in_flight: usize) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::InvalidConfig("a RedisStore must be built inside a tokio runtime".into())
        })?;
        let (requests, receiver) = mpsc::unbounded_channel();
        let max_in_flight = max_in_flight.max(1);
        runtime.spawn(run(conn, receiver, max_in_flight));
        Ok(Self {
            requests,
            ordered: max_in_flight == 1,
        })
    }

    /// Runs `cmds` in the next pipeline; fails with the first error among them.
    pub(crate) async fn write(&self, cmds: Vec<Cmd>) -> Result<()> {
        self.write_behind(cmds)?.wait().await
    }

    /// Queues commands without waiting for Redis: the returned handle
    /// answers once they were written (or failed).
    pub(crate) fn write_behind(&self, cmds: Vec<Cmd>) -> Result<Written> {
        let (done, outcome) = oneshot::channel();
        self.requests
            .send(Request {
                cmds,
                done: Some(done),
            })
            .map_err(|_| gone())?;
        Ok(Written(outcome))
    }

    /// Queues commands nobody waits for: no completion handle is made, and
    /// a failure is logged by the writer. On an ordered writer,
    /// [`flush`](Self::flush) tells when they are written.
    pub(crate) fn write_detached(&self, cmds: Vec<Cmd>) -> Result<()> {
        self.requests
            .send(Request { cmds, done: None })
            .map_err(|_| gone())
    }

    /// Waits until every command handed to this (ordered) writer before the
    /// call has been sent and answered, successfully or not.
    pub(crate) async fn flush(&self) -> Result<()> {
        // An empty request is answered once its pipeline is; pipelines run
        // one at a time, so every earlier one is answered too.
        debug_assert!(
            self.ordered,
            "flush needs a writer with one pipeline in flight"
        );
        self.write(Vec::new()).await
    }
}

/// Commands handed to the writer, not yet known to be written.
#[derive(Debug)]
pub(crate) struct Written(oneshot::Receiver<RedisResult<()>>);

impl Written {
    pub(crate) async fn wait(self) -> Result<()> {
        self.0.await.map_err(|_| gone())?.map_err(Error::from)
    }
}

fn gone() -> Error {
    Error::Redis(RedisError::from(std::io::Error::other(
        "the store's writer task stopped (its tokio runtime shut down)",
    )))
}

async fn run(
    conn: ConnectionManager,
    mut receiver: mpsc::UnboundedReceiver<Request>,
    max_in_flight: usize,
) {
    let mut in_flight = JoinSet::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            received = receiver.recv_many(&mut batch, MAX_BATCH), if in_flight.len() < max_in_flight => {
                if received == 0 {
                    break;
                }
                in_flight.spawn(flush(conn.clone(), std::mem::take(&mut batch)));
            }
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// Sends one pipeline and hands each request the outcome of its commands.
async fn flush(mut conn: ConnectionManager, batch: Vec<Request>) {
    if batch.iter().all(|request| request.cmds.is_empty()) {
        // Only flush markers: nothing to send.
        for request in batch {
            if let Some(done) = request.done {
                let _ = done.send(Ok(()));
            }
        }
        return;
    }
    let mut pipe = redis::pipe();
    let mut waiting = Vec::with_capacity(batch.len());
    for request in batch {
        waiting.push((request.cmds.len(), request.done));
        for cmd in request.cmds {
            pipe.add_command(cmd);
        }
    }
    let replies: RedisResult<Vec<RedisResult<Value>>> =
        pipe.ignore_errors().query_async(&mut conn).await;
    match replies {
        Ok(replies) => {
            let mut replies = replies.into_iter();
            for (count, done) in waiting {
                let mut outcome = Ok(());
                let mut answered = 0;
                for reply in replies.by_ref().take(count) {
                    answered += 1;
                    if let (Ok(()), Err(err)) = (&outcome, reply) {
                        outcome = Err(err);
                    }
                }
                // A command without a reply was not confirmed: never report
                // it as written.
                if outcome.is_ok() && answered < count {
                    outcome = Err(RedisError::from(std::io::Error::other(
                        "Redis answered fewer commands than were sent",
                    )));
                }
                settle(done, outcome);
            }
        }
        Err(err) => {
            for (_, done) in waiting {
                settle(done, Err(err.clone()));
            }
        }
    }
}

/// Tells the waiter, or logs the failure of commands nobody waits for.
fn settle(done: Option<oneshot::Sender<RedisResult<()>>>, outcome: RedisResult<()>) {
    match done {
        Some(done) => {
            let _ = done.send(outcome);
        }
        None => {
            if let Err(err) = outcome {
                tracing::warn!(%err, "a listener result was not written");
            }
        }
    }
}
