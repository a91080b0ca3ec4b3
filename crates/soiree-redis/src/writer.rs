//! Batching writes: appends and result records from concurrent callers go
//! out together as one pipeline.
//!
//! The multiplexed connection already lets requests overlap, but one request
//! per command costs a channel hop, a write and a parse each, on both ends.
//! Commands that arrive while pipelines are in flight go out together in
//! the next one (a few are in flight at once), and each caller gets the
//! outcome of its own commands: one failing command fails its own request
//! only.
//!
//! Every request has a deadline, its write timeout after it was handed
//! over. A request still unsent at its deadline, or whose caller stopped
//! waiting, is never sent; a pipeline whose answer does not come by the
//! earliest deadline among its requests fails them all. So a caller hears
//! within its write timeout, whether Redis hangs, the connection is being
//! re-established, or pipelines queue up before it.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Cmd, RedisError, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::{Error, Result};

/// The most requests sent in one pipeline.
const MAX_BATCH: usize = 512;
/// Pipelines of appends in flight at once.
pub(crate) const MAX_IN_FLIGHT: usize = 4;

/// Told why commands nobody waits for were not written.
pub(crate) type OnFailure = Box<dyn FnOnce(&Error) + Send>;

struct Request {
    cmds: Vec<Cmd>,
    /// Told the outcome; `None` for commands nobody waits for (the writer
    /// logs their failure, and tells `on_failure`).
    done: Option<oneshot::Sender<Result<()>>>,
    on_failure: Option<OnFailure>,
    /// Not sent after this; answered by then.
    deadline: Instant,
}

/// A handle on the writer task; the task ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    requests: mpsc::UnboundedSender<Request>,
    /// One pipeline at a time: commands reach Redis in the order handed over.
    ordered: bool,
    timeout: Duration,
}

/// What the writer needs to bound and describe its writes.
#[derive(Debug, Clone)]
pub(crate) struct WriteLimits {
    /// The server's address (`host:port`, no credentials), named in errors.
    pub(crate) server: Arc<str>,
    /// How long a request may take from hand-over to answer.
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("cmds", &self.cmds.len())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer task on the current tokio runtime.
    /// `max_in_flight` pipelines at once: more is faster, one keeps the
    /// order in which commands were handed over.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] outside a tokio runtime.
    pub(crate) fn spawn(
        conn: ConnectionManager,
        max_in_flight: usize,
        limits: WriteLimits,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::InvalidConfig("a RedisStore must be built inside a tokio runtime".into())
        })?;
        let (requests, receiver) = mpsc::unbounded_channel();
        let max_in_flight = max_in_flight.max(1);
        let timeout = limits.timeout;
        runtime.spawn(run(conn, receiver, max_in_flight, limits));
        Ok(Self {
            requests,
            ordered: max_in_flight == 1,
            timeout,
        })
    }

    /// Runs `cmds` in the next pipeline; fails with the first error among
    /// them, or [`Error::Unanswered`] past the write timeout.
    pub(crate) async fn write(&self, cmds: Vec<Cmd>) -> Result<()> {
        self.write_behind(cmds)?.wait().await
    }

    /// Queues commands without waiting for Redis: the returned handle
    /// answers once they were written (or failed). Dropping the handle
    /// before they were sent keeps them from being sent.
    pub(crate) fn write_behind(&self, cmds: Vec<Cmd>) -> Result<Written> {
        let (done, outcome) = oneshot::channel();
        self.send(cmds, Some(done), None)?;
        Ok(Written(outcome))
    }

    /// Queues commands nobody waits for: no completion handle is made; a
    /// failure is logged by the writer and told to `on_failure` (before a
    /// later [`flush`](Self::flush) returns). On an ordered writer,
    /// [`flush`](Self::flush) tells when they are written.
    pub(crate) fn write_detached(
        &self,
        cmds: Vec<Cmd>,
        on_failure: Option<OnFailure>,
    ) -> Result<()> {
        self.send(cmds, None, on_failure)
    }

    fn send(
        &self,
        cmds: Vec<Cmd>,
        done: Option<oneshot::Sender<Result<()>>>,
        on_failure: Option<OnFailure>,
    ) -> Result<()> {
        self.requests
            .send(Request {
                cmds,
                done,
                on_failure,
                deadline: Instant::now() + self.timeout,
            })
            .map_err(|_| gone())
    }

    /// Waits until every command handed to this (ordered) writer before the
    /// call has been sent and answered, successfully or not, or given up at
    /// its deadline; fails with [`Error::Unanswered`] past the write timeout.
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
pub(crate) struct Written(oneshot::Receiver<Result<()>>);

impl Written {
    /// The outcome of the commands: the writer answers every request by
    /// its deadline.
    pub(crate) async fn wait(self) -> Result<()> {
        self.0.await.map_err(|_| gone())?
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
    limits: WriteLimits,
) {
    let mut in_flight = JoinSet::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            received = receiver.recv_many(&mut batch, MAX_BATCH), if in_flight.len() < max_in_flight => {
                if received == 0 {
                    break;
                }
                in_flight.spawn(flush(conn.clone(), std::mem::take(&mut batch), limits.clone()));
            }
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// Sends one pipeline and hands each request the outcome of its commands.
async fn flush(mut conn: ConnectionManager, batch: Vec<Request>, limits: WriteLimits) {
    let now = Instant::now();
    let mut pipe = redis::pipe();
    let mut waiting = Vec::with_capacity(batch.len());
    let mut deadline: Option<Instant> = None;
    let mut expired = 0usize;
    for request in batch {
        if request
            .done
            .as_ref()
            .is_some_and(oneshot::Sender::is_closed)
        {
            // The caller stopped waiting before it was sent: never sent.
            continue;
        }
        if request.deadline <= now {
            // Queued behind pipelines Redis did not answer: give up unsent.
            let err = unanswered(&limits, false);
            if request.cmds.is_empty() || request.done.is_some() {
                settle(request.done, Err(err));
            } else {
                expired += 1;
                if let Some(on_failure) = request.on_failure {
                    on_failure(&err);
                }
            }
            continue;
        }
        deadline = Some(deadline.map_or(request.deadline, |d| d.min(request.deadline)));
        waiting.push((request.cmds.len(), request.done, request.on_failure));
        for cmd in request.cmds {
            pipe.add_command(cmd);
        }
    }
    if expired > 0 {
        tracing::warn!(
            count = expired,
            server = %limits.server,
            timeout = ?limits.timeout,
            "listener results not written: redis did not answer in time (their listeners may run again on redelivery)"
        );
    }
    let Some(deadline) = deadline else { return };
    if waiting.iter().all(|(count, _, _)| *count == 0) {
        // Only flush markers: nothing to send.
        for (_, done, _) in waiting {
            settle(done, Ok(()));
        }
        return;
    }
    let query = pipe.ignore_errors().query_async(&mut conn);
    let replies: RedisResult<Vec<RedisResult<Value>>> = match tokio::time::timeout_at(
        deadline, query,
    )
    .await
    {
        Ok(replies) => replies,
        Err(_) => {
            let detached = waiting
                .iter()
                .filter(|(count, done, _)| *count > 0 && done.is_none())
                .count();
            for (_, done, on_failure) in waiting {
                let err = unanswered(&limits, true);
                if done.is_some() {
                    settle(done, Err(err));
                } else if let Some(on_failure) = on_failure {
                    on_failure(&err);
                }
            }
            if detached > 0 {
                tracing::warn!(
                    count = detached,
                    server = %limits.server,
                    timeout = ?limits.timeout,
                    "listener results may not be written: redis did not answer in time (their listeners may run again on redelivery)"
                );
            }
            return;
        }
    };
    match replies {
        Ok(replies) => {
            let mut replies = replies.into_iter();
            for (count, done, on_failure) in waiting {
                let mut outcome = Ok(());
                let mut answered = 0;
                for reply in replies.by_ref().take(count) {
                    answered += 1;
                    if let (Ok(()), Err(err)) = (&outcome, reply) {
                        outcome = Err(Error::from(err));
                    }
                }
                // A command without a reply was not confirmed: never report
                // it as written.
                if outcome.is_ok() && answered < count {
                    outcome = Err(Error::UnexpectedReply(
                        "redis answered fewer commands than were sent".into(),
                    ));
                }
                tell(on_failure, &outcome);
                settle(done, outcome);
            }
        }
        Err(err) => {
            for (_, done, on_failure) in waiting {
                let outcome = Err(connection_error(&limits, err.clone()));
                tell(on_failure, &outcome);
                settle(done, outcome);
            }
        }
    }
}

/// A write Redis did not answer by its deadline.
fn unanswered(limits: &WriteLimits, sent: bool) -> Error {
    Error::Unanswered {
        server: limits.server.to_string(),
        after: limits.timeout,
        sent,
    }
}

/// A pipeline that failed as a whole: the connection's fault, named by the
/// server's address.
fn connection_error(limits: &WriteLimits, err: RedisError) -> Error {
    match Error::from(err) {
        Error::Redis(source) if source.is_timeout() => unanswered(limits, true),
        Error::Redis(source)
            if source.is_io_error()
                || source.is_timeout()
                || source.is_connection_dropped()
                || source.is_connection_refusal() =>
        {
            Error::Connect {
                server: limits.server.to_string(),
                cause: source,
            }
        }
        other => other,
    }
}

/// Tells `on_failure` of a failure of commands nobody waits for.
fn tell(on_failure: Option<OnFailure>, outcome: &Result<()>) {
    if let (Some(on_failure), Err(err)) = (on_failure, outcome) {
        on_failure(err);
    }
}

/// Tells the waiter, or logs the failure of commands nobody waits for.
fn settle(done: Option<oneshot::Sender<Result<()>>>, outcome: Result<()>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_command_fails_its_own_request_only() {
        let Some(server) = soiree_test::redis::RedisServer::start_or_skip() else {
            return;
        };
        let client = redis::Client::open(server.url()).unwrap();
        let conn = ConnectionManager::new(client).await.unwrap();
        let limits = WriteLimits {
            server: "test".into(),
            timeout: Duration::from_secs(10),
        };
        let writer = Writer::spawn(conn.clone(), 1, limits).unwrap();
        writer
            .write(vec![Cmd::set("plain", "not a set")])
            .await
            .unwrap();
        // Handed over before the writer task runs (a current-thread
        // runtime): one pipeline carries all three.
        let first = writer.write_behind(vec![Cmd::sadd("set-1", "a")]).unwrap();
        let poison = writer
            .write_behind(vec![Cmd::sadd("set-2", "b"), Cmd::sadd("plain", "x")])
            .unwrap();
        let last = writer.write_behind(vec![Cmd::sadd("set-3", "c")]).unwrap();
        let limit = Duration::from_secs(20);
        let (first, poison, last) = tokio::time::timeout(limit, async {
            (first.wait().await, poison.wait().await, last.wait().await)
        })
        .await
        .expect("answered in time");
        first.expect("a neighbour before the poison item is written");
        last.expect("a neighbour after the poison item is written");
        let err = poison.expect_err("the poison item fails");
        assert_eq!(err.code(), Some("WRONGTYPE"), "{err}");
        let mut conn = conn;
        for (key, member) in [("set-1", "a"), ("set-2", "b"), ("set-3", "c")] {
            let present: bool = Cmd::sismember(key, member)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(present, "{key}");
        }
    }

    #[tokio::test]
    async fn a_request_whose_caller_gave_up_before_it_was_sent_is_never_sent() {
        let Some(server) = soiree_test::redis::RedisServer::start_or_skip() else {
            return;
        };
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = ConnectionManager::new(client).await.unwrap();
        let limits = WriteLimits {
            server: "test".into(),
            timeout: Duration::from_secs(10),
        };
        let writer = Writer::spawn(conn.clone(), 1, limits).unwrap();
        drop(writer.write_behind(vec![Cmd::set("dropped", "1")]).unwrap());
        let kept = writer.write_behind(vec![Cmd::set("kept", "1")]).unwrap();
        tokio::time::timeout(Duration::from_secs(20), kept.wait())
            .await
            .expect("answered in time")
            .unwrap();
        let exists: u64 = Cmd::exists(&["dropped", "kept"][..])
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(exists, 1, "only the request still awaited was sent");
    }
}
