//! Pull requests on one long-lived inbox per store handle, and the dequeue
//! made of them.
//!
//! A message the server sends to a pull request just as the request ends
//! (nats-server 2.9 can deliver one after the request's timeout status)
//! would be lost with a per-request inbox, and come back only after the
//! claim timeout, counted as delivered once more. On one inbox it stays in
//! the subscription and the next dequeue takes it.

use std::time::Duration;

use async_nats::{Message, StatusCode, Subscriber};
use futures::{FutureExt, StreamExt};
use soiree::Delivery;
use tokio::sync::Mutex;

use crate::NatsStore;

/// The store handle's pull inbox and its subscription.
#[derive(Debug)]
pub(crate) struct Puller {
    inbox: String,
    /// One dequeue at a time reads it: each reads its own request's
    /// messages up to its end.
    sub: Mutex<Subscriber>,
}

impl Puller {
    pub(crate) async fn new(
        client: &async_nats::Client,
    ) -> Result<Self, async_nats::SubscribeError> {
        let inbox = client.new_inbox();
        let sub = client.subscribe(inbox.clone()).await?;
        Ok(Self {
            inbox,
            sub: Mutex::new(sub),
        })
    }
}

impl NatsStore {
    /// Up to `max` messages: those already in the inbox, else the answer
    /// to one pull request (`wait`: how long the server holds it for the
    /// first message; `None`: answered at once).
    pub(crate) async fn pull(
        &self,
        max: usize,
        wait: Option<Duration>,
    ) -> crate::Result<Vec<Message>> {
        let puller = &self.inner.puller;
        let mut sub = puller.sub.lock().await;
        let mut out = Vec::new();
        // Stragglers of earlier requests first.
        while out.len() < max {
            match sub.next().now_or_never() {
                Some(Some(message)) if message.status.is_none() => out.push(message),
                Some(Some(_status)) => {}
                _ => break,
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
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
            .publish_with_reply(subject, puller.inbox.clone(), request.to_string().into())
            .await
            .map_err(|err| self.err("pull", &names.group, err))?;
        // The server ends the request with a status (404: nothing now,
        // 408: expired); this bounds the wait should that be lost.
        let deadline = tokio::time::Instant::now()
            + wait.unwrap_or_default()
            + self.inner.options.request_timeout;
        while out.len() < max {
            match tokio::time::timeout_at(deadline, sub.next()).await {
                Ok(Some(message)) => match message.status {
                    None => out.push(message),
                    Some(StatusCode::IDLE_HEARTBEAT) => {}
                    Some(StatusCode::NOT_FOUND | StatusCode::TIMEOUT) => break,
                    Some(status) => {
                        if out.is_empty() {
                            let why = message
                                .description
                                .clone()
                                .unwrap_or_else(|| status.to_string());
                            return Err(self.err("pull", &names.group, why));
                        }
                        break;
                    }
                },
                Ok(None) => return Err(self.err("pull", &names.group, "the subscription ended")),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// One pull of up to `max` deliveries of the group's own consumer
    /// (the unkeyed events), with the successes of their events.
    pub(crate) async fn dequeue_unkeyed(
        &self,
        max: usize,
        wait: Duration,
    ) -> crate::Result<Vec<Delivery>> {
        let deliveries = self.take(max.max(1), wait).await?;
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
