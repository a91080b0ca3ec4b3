//! Listener results and dedup records, written behind and confirmed once
//! per batch.
//!
//! Results are held until a flush (before any acknowledgement of a
//! delivery, and before results are read), which sends them as one
//! message (a JSON array; more than one when they exceed
//! [`MAX_BATCH_BYTES`]) asking for the stream's acknowledgement: one
//! replicated write per flush instead of one per result. The message's
//! subject ends in the number of results it holds, so that the stream's
//! per-subject counts still count results (see `Inspect::stats`).
//!
//! Dedup records keep one subject per event (a lookup reads an event's
//! records by subject): each is a plain message to its subject (no
//! acknowledgement asked), except the newest, which is held back and sent
//! at the flush asking for the stream's acknowledgement. A stream takes one
//! connection's messages in order, so that acknowledgement confirms every
//! record sent to it before; results and dedup records are in the streams
//! before their deliveries are acknowledged, with one round trip per
//! stream per flush.
//!
//! What this gives up: a dedup record the stream refuses (its limits)
//! while a later one is accepted is lost without an error; a process that
//! dies before a flush loses the records it held (their deliveries were
//! not acknowledged: they run again).
//!
//! Results before ack (see [`soiree::EventQueue::ack`]): a result larger
//! than the server's `max_payload` is refused for good, so it is logged,
//! counted and dropped at once (its delivery is acknowledged). When a
//! flush is not confirmed, which of the records since the last one were
//! lost is unknown: every held event with a record among them is marked
//! ([`DedupCache::results_lost`](soiree::kit::DedupCache::results_lost))
//! and its delivery is not acknowledged; the others are.

use async_nats::jetstream::context::PublishAckFuture;
use bytes::Bytes;

use crate::{NatsStore, Result};

/// Records written after which a flush runs inline.
const MAX_UNCONFIRMED: usize = 1024;

/// The most bytes of results sent in one message (less when the server
/// takes less); a larger result goes alone.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// A dedup record not sent yet.
#[derive(Debug)]
struct Held {
    subject: String,
    payload: Bytes,
    /// The event it is about.
    event_id: String,
}

/// Records written since the last flush.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    /// The results, each as JSON, sent at the flush.
    results: Vec<Vec<u8>>,
    /// The newest dedup record, sent at the flush.
    held: Option<Held>,
    /// The (event id, listener id) of the dedup records among them.
    keys: Vec<(String, String)>,
    /// The events they are about: held back when the flush fails.
    events: Vec<String>,
    count: usize,
    /// The server's `max_payload` as of the last flush (0: not read yet):
    /// `Client::server_info` clones the whole server info, too much per
    /// result.
    max_payload: usize,
}

/// The messages `results` go out as: JSON arrays of at most `max_bytes`
/// (one result larger than that alone), each with its number of results.
pub(crate) fn batches(results: &[Vec<u8>], max_bytes: usize) -> Vec<(usize, Vec<u8>)> {
    let mut out: Vec<(usize, Vec<u8>)> = Vec::new();
    for result in results {
        match out.last_mut() {
            Some((n, batch)) if batch.len() + result.len() < max_bytes => {
                batch.pop();
                batch.push(b',');
                batch.extend_from_slice(result);
                batch.push(b']');
                *n += 1;
            }
            _ => {
                let mut batch = Vec::with_capacity(max_bytes.min(result.len() * 64 + 2));
                batch.push(b'[');
                batch.extend_from_slice(result);
                batch.push(b']');
                out.push((1, batch));
            }
        }
    }
    out
}

impl NatsStore {
    /// Holds a result (JSON) about `event_id` until the next flush. A
    /// result larger than the server takes is dropped (logged, counted).
    pub(crate) async fn write_result(&self, json: Vec<u8>, event_id: &str) -> Result<()> {
        let full = {
            let mut writes = self.inner.writes.lock().await;
            if writes.max_payload == 0 {
                writes.max_payload = self.inner.client.server_info().max_payload;
            }
            let max_payload = writes.max_payload;
            if json.len() + 2 > max_payload {
                // Sending it again cannot succeed (not even alone in its
                // batch): it must not hold back its delivery.
                drop(writes);
                self.inner.metrics.results_refused.inc();
                tracing::error!(
                    event_id,
                    size = json.len(),
                    max_payload,
                    "a listener result is larger than the server takes; it is not saved"
                );
                return Ok(());
            }
            writes.results.push(json);
            writes.events.push(event_id.to_owned());
            writes.count += 1;
            writes.count >= MAX_UNCONFIRMED
        };
        if full {
            self.flush_writes().await?;
        }
        Ok(())
    }

    /// Writes a dedup record: sends the one held and holds this one.
    /// `key`: its (event id, listener id).
    pub(crate) async fn write_dedup(
        &self,
        subject: String,
        payload: Bytes,
        key: (String, String),
    ) -> Result<()> {
        let full = {
            // Held across the send: records reach the connection in the
            // order they are held.
            let mut writes = self.inner.writes.lock().await;
            let event_id = key.0.clone();
            writes.events.push(event_id.clone());
            let held = Held {
                subject,
                payload,
                event_id,
            };
            if let Some(earlier) = writes.held.replace(held) {
                let sent = self
                    .inner
                    .client
                    .publish(earlier.subject.clone(), earlier.payload)
                    .await;
                if let Err(err) = sent {
                    // The earlier record's loss, not this one's.
                    tracing::warn!(%err, "a listener dedup record was not written");
                    self.inner.dedup_cache.results_lost(&earlier.event_id);
                }
            }
            writes.keys.push(key);
            writes.count += 1;
            writes.count >= MAX_UNCONFIRMED
        };
        if full {
            self.flush_writes().await?;
        }
        Ok(())
    }

    /// Waits until every result and dedup record written so far is
    /// confirmed by its stream.
    ///
    /// # Errors
    ///
    /// [`Error::JetStream`](crate::Error::JetStream) when a stream did not
    /// confirm: the records written since the last flush may be lost, and
    /// with them their dedup records; their events are marked
    /// ([`DedupCache::results_lost`](soiree::kit::DedupCache::results_lost)),
    /// so that their deliveries are not acknowledged (a redelivery runs
    /// those listeners again: at least once).
    pub(crate) async fn flush_writes(&self) -> Result<()> {
        let _one_at_a_time = self.inner.flushing.lock().await;
        let (acks, keys, events, count) = {
            let mut writes = self.inner.writes.lock().await;
            let mut acks: Vec<(String, std::result::Result<PublishAckFuture, _>)> =
                Vec::with_capacity(2);
            let results = std::mem::take(&mut writes.results);
            if !results.is_empty() {
                // Read again per flush: a reconnect may reach a server
                // that takes another size.
                writes.max_payload = self.inner.client.server_info().max_payload;
                let max = MAX_BATCH_BYTES.min(writes.max_payload);
                let base = &self.inner.names.results_subject;
                for (n, batch) in batches(&results, max) {
                    let subject = format!("{base}.{n}");
                    let ack = self.inner.js.publish(subject.clone(), batch.into()).await;
                    acks.push((subject, ack));
                }
            }
            if let Some(held) = writes.held.take() {
                let ack = self
                    .inner
                    .js
                    .publish(held.subject.clone(), held.payload)
                    .await;
                acks.push((held.subject, ack));
            }
            let keys = std::mem::take(&mut writes.keys);
            let events = std::mem::take(&mut writes.events);
            let count = std::mem::take(&mut writes.count);
            (acks, keys, events, count)
        };
        let mut failed = None;
        for (subject, ack) in acks {
            let confirmed = match ack {
                Ok(ack) => ack.await.map(|_| ()).map_err(|err| err.to_string()),
                Err(err) => Err(err.to_string()),
            };
            if let Err(err) = confirmed {
                failed.get_or_insert(self.err(
                    "publish",
                    &subject,
                    format!("{err}: up to {count} results and dedup records may be lost"),
                ));
            }
        }
        // Confirmed (or lost) from here on: lookups read the stream again.
        for key in &keys {
            self.inner.unconfirmed.remove(key);
        }
        if failed.is_some() {
            for event_id in &events {
                self.inner.dedup_cache.results_lost(event_id);
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_json_arrays_within_the_size_and_keep_the_order() {
        let results: Vec<Vec<u8>> = (0..10)
            .map(|i| format!("{{\"n\":{i}}}").into_bytes())
            .collect();
        let batches = batches(&results, 30);
        let mut read = Vec::new();
        for (n, batch) in &batches {
            let items: Vec<serde_json::Value> = serde_json::from_slice(batch).unwrap();
            assert_eq!(items.len(), *n);
            assert!(batch.len() <= 30 || *n == 1, "{}", batch.len());
            read.extend(items.into_iter().map(|item| item["n"].as_u64().unwrap()));
        }
        assert_eq!(read, (0..10).collect::<Vec<u64>>());
        assert!(batches.len() > 1);
        let big = vec![vec![b'1'; 100], b"2".to_vec()];
        let alone = super::batches(&big, 30);
        assert_eq!(alone.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 1]);
        assert_eq!(super::batches(&[], 30).len(), 0);
    }
}
