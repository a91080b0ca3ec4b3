//! Pull requests on one long-lived inbox per store handle.
//!
//! A message the server sends to a pull request just as the request ends
//! (nats-server 2.9 can deliver one after the request's timeout status)
//! would be lost with a per-request inbox, and come back only after the
//! claim timeout, counted as delivered once more. On one inbox it stays in
//! the subscription and the next dequeue takes it.

use std::time::Duration;

use async_nats::{Message, StatusCode, Subscriber};
use futures::{FutureExt, StreamExt};
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
}
