//! The Redis keys a store uses, all under one prefix.

/// Key names for one store.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
    /// The events stream: the queue, read by the consumer group.
    pub(crate) events: String,
    /// The handler results stream.
    pub(crate) results: String,
    /// The dead-letter stream.
    pub(crate) dead: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            events: format!("{prefix}events"),
            results: format!("{prefix}results"),
            dead: format!("{prefix}dead"),
        }
    }

    /// The set of handler ids that succeeded for an event id.
    pub(crate) fn dedup(&self, event_id: &str) -> String {
        format!("{}dedup:{event_id}", self.prefix)
    }

    /// The last handler error recorded for an event id.
    pub(crate) fn last_error(&self, event_id: &str) -> String {
        format!("{}error:{event_id}", self.prefix)
    }
}

/// Field names inside stream entries.
pub(crate) mod field {
    /// The JSON envelope of an event (`{topic, payload, properties}`).
    pub(crate) const EVENT: &str = "event";
    /// The JSON of a handler result.
    pub(crate) const RESULT: &str = "result";
    /// Dead letters: the id of the entry in the events stream.
    pub(crate) const ENTRY_ID: &str = "entry_id";
    /// Dead letters: why the entry was set aside.
    pub(crate) const ERROR: &str = "error";
    /// Dead letters: how many times it had been delivered.
    pub(crate) const DELIVERIES: &str = "deliveries";
}
