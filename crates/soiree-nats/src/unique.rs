//! Unique keys at emit ([`EventStore::append_unique`](soiree::EventStore::append_unique)).
//!
//! A key is reserved by a publish to its own subject of the dedup stream
//! (`<prefix>_dedup.unique.<key>`) that the stream accepts only if the
//! subject's last message is the one the publisher saw
//! (`Nats-Expected-Last-Subject-Sequence`: 0 for a key never reserved):
//! an atomic create-if-absent, so that of concurrent emits of one key one
//! reserves it and the others read who did. The reservation names the
//! event and when its window ends; a reservation past its window is
//! replaced the same way. The event is appended once the key is reserved.
//!
//! Two steps, not one: a process killed between the reservation and the
//! append, or a reservation whose confirmation was lost, leaves the key
//! held by an event that was never stored, until the window ends (an
//! append that fails is undone: its reservation is removed). A window lasts at most the dedup stream's age limit
//! ([`dedup_ttl`](crate::NatsStoreBuilder::dedup_ttl), 7 days by default),
//! and is measured with the clocks of the appending processes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use serde::{Deserialize, Serialize};
use soiree::{Appended, EventQueue, StoredEvent};

use crate::NatsStore;

/// Reservation attempts of one append: each lost race reads the winner,
/// so more are needed only while windows end and are replaced meanwhile.
const ATTEMPTS: usize = 5;

/// A key's reservation.
#[derive(Debug, Serialize, Deserialize)]
struct Reservation {
    /// The event holding the key.
    id: String,
    /// When its window ends, in milliseconds since the Unix epoch.
    until_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl NatsStore {
    pub(crate) async fn append_unique_inner(
        &self,
        event: &StoredEvent,
        key: &str,
        window: Duration,
    ) -> soiree::Result<Appended> {
        if key.is_empty() || key.len() > soiree::limits::MAX_EVENT_ID_LEN {
            return Err(soiree::Error::LimitExceeded {
                what: "unique key bytes (at least 1)",
                limit: soiree::limits::MAX_EVENT_ID_LEN,
                actual: key.len(),
            });
        }
        let Some(id) = event.id() else {
            return Err(soiree::Error::store(
                "a unique event needs an event id (soiree.event_id): the bus sets one",
            ));
        };
        let subject = self.inner.names.unique_subject(key);
        let bucket = &self.inner.names.dedup_bucket;
        let mut expected = 0;
        for _ in 0..ATTEMPTS {
            let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
            let reservation = Reservation {
                id: id.to_owned(),
                until_ms: now_ms().saturating_add(window_ms.max(1)),
            };
            let json = serde_json::to_vec(&reservation).map_err(soiree::Error::serialization)?;
            let publish = PublishMessage::build()
                .payload(json.into())
                .expected_last_subject_sequence(expected);
            let sent = self
                .inner
                .js
                .send_publish(subject.clone(), publish)
                .await
                .map_err(|err| self.err("publish", bucket, err))?;
            match sent.await {
                Ok(ack) => {
                    if let Err(err) = self.enqueue(event).await {
                        // Undone, so that a retry is not refused for an
                        // event that was never stored.
                        if let Err(undo) = self.inner.dedup.delete_message(ack.sequence).await {
                            tracing::warn!(%undo, "a unique key stays held by an event that was not stored, until its window ends");
                        }
                        return Err(err);
                    }
                    return Ok(Appended::New);
                }
                Err(err) if matches!(err.kind(), PublishErrorKind::WrongLastSequence) => {}
                Err(err) => return Err(self.err("publish", bucket, err).into()),
            }
            // Reserved by someone else: by whom, and until when?
            match self
                .inner
                .dedup
                .get_last_raw_message_by_subject(&subject)
                .await
            {
                Ok(last) => {
                    let held = serde_json::from_slice::<Reservation>(&last.payload).ok();
                    match held {
                        Some(held) if held.until_ms > now_ms() => {
                            return Ok(Appended::Existing(held.id));
                        }
                        // Its window ended (or it is unreadable): replaced.
                        _ => expected = last.sequence,
                    }
                }
                Err(err) if matches!(err.kind(), LastRawMessageErrorKind::NoMessageFound) => {
                    expected = 0;
                }
                Err(err) => return Err(self.err("get", bucket, err).into()),
            }
        }
        Err(self
            .err(
                "reserve unique key",
                bucket,
                format!("the key changed hands {ATTEMPTS} times during one append; emit again"),
            )
            .into())
    }
}
