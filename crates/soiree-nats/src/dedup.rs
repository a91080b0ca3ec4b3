//! Listener successes (handler dedup), fetched with each dequeued batch.
//!
//! The dedup stream holds one subject per (group, event id), and on it one
//! message per listener success naming the listener. A dequeue looks up
//! the subjects of its whole batch at once (one request per event, all in
//! flight together) into a [`DedupCache`](soiree::kit::DedupCache), so that
//! the bus's question for each listener of each event is answered without
//! a round trip; a question about an event the store does not hold reads
//! the stream.

use std::collections::HashSet;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{self, DirectGetErrorKind, LastRawMessageErrorKind};
use async_trait::async_trait;
use soiree::{Delivery, HandlerDedup};

use crate::NatsStore;

/// Successes kept per event and group (the stream's per-subject limit): a
/// lookup reads at most that many messages.
pub(crate) const MAX_SUCCESSES_PER_EVENT: i64 = 256;

/// Dedup records this handle sent and the stream has not confirmed yet, as
/// (event id, listener id): a lookup answers them without the stream.
#[derive(Debug, Default)]
pub(crate) struct Unconfirmed(std::sync::Mutex<HashSet<(String, String)>>);

impl Unconfirmed {
    pub(crate) fn insert(&self, event_id: &str, handler_id: &str) {
        self.lock()
            .insert((event_id.to_owned(), handler_id.to_owned()));
    }

    pub(crate) fn remove(&self, key: &(String, String)) {
        self.lock().remove(key);
    }

    fn contains(&self, event_id: &str, handler_id: &str) -> bool {
        self.lock()
            .contains(&(event_id.to_owned(), handler_id.to_owned()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        // Every update is one insert or remove: a panic elsewhere leaves
        // the set consistent.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether the dedup stream configured by `config` is read with direct gets:
/// when it has one replica. A direct get costs the server about half a
/// leader's message get (no JSON request or reply), but on a replicated
/// stream any replica answers it, and one that lags (a server catching up
/// after a restart) would miss a success and run its listener again; so a
/// replicated stream is read from its leader. Decided when the store opens.
pub(crate) fn reads_directly(config: &stream::Config) -> bool {
    config.allow_direct && config.num_replicas <= 1
}

impl NatsStore {
    /// The listeners the dedup stream records as succeeded for `event_id`
    /// in this group: one request when there are none (the usual case),
    /// else one more per success.
    pub(crate) async fn stored_successes(&self, event_id: &str) -> crate::Result<Vec<String>> {
        let subject = self.inner.names.dedup_subject(event_id);
        let Some(last) = self.success_from(&subject, None).await? else {
            return Ok(Vec::new());
        };
        let mut handlers = Vec::new();
        let mut from = 1;
        for _ in 0..MAX_SUCCESSES_PER_EVENT {
            let Some(message) = self.success_from(&subject, Some(from)).await? else {
                break;
            };
            handlers.push(String::from_utf8_lossy(&message.payload).into_owned());
            if message.sequence >= last.sequence {
                break;
            }
            from = message.sequence + 1;
        }
        Ok(handlers)
    }

    /// The success on `subject` at or after sequence `from`, or the last
    /// one when `from` is `None`; `None` when there is none.
    async fn success_from(
        &self,
        subject: &str,
        from: Option<u64>,
    ) -> crate::Result<Option<StreamMessage>> {
        let stream = &self.inner.dedup;
        let found = if self.inner.dedup_direct {
            let message = match from {
                None => stream.direct_get_last_for_subject(subject).await,
                Some(from) => {
                    stream
                        .direct_get_next_for_subject(subject, Some(from))
                        .await
                }
            };
            match message {
                Err(err) if matches!(err.kind(), DirectGetErrorKind::NotFound) => return Ok(None),
                found => found.map_err(|err| err.to_string()),
            }
        } else {
            let message = match from {
                None => stream.get_last_raw_message_by_subject(subject).await,
                Some(from) => stream.get_first_raw_message_by_subject(subject, from).await,
            };
            match message {
                Err(err) if matches!(err.kind(), LastRawMessageErrorKind::NoMessageFound) => {
                    return Ok(None);
                }
                found => found.map_err(|err| err.to_string()),
            }
        };
        found
            .map(Some)
            .map_err(|cause| self.err("get", &self.inner.names.dedup_bucket, cause))
    }

    /// Fills the dedup cache with the successes of `deliveries`' events,
    /// all looked up at once. A lookup that fails leaves its successes
    /// out: the bus's questions about it then read the stream.
    pub(crate) async fn prefetch_successes(&self, deliveries: &[Delivery]) {
        let lookups = deliveries.iter().filter_map(|delivery| {
            let event_id = delivery.event.id()?;
            Some(async move {
                (
                    delivery.receipt.clone(),
                    event_id.to_owned(),
                    self.stored_successes(event_id).await,
                )
            })
        });
        let found = futures::future::join_all(lookups).await;
        let cache = &self.inner.dedup_cache;
        let mut known = Vec::with_capacity(found.len());
        for (receipt, event_id, handlers) in found {
            match handlers {
                Ok(handlers) => known.push((receipt, event_id, handlers)),
                Err(err) => {
                    tracing::debug!(%err, "cannot prefetch listener successes");
                    // Still known as held: a lost result holds its
                    // delivery back.
                    cache.hold(&receipt, &event_id);
                }
            }
        }
        cache.insert_many(known);
    }
}

#[async_trait]
impl HandlerDedup for NatsStore {
    async fn handler_succeeded(&self, event_id: &str, handler_id: &str) -> soiree::Result<bool> {
        // A success this handle wrote and the stream has not confirmed yet.
        if self.inner.unconfirmed.contains(event_id, handler_id) {
            return Ok(true);
        }
        if let Some(answer) = self.inner.dedup_cache.succeeded(event_id, handler_id) {
            return Ok(answer);
        }
        let handlers = self.stored_successes(event_id).await?;
        Ok(handlers.iter().any(|handler| handler == handler_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stream_with_one_replica_is_read_directly() {
        let config = |allow_direct, num_replicas| stream::Config {
            allow_direct,
            num_replicas,
            ..Default::default()
        };
        assert!(reads_directly(&config(true, 1)));
        assert!(!reads_directly(&config(true, 3)), "a follower may lag");
        assert!(!reads_directly(&config(false, 1)), "no direct gets allowed");
    }
}
