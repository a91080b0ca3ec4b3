//! The queue: publish with acknowledgement, pull, ack, fail, extend.

use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_trait::async_trait;
use soiree::{Delivery, EventQueue, FailedDelivery, StoredEvent};

use crate::builder::FailurePolicy;
use crate::names::message_id;
use crate::{NatsStore, receipt};

/// Acknowledgements confirmed by one request.
const ACKS_PER_CONFIRMATION: usize = 512;

/// Times [`EventQueue::backlog`] asks again when the consumer may not have
/// seen this handle's last event yet.
const BACKLOG_RECHECKS: usize = 20;

/// Deliveries the bus takes per dequeue at most while it keeps asking
/// ([`EventQueue::read_ahead`]): a pull request per dequeue of one or two
/// would cost a round trip per event or two.
const READ_AHEAD: usize = 64;

/// The longest NAK delay under [`FailurePolicy::Redeliver`].
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

impl NatsStore {
    /// Sends `kind` for each receipt and waits until the server confirmed
    /// them: all but the last of each batch as plain messages, the last as
    /// a request, whose answer comes once the server has processed the
    /// ones before it (a connection's messages are processed in order). An
    /// acknowledgement that got lost is then an error, not a silent
    /// redelivery later, with one round trip per batch; should the
    /// connection drop between them, those sent before the request may be
    /// lost and their deliveries come back after the claim timeout (at
    /// least once).
    pub(crate) async fn ack_all(
        &self,
        receipts: &[String],
        kind: impl Fn(&str) -> AckKind,
    ) -> crate::Result<()> {
        let mut first = None;
        let mut valid = Vec::with_capacity(receipts.len());
        for receipt in receipts {
            if receipt::parse(receipt).is_some() {
                valid.push(receipt);
            } else {
                first.get_or_insert(self.err("ack", receipt, "not a receipt of this store"));
            }
        }
        for chunk in valid.chunks(ACKS_PER_CONFIRMATION) {
            let Some((last, before)) = chunk.split_last() else {
                continue;
            };
            let mut sent = Ok(());
            for receipt in before {
                let payload: bytes::Bytes = kind(receipt).into();
                sent = self
                    .inner
                    .client
                    .publish((*receipt).clone(), payload)
                    .await
                    .map_err(|err| self.err("ack", &self.inner.names.group, err));
                if sent.is_err() {
                    break;
                }
            }
            let done = match sent {
                Ok(()) => self.ack_one(last, kind(last).into()).await,
                Err(err) => Err(err),
            };
            if let Err(err) = done {
                first.get_or_insert(err);
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn ack_one(&self, receipt: &str, payload: bytes::Bytes) -> crate::Result<()> {
        self.inner
            .client
            .request(receipt.to_owned(), payload)
            .await
            .map(|_| ())
            .map_err(|err| self.err("ack", &self.inner.names.group, err))
    }

    /// A delivery for `message`, or `None` when the store set it aside
    /// (not an event, delivered too often, or filtered out).
    pub(crate) async fn delivery(
        &self,
        message: async_nats::Message,
    ) -> crate::Result<Option<Delivery>> {
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

    /// Whether the group's consumer takes events of `topic`.
    pub(crate) fn for_this_group(&self, topic: &str) -> bool {
        self.inner
            .options
            .filter
            .as_deref()
            .is_none_or(|pattern| soiree::topic_matches(pattern, topic))
    }

    /// Waits until the results written so far are confirmed, and returns
    /// the items to settle: not those with a result of their event lost
    /// (not confirmed). A flush that fails has marked the events of the
    /// records it could not confirm.
    async fn results_settled<T: Clone>(&self, items: &[T], receipt: impl Fn(&T) -> &str) -> Vec<T> {
        if let Err(err) = self.flush_writes().await {
            tracing::warn!(%err, "listener results not confirmed; their deliveries are not acknowledged");
        }
        self.inner.dedup_cache.settleable(items, receipt)
    }

    /// The end of a settling call of `receipts` that settled `settled`:
    /// forgets what it settled (all of them once it succeeded; the
    /// deliveries held back stay marked for a call tried again) and
    /// reports those held back.
    fn settled<E: Into<soiree::Error>>(
        &self,
        receipts: &[String],
        settled: &[String],
        done: std::result::Result<(), E>,
    ) -> soiree::Result<()> {
        if let Err(err) = done {
            self.inner.dedup_cache.remove(settled);
            return Err(err.into());
        }
        self.inner.dedup_cache.remove(receipts);
        soiree::kit::held_back(&self.inner.metrics, receipts.len() - settled.len())
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
        if self.schedule_if_later(event).await? {
            return Ok(());
        }
        let msg_id = soiree::inspect::event_id_text(event).map(|id| message_id(&id));
        self.publish(event, msg_id).await
    }

    /// One pull of up to `max` (a long poll for the first when none is
    /// there, see `puller`), with the successes of their events.
    async fn dequeue(&self, max: usize, wait: Duration) -> soiree::Result<Vec<Delivery>> {
        // A consuming handle runs a candidate mover of delayed events.
        self.start_mover();
        let deliveries = if self.inner.partitions.is_some() {
            self.dequeue_partitioned(max, wait).await?
        } else {
            // Asking ahead only here: with partitions the bus reads no
            // further than its free workers (see `read_ahead`).
            self.dequeue_unkeyed(max, wait, true).await?
        };
        let metrics = &self.inner.metrics;
        metrics.dequeued.inc_by(deliveries.len() as u64);
        let again = deliveries.iter().filter(|d| d.delivery_count > 1).count();
        metrics.redelivered.inc_by(again as u64);
        Ok(deliveries)
    }

    /// Results before the acknowledgement (see [`EventQueue::ack`]): a
    /// delivery with a result that was not confirmed is left
    /// unacknowledged (redelivered after the claim timeout).
    async fn ack(&self, receipts: &[String]) -> soiree::Result<()> {
        let settle = self.results_settled(receipts, String::as_str).await;
        let done = self.ack_all(&settle, |_| AckKind::Ack).await;
        self.settled(receipts, &settle, done)
    }

    async fn fail(&self, all: &[FailedDelivery]) -> soiree::Result<()> {
        let receipts: Vec<String> = all.iter().map(|f| f.receipt.clone()).collect();
        let failures = self.results_settled(all, |f| &f.receipt).await;
        let policy = self.inner.options.on_failure;
        let mut first: Option<soiree::Error> = None;
        for failure in &failures {
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
        let settled: Vec<String> = failures.iter().map(|f| f.receipt.clone()).collect();
        self.settled(&receipts, &settled, first.map_or(Ok(()), Err))
    }

    fn dead_letters_failure(&self, delivery_count: u32) -> bool {
        match self.inner.options.on_failure {
            FailurePolicy::DeadLetter => true,
            FailurePolicy::Redeliver => delivery_count >= self.inner.options.max_deliveries,
            FailurePolicy::Acknowledge => false,
        }
    }

    /// Hands back the deliveries the bus took but did not run, those it
    /// read ahead included, and those the store asked for ahead (see
    /// `puller`) (a NAK: JetStream counts it as a delivery).
    async fn release(&self, receipts: &[String]) -> soiree::Result<()> {
        let mut all = self.take_held_keyed().await;
        all.extend(self.take_held_ahead().await);
        all.extend_from_slice(receipts);
        let done = self.ack_all(&all, |_| AckKind::Nak(None)).await;
        self.inner.dedup_cache.remove(&all);
        Ok(done?)
    }

    /// The bus reads ahead up to 64 deliveries per pull while it keeps
    /// asking, and keeps their AckWait with the running ones' (see
    /// [`EventQueue::read_ahead`]). Not with partitions
    /// ([`ordered_by_key`](crate::NatsStoreBuilder::ordered_by_key)): a
    /// partition hands out one event at a time to the whole group, so
    /// one held ahead of a busy bus would stall its partition for every
    /// process.
    fn read_ahead(&self) -> usize {
        if self.inner.partitions.is_some() {
            0
        } else {
            READ_AHEAD
        }
    }

    /// Delayed events wait in the stream `SOIREE_<prefix>_SCHEDULED` until a
    /// mover (one per prefix, under a leader lease) moves them into the
    /// events stream once due: see the crate docs.
    fn schedules(&self) -> bool {
        self.can_schedule()
    }

    /// Purges the event's subject of the scheduled stream, for every group.
    async fn cancel_scheduled(&self, event_id: &str) -> soiree::Result<bool> {
        self.cancel_delayed(event_id).await
    }

    fn close_timeout(&self) -> Duration {
        self.inner.options.request_timeout
    }

    fn lease_interval(&self) -> Option<Duration> {
        Some(self.inner.options.claim_timeout / 3)
    }

    /// Sends a progress acknowledgement for each delivery the bus runs or
    /// holds read ahead (its AckWait starts again). With no receipts it
    /// returns at once: the store holds no delivery of its own.
    async fn extend(&self, receipts: &[String]) -> soiree::Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        Ok(self.ack_all(receipts, |_| AckKind::Progress).await?)
    }

    /// The group's unacknowledged events, as its consumer counts them. On a
    /// cluster the consumer's count can miss events whose publish was just
    /// acknowledged (its replica has not applied them yet): while its view
    /// ends before the last event this handle published for this group,
    /// the count is asked again, at most 20 times 10 ms apart,
    /// so that a bus's `wait_for_idle` does not return before the event is
    /// delivered. (A view that stays short, as after a purge, is asked
    /// about once: the handle then stops waiting for it.)
    async fn backlog(&self) -> soiree::Result<u64> {
        use std::sync::atomic::Ordering;
        let published = self.inner.last_published.load(Ordering::Acquire);
        let mut checks = 0;
        let backlog = loop {
            let mut consumer = self.inner.consumer.clone();
            let info = consumer
                .info()
                .await
                .map_err(|err| self.err("consumer info", &self.inner.names.group, err))?;
            let backlog = info.num_pending + info.num_ack_pending as u64;
            // Without a filter every event after the last delivered one is
            // pending; with one, only the events it takes are counted.
            let seen = if self.inner.options.filter.is_none() && self.inner.partitions.is_none() {
                info.delivered.stream_sequence + info.num_pending
            } else if backlog > 0 {
                u64::MAX
            } else {
                info.delivered.stream_sequence
            };
            if seen >= published {
                break backlog;
            }
            if checks >= BACKLOG_RECHECKS {
                let _ = self.inner.last_published.compare_exchange(
                    published,
                    0,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                break backlog;
            }
            checks += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let backlog = backlog + self.keyed_backlog().await?;
        self.inner
            .metrics
            .queue_length
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        Ok(backlog)
    }
}
