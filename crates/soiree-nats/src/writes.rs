//! Listener results and dedup records, written behind and confirmed once
//! per batch.
//!
//! Each record is a plain message to its stream's subject (no
//! acknowledgement asked), except the newest of each stream, which is held
//! back: a flush (before any acknowledgement of a delivery, and before
//! results are read) sends it asking for the stream's acknowledgement.
//! A stream takes one connection's messages in order, so that
//! acknowledgement confirms every record sent to it before; results are in
//! the streams before their deliveries are acknowledged, with one round
//! trip per stream per flush instead of one per record.
//!
//! What this gives up: a record the stream refuses (its limits) while a
//! later one is accepted is lost without an error; a process that dies
//! before a flush loses the records it held (their deliveries were not
//! acknowledged: they run again).
//!
//! Results before ack (see [`soiree::EventQueue::ack`]): a record larger
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

/// The streams records go to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    Results = 0,
    Dedup = 1,
}

/// A record not sent yet.
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
    /// The newest record of each stream, sent at the flush.
    held: [Option<Held>; 2],
    /// The (event id, listener id) of the dedup records among them.
    keys: Vec<(String, String)>,
    /// The events they are about: held back when the flush fails.
    events: Vec<String>,
    count: usize,
}

impl NatsStore {
    /// Writes a record about `event_id`: sends the one held for `target`
    /// and holds this one. `key`: a dedup record's (event id, listener id).
    /// A record larger than the server takes is dropped (logged, counted).
    pub(crate) async fn write_record(
        &self,
        target: Target,
        subject: String,
        payload: Bytes,
        key: Option<(String, String)>,
        event_id: &str,
    ) -> Result<()> {
        let max_payload = self.inner.client.server_info().max_payload;
        if payload.len() > max_payload {
            // Sending it again cannot succeed: it must not hold back its
            // delivery.
            self.inner.metrics.results_refused.inc();
            tracing::error!(
                event_id,
                size = payload.len(),
                max_payload,
                "a listener result is larger than the server takes; it is not saved"
            );
            return Ok(());
        }
        let full = {
            // Held across the send: records reach the connection in the
            // order they are held.
            let mut writes = self.inner.writes.lock().await;
            let event_id = event_id.to_owned();
            writes.events.push(event_id.clone());
            let held = Held {
                subject,
                payload,
                event_id,
            };
            if let Some(earlier) = writes.held[target as usize].replace(held) {
                let sent = self
                    .inner
                    .client
                    .publish(earlier.subject.clone(), earlier.payload)
                    .await;
                if let Err(err) = sent {
                    // The earlier record's loss, not this one's.
                    tracing::warn!(%err, "a listener result was not written");
                    self.inner.dedup_cache.results_lost(&earlier.event_id);
                }
            }
            writes.keys.extend(key);
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
            for held in writes.held.iter_mut().filter_map(Option::take) {
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
