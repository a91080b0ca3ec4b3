//! The dead-letter stream: what it holds and how an entry gets there.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use soiree::{DeadLetter, StoredEvent};

use crate::NatsStore;

/// The longest error text kept with a dead letter, in bytes.
const MAX_ERROR_LEN: usize = 16 * 1024;

/// One entry of the dead-letter stream (JSON): the event's entry as
/// stored, why it is here, and where it came from.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The events-stream entry (an event's JSON, or whatever was there).
    pub(crate) raw: String,
    /// The listener's error, or why the entry could not be delivered.
    pub(crate) error: String,
    /// How many times it was delivered.
    pub(crate) deliveries: u32,
    /// Its sequence in the events stream.
    pub(crate) sequence: u64,
    /// The group whose listener failed.
    pub(crate) group: String,
}

impl Envelope {
    /// The dead letter this entry is, under the dead-letter stream's
    /// sequence `id`.
    pub(crate) fn into_dead_letter(self, id: u64, at: Option<std::time::SystemTime>) -> DeadLetter {
        match serde_json::from_str::<StoredEvent>(&self.raw) {
            Ok(event) => DeadLetter::new(id.to_string(), event, self.error, self.deliveries),
            Err(_) => DeadLetter::malformed(id.to_string(), self.raw, self.error)
                .deliveries(self.deliveries),
        }
        .at(at)
    }
}

/// A dead letter read back from an entry that is not an envelope.
pub(crate) fn unreadable(id: u64, payload: &[u8], err: &serde_json::Error) -> DeadLetter {
    DeadLetter::malformed(
        id.to_string(),
        String::from_utf8_lossy(payload).into_owned(),
        format!("not a dead-letter entry: {err}"),
    )
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" …");
    }
    text
}

impl NatsStore {
    /// Publishes the event at `sequence` (its entry `raw` when the caller
    /// has it) to the dead-letter stream with `error`, and waits for the
    /// stream's acknowledgement. Retried for the same delivery, it is
    /// stored once (the message id names the delivery).
    pub(crate) async fn move_to_dead_letters(
        &self,
        sequence: u64,
        delivered: u32,
        error: String,
        raw: Option<Bytes>,
    ) -> crate::Result<()> {
        let names = &self.inner.names;
        let raw = match raw {
            Some(raw) => raw,
            None => match self.inner.events.get_raw_message(sequence).await {
                Ok(message) => message.payload,
                Err(err) => {
                    return Err(self.err("get", &names.events_stream, err));
                }
            },
        };
        let envelope = Envelope {
            raw: String::from_utf8_lossy(&raw).into_owned(),
            error: truncate(error),
            deliveries: delivered,
            sequence,
            group: names.group.clone(),
        };
        let json = serde_json::to_vec(&envelope).map_err(soiree::Error::serialization)?;
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .payload(json.into())
            .message_id(format!("{}:{sequence}:{delivered}", names.group));
        let ack = self
            .inner
            .js
            .send_publish(names.dead_subject.clone(), publish)
            .await
            .map_err(|err| self.err("publish", &names.dead_subject, err))?;
        let ack = ack
            .await
            .map_err(|err| self.err("publish", &names.dead_subject, err))?;
        if !ack.duplicate {
            self.inner.metrics.dead_lettered.inc();
        }
        Ok(())
    }
}
