//! The queue: publish with acknowledgement, pull, ack, fail, extend.

use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_trait::async_trait;
use soiree::{Delivery, EventQueue, FailedDelivery, StoredEvent};

use crate::builder::FailurePolicy;
use crate::names::message_id;
use crate::{NatsStore, receipt};

/// Acknowledgements in flight at once per call.
const ACKS_IN_FLIGHT: usize = 64;

/// The longest NAK delay under [`FailurePolicy::Redeliver`].
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

impl NatsStore {
    /// Sends `kind` for each receipt and waits until the server confirmed
    /// each one (a request, not a bare publish: an acknowledgement that
    /// got lost is an error, not a silent redelivery later).
    async fn ack_all(
        &self,
        receipts: &[String],
        kind: impl Fn(&str) -> AckKind,
    ) -> crate::Result<()> {
        let mut first = None;
        for chunk in receipts.chunks(ACKS_IN_FLIGHT) {
            let mut sent = Vec::with_capacity(chunk.len());
            for receipt in chunk {
                let payload: bytes::Bytes = kind(receipt).into();
                sent.push(self.ack_one(receipt, payload));
            }
            for done in futures::future::join_all(sent).await {
                if let Err(err) = done {
                    first.get_or_insert(err);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn ack_one(&self, receipt: &str, payload: bytes::Bytes) -> crate::Result<()> {
        if receipt::parse(receipt).is_none() {
            return Err(self.err("ack", receipt, "not a receipt of this store"));
        }
        self.inner
            .client
            .request(receipt.to_owned(), payload)
            .await
            .map(|_| ())
            .map_err(|err| self.err("ack", &self.inner.names.group, err))
    }

    /// A delivery for `message`, or `None` when the store set it aside
    /// (not an event, delivered too often, or filtered out).
    async fn delivery(&self, message: async_nats::Message) -> crate::Result<Option<Delivery>> {
        let Some(reply) = message.reply.as_ref().map(|r| r.to_string()) else {
            return Ok(None);
        };
        let Some(receipt) = receipt::parse(&reply) else {
            return Ok(None);
        };
        let options = &self.inner.options;
        let event = match serde_json::from_slice::<StoredEvent>(&message.payload) {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(
                    sequence = receipt.sequence,
                    stream = %self.inner.names.events_stream,
                    %err,
                    "an entry of the events stream is not an event: moved to the dead letters"
                );
                self.move_to_dead_letters(
                    receipt.sequence,
                    receipt.delivered,
                    format!("not an event: {err}"),
                    Some(message.payload.clone()),
                )
                .await?;
                self.ack_all(&[reply], |_| AckKind::Term).await?;
                return Ok(None);
            }
        };
        if let Some(pattern) = &self.inner.client_filter
            && !soiree::topic_matches(pattern, &event.topic)
        {
            self.ack_all(&[reply], |_| AckKind::Ack).await?;
            return Ok(None);
        }
        if receipt.delivered > options.max_deliveries {
            let error = format!(
                "delivered {} times without an acknowledgement (max_deliveries {})",
                receipt.delivered - 1,
                options.max_deliveries
            );
            tracing::warn!(sequence = receipt.sequence, %error, "moved to the dead letters");
            self.move_to_dead_letters(
                receipt.sequence,
                receipt.delivered - 1,
                error,
                Some(message.payload.clone()),
            )
            .await?;
            self.ack_all(&[reply], |_| AckKind::Term).await?;
            return Ok(None);
        }
        Ok(Some(Delivery {
            receipt: reply,
            event,
            delivery_count: receipt.delivered,
        }))
    }

    fn retry_delay(&self, delivered: u32) -> Duration {
        let doublings = delivered.saturating_sub(1).min(16);
        self.inner
            .options
            .retry_delay
            .saturating_mul(1 << doublings)
            .min(MAX_RETRY_DELAY)
    }
}

#[async_trait]
impl EventQueue for NatsStore {
    async fn enqueue(&self, event: &StoredEvent) -> soiree::Result<()> {
        let msg_id = soiree::inspect::event_id_text(event).map(|id| message_id(&id));
        self.publish(event, msg_id).await
    }

    async fn dequeue(&self, max: usize, wait: Duration) -> soiree::Result<Vec<Delivery>> {
        let max = max.max(1);
        let mut messages = self.pull(max, None).await?;
        if messages.is_empty() && !wait.is_zero() {
            messages = self.pull(1, Some(wait)).await?;
            if !messages.is_empty() && max > 1 {
                messages.extend(self.pull(max - 1, None).await?);
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

    async fn ack(&self, receipts: &[String]) -> soiree::Result<()> {
        // Results before the acknowledgement; a result that was not
        // confirmed is logged, and its delivery acknowledged all the same
        // (the listener ran; its record is what was lost).
        if let Err(err) = self.flush_writes().await {
            tracing::warn!(%err, "listener results lost");
        }
        Ok(self.ack_all(receipts, |_| AckKind::Ack).await?)
    }

    async fn fail(&self, failures: &[FailedDelivery]) -> soiree::Result<()> {
        if let Err(err) = self.flush_writes().await {
            tracing::warn!(%err, "listener results lost");
        }
        let policy = self.inner.options.on_failure;
        let mut first: Option<soiree::Error> = None;
        for failure in failures {
            let Some(receipt) = receipt::parse(&failure.receipt) else {
                first.get_or_insert(
                    self.err("fail", &failure.receipt, "not a receipt of this store")
                        .into(),
                );
                continue;
            };
            let receipts = std::slice::from_ref(&failure.receipt);
            let done = match policy {
                FailurePolicy::Acknowledge => self.ack_all(receipts, |_| AckKind::Ack).await,
                FailurePolicy::Redeliver
                    if receipt.delivered < self.inner.options.max_deliveries =>
                {
                    let delay = self.retry_delay(receipt.delivered);
                    self.ack_all(receipts, |_| AckKind::Nak(Some(delay))).await
                }
                _ => match self
                    .move_to_dead_letters(
                        receipt.sequence,
                        receipt.delivered,
                        failure.error.clone(),
                        None,
                    )
                    .await
                {
                    Ok(()) => self.ack_all(receipts, |_| AckKind::Term).await,
                    Err(err) => Err(err),
                },
            };
            if let Err(err) = done {
                first.get_or_insert(err.into());
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn dead_letters_failure(&self, delivery_count: u32) -> bool {
        match self.inner.options.on_failure {
            FailurePolicy::DeadLetter => true,
            FailurePolicy::Redeliver => delivery_count >= self.inner.options.max_deliveries,
            FailurePolicy::Acknowledge => false,
        }
    }

    async fn release(&self, receipts: &[String]) -> soiree::Result<()> {
        Ok(self.ack_all(receipts, |_| AckKind::Nak(None)).await?)
    }

    fn close_timeout(&self) -> Duration {
        self.inner.options.request_timeout
    }

    fn lease_interval(&self) -> Option<Duration> {
        Some(self.inner.options.claim_timeout / 3)
    }

    /// Sends a progress acknowledgement for each running delivery (its
    /// AckWait starts again). With no receipts it returns at once: this
    /// store reads nothing ahead, so there is no lease to keep.
    async fn extend(&self, receipts: &[String]) -> soiree::Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        Ok(self.ack_all(receipts, |_| AckKind::Progress).await?)
    }

    async fn backlog(&self) -> soiree::Result<u64> {
        let mut consumer = self.inner.consumer.clone();
        let info = consumer
            .info()
            .await
            .map_err(|err| self.err("consumer info", &self.inner.names.group, err))?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }
}
