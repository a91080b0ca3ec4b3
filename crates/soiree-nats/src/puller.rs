//! Pull requests on one long-lived inbox per store handle, and the dequeue
//! made of them.
//!
//! A message the server sends to a pull request just as the request ends
//! (nats-server 2.9 can deliver one after the request's timeout status)
//! would be lost with a per-request inbox, and come back only after the
//! claim timeout, counted as delivered once more. On one inbox it stays in
//! the subscription and the next dequeue takes it.
//!
//! A dequeue that took a full batch asks for the next one before it
//! returns (a request sent ahead, answered while the bus runs this batch
//! and the store looks up its successes): the next dequeue reads that
//! answer instead of waiting a round trip for its own. Its deliveries'
//! claim runs from the request; when the next dequeue comes late (a
//! quarter of the claim timeout after the request), it extends them
//! before handing them to the bus (or, a whole claim timeout late, leaves
//! them to their redelivery), and the bus's close hands back those not
//! taken yet (see `EventQueue::release`).

use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::{Message, StatusCode, Subscriber};
use futures::{FutureExt, StreamExt};
use soiree::Delivery;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::NatsStore;

/// The store handle's pull inbox and its subscription.
#[derive(Debug)]
pub(crate) struct Puller {
    inbox: String,
    /// One dequeue at a time reads it: each reads its own request's
    /// messages up to its end.
    sub: Mutex<Inbox>,
}

#[derive(Debug)]
struct Inbox {
    sub: Subscriber,
    /// The request sent ahead whose answer was not read to its end yet.
    ahead: Option<Ahead>,
}

/// A pull request sent ahead (`NatsStore::pull_ahead`).
#[derive(Debug, Clone, Copy)]
struct Ahead {
    /// Messages it asked for, and those read so far.
    asked: usize,
    read: usize,
    sent: Instant,
}

/// How a request's answer was read.
enum Read {
    /// Up to its end: all it asked for, its end status, or its deadline.
    Ended,
    /// `max` messages read; more may follow.
    Full,
}

impl Puller {
    pub(crate) async fn new(
        client: &async_nats::Client,
    ) -> Result<Self, async_nats::SubscribeError> {
        let inbox = client.new_inbox();
        let sub = client.subscribe(inbox.clone()).await?;
        Ok(Self {
            inbox,
            sub: Mutex::new(Inbox { sub, ahead: None }),
        })
    }
}

impl NatsStore {
    /// Up to `max` messages: the answer to the request sent ahead, else
    /// those already in the inbox, else the answer to one pull request
    /// (`wait`: how long the server holds it for the first message;
    /// `None`: answered at once).
    pub(crate) async fn pull(
        &self,
        max: usize,
        wait: Option<Duration>,
    ) -> crate::Result<Vec<Message>> {
        let puller = &self.inner.puller;
        let mut inbox = puller.sub.lock().await;
        let mut out = Vec::new();
        if let Some(mut ahead) = inbox.ahead.take() {
            let deadline = ahead.sent + self.inner.options.request_timeout;
            let limit = max.min(ahead.asked - ahead.read);
            let read = self
                .read_answer(&mut inbox.sub, &mut out, limit, deadline)
                .await?;
            ahead.read += out.len();
            if matches!(read, Read::Full) && ahead.read < ahead.asked {
                inbox.ahead = Some(ahead);
            }
            if ahead.sent.elapsed() >= self.inner.options.claim_timeout {
                // Claims already over: the server delivers them again (to
                // whichever consumer asks first), counted once more.
                out.clear();
            }
            drop(inbox);
            if !out.is_empty() {
                self.extend_if_late(&out, ahead.sent).await?;
                return Ok(out);
            }
            inbox = puller.sub.lock().await;
        }
        // Stragglers of earlier requests first.
        while out.len() < max {
            match inbox.sub.next().now_or_never() {
                Some(Some(message)) if message.status.is_none() => out.push(message),
                Some(Some(_status)) => {}
                _ => break,
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        self.request(max, wait, &puller.inbox).await?;
        // The server ends the request with a status (404: nothing now,
        // 408: expired); this bounds the wait should that be lost.
        let deadline =
            Instant::now() + wait.unwrap_or_default() + self.inner.options.request_timeout;
        self.read_answer(&mut inbox.sub, &mut out, max, deadline)
            .await?;
        Ok(out)
    }

    /// Sends a pull request for `max` messages to `inbox`.
    async fn request(&self, max: usize, wait: Option<Duration>, inbox: &str) -> crate::Result<()> {
        let names = &self.inner.names;
        let subject = format!(
            "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
            names.events_stream, names.group
        );
        let request = match wait {
            Some(wait) => serde_json::json!({
                "batch": max,
                "expires": u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX),
            }),
            None => serde_json::json!({ "batch": max, "no_wait": true }),
        };
        self.inner
            .client
            .publish_with_reply(subject, inbox.to_owned(), request.to_string().into())
            .await
            .map_err(|err| self.err("pull", &names.group, err))
    }

    /// Reads a request's messages into `out` until it holds `max`, the
    /// request's end status, or `deadline`.
    async fn read_answer(
        &self,
        sub: &mut Subscriber,
        out: &mut Vec<Message>,
        max: usize,
        deadline: Instant,
    ) -> crate::Result<Read> {
        let group = &self.inner.names.group;
        while out.len() < max {
            match tokio::time::timeout_at(deadline, sub.next()).await {
                Ok(Some(message)) => match message.status {
                    None => out.push(message),
                    Some(StatusCode::IDLE_HEARTBEAT) => {}
                    Some(StatusCode::NOT_FOUND | StatusCode::TIMEOUT) => return Ok(Read::Ended),
                    Some(status) => {
                        if out.is_empty() {
                            let why = message
                                .description
                                .clone()
                                .unwrap_or_else(|| status.to_string());
                            return Err(self.err("pull", group, why));
                        }
                        return Ok(Read::Ended);
                    }
                },
                Ok(None) => return Err(self.err("pull", group, "the subscription ended")),
                Err(_) => return Ok(Read::Ended),
            }
        }
        Ok(Read::Full)
    }

    /// Asks for the next `max` messages without waiting for them: the next
    /// [`pull`](Self::pull) reads the answer. Nothing when a request sent
    /// ahead is still being read; a request that cannot be sent is left
    /// out (the next pull asks itself).
    async fn pull_ahead(&self, max: usize) {
        let puller = &self.inner.puller;
        let mut inbox = puller.sub.lock().await;
        if inbox.ahead.is_some() {
            return;
        }
        match self.request(max, None, &puller.inbox).await {
            Ok(()) => {
                inbox.ahead = Some(Ahead {
                    asked: max,
                    read: 0,
                    sent: Instant::now(),
                });
            }
            Err(err) => tracing::debug!(%err, "cannot ask ahead for deliveries"),
        }
    }

    /// Extends the claim of `messages`, answered to a request sent at
    /// `sent`, when that was a quarter of the claim timeout ago or more:
    /// the bus keeps the claims of what it holds from now on, at intervals
    /// that assume a fresh claim.
    async fn extend_if_late(&self, messages: &[Message], sent: Instant) -> crate::Result<()> {
        if sent.elapsed() < self.inner.options.claim_timeout / 4 {
            return Ok(());
        }
        let receipts = crate::receipt::of_all(messages);
        self.ack_all(&receipts, |_| AckKind::Progress).await
    }

    /// The receipts of the messages taken ahead and not handed out: the
    /// rest of the answer to the request sent ahead (read within the
    /// request timeout) and what else is in the inbox now. Messages that
    /// arrive later come back after the claim timeout.
    pub(crate) async fn take_held_ahead(&self) -> Vec<String> {
        let puller = &self.inner.puller;
        let mut inbox = puller.sub.lock().await;
        let mut messages = Vec::new();
        if let Some(ahead) = inbox.ahead.take() {
            let deadline = ahead.sent + self.inner.options.request_timeout;
            let rest = ahead.asked - ahead.read;
            if let Err(err) = self
                .read_answer(&mut inbox.sub, &mut messages, rest, deadline)
                .await
            {
                tracing::debug!(%err, "the request sent ahead failed");
            }
        }
        while let Some(Some(message)) = inbox.sub.next().now_or_never() {
            if message.status.is_none() {
                messages.push(message);
            }
        }
        crate::receipt::of_all(&messages)
    }

    /// One pull of up to `max` deliveries of the group's own consumer
    /// (the unkeyed events), with the successes of their events. With
    /// `ahead`, a full batch asks for the next before the successes are
    /// looked up (see the module docs).
    pub(crate) async fn dequeue_unkeyed(
        &self,
        max: usize,
        wait: Duration,
        ahead: bool,
    ) -> crate::Result<Vec<Delivery>> {
        let size = max.max(1);
        let deliveries = self.take(size, wait).await?;
        if ahead && deliveries.len() >= size {
            self.pull_ahead(size).await;
        }
        self.prefetch_successes(&deliveries).await;
        Ok(deliveries)
    }

    /// Up to `size` deliveries from the server: those there are now, else
    /// the first to arrive within `wait` and those there are then.
    pub(crate) async fn take(&self, size: usize, wait: Duration) -> crate::Result<Vec<Delivery>> {
        let mut messages = self.pull(size, None).await?;
        if messages.is_empty() && !wait.is_zero() {
            // A request for one: one for more would be held until all
            // arrived or `wait` passed.
            messages = self
                .pull(1, Some(long_poll(wait, self.inner.options.claim_timeout)))
                .await?;
            if !messages.is_empty() && size > 1 {
                messages.extend(self.pull(size - 1, None).await?);
            }
        }
        let mut deliveries = Vec::with_capacity(messages.len());
        for message in messages {
            if let Some(delivery) = self.delivery(message).await? {
                deliveries.push(delivery);
            }
        }
        Ok(deliveries)
    }
}

/// How long a waiting pull request lasts on the server: `wait`, at most
/// 0.382 of the claim timeout (the caller may ask again).
///
/// nats-server 2.9.10 (one server and an R3 cluster alike) can hand a
/// redelivery to a pull request that expires at that very instant: it
/// counts the delivery, but neither the message nor the request's timeout
/// status reaches the client, and the message comes back only after
/// another claim timeout, counted once more (reproduced with bare
/// async-nats: AckWait 1 s, a request expiring after 1 s sent right after
/// the first delivery; 3 redeliveries of 32 counted 3 instead of 2, none
/// with requests of 1.5 s). A consumer that asks again at once after a
/// delivery with requests as long as the claim timeout meets that
/// delivery's redelivery exactly as its request expires; requests of 0.382
/// of it (no small multiple of which is a whole claim timeout) do not
/// line up with it. A redelivery can still meet an expiry by chance, with
/// odds of about the server's reaction time over the request's length.
fn long_poll(wait: Duration, claim: Duration) -> Duration {
    wait.min(claim.mul_f64(0.382)).max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_polls_never_last_a_whole_claim_timeout() {
        let claim = Duration::from_secs(1);
        assert_eq!(
            long_poll(Duration::from_millis(100), claim),
            Duration::from_millis(100)
        );
        for wait in [claim, claim * 2, claim + Duration::from_millis(500)] {
            let poll = long_poll(wait, claim);
            assert!(poll < claim / 2, "{poll:?}");
            for k in 1..=5u32 {
                let distance = (poll * k)
                    .abs_diff(claim)
                    .min((poll * k).abs_diff(claim * 2));
                assert!(distance >= Duration::from_millis(50), "{k} × {poll:?}");
            }
        }
    }
}
