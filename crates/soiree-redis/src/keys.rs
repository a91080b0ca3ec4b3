//! The Redis keys a store uses, all under one delimited prefix.
//!
//! Every key is `{<prefix>}:<name>`. The braces delimit the prefix — a
//! prefix cannot contain them, so no prefix's keys are another prefix's
//! (`{tenant-1}:…` never matches `{tenant-10}:…`) — and make it a Redis
//! Cluster hash tag: all keys of a store share one slot, as the
//! dead-letter script (which touches two streams) needs.

use crate::{Error, Result};

/// The longest prefix accepted.
const MAX_PREFIX_LEN: usize = 128;

/// Checks a key prefix: non-empty, at most 128 characters, only ASCII
/// letters, digits and `-_.:/`, and not ending with `:` (the delimiter is
/// added by the store).
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    let invalid = |why: &str| Err(Error::InvalidConfig(format!("prefix {prefix:?} {why}")));
    if prefix.is_empty() {
        return invalid("is empty: every store needs a prefix of its own");
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return invalid("is longer than 128 characters");
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/')))
    {
        return invalid(&format!(
            "contains {c:?}: only ASCII letters, digits and - _ . : / are allowed"
        ));
    }
    if prefix.ends_with(':') {
        return invalid("ends with ':': keys are `{prefix}:…`, so drop the trailing ':'");
    }
    Ok(())
}

/// Key names for one store.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `{<prefix>}:`, the start of every key.
    base: String,
    /// The events stream: the queue, read by the consumer group.
    pub(crate) events: String,
    /// The handler results stream.
    pub(crate) results: String,
    /// The dead-letter stream.
    pub(crate) dead: String,
}

impl Keys {
    /// Keys under `prefix`, which [`validate_prefix`] accepted.
    pub(crate) fn new(prefix: &str) -> Self {
        let base = format!("{{{prefix}}}:");
        Self {
            events: format!("{base}events"),
            results: format!("{base}results"),
            dead: format!("{base}dead"),
            base,
        }
    }

    /// `{<prefix>}`, as keys start, for messages.
    pub(crate) fn prefix_braced(&self) -> String {
        self.base.trim_end_matches(':').to_owned()
    }

    /// The set of handler ids that succeeded for an event id.
    pub(crate) fn dedup(&self, event_id: &str) -> String {
        format!("{}{DEDUP}{event_id}", self.base)
    }

    /// The last handler error recorded for an event id.
    pub(crate) fn last_error(&self, event_id: &str) -> String {
        format!("{}{ERROR}{event_id}", self.base)
    }

    /// The keys the store writes with fixed names.
    pub(crate) fn fixed(&self) -> [&str; 3] {
        [&self.events, &self.results, &self.dead]
    }

    /// SCAN patterns matching the per-event keys the store writes.
    pub(crate) fn per_event_patterns(&self) -> [String; 2] {
        // The prefix has no glob characters (see `validate_prefix`).
        [
            format!("{}{DEDUP}*", self.base),
            format!("{}{ERROR}*", self.base),
        ]
    }
}

const DEDUP: &str = "dedup:";
const ERROR: &str = "error:";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_delimited_hash_tags() {
        let keys = Keys::new("tenant-1");
        assert_eq!(keys.events, "{tenant-1}:events");
        assert_eq!(keys.dedup("e"), "{tenant-1}:dedup:e");
        assert_eq!(keys.per_event_patterns()[1], "{tenant-1}:error:*");
    }

    #[test]
    fn prefixes_are_validated() {
        for ok in ["soiree", "tenant-1", "a.b_c:d/e"] {
            assert!(validate_prefix(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a{b", "a}b", "a*", "a?", "a[b]", "a\\b", "a b", "é", "shop:",
        ] {
            assert!(
                matches!(validate_prefix(bad), Err(Error::InvalidConfig(_))),
                "{bad:?}"
            );
        }
        assert!(validate_prefix(&"a".repeat(129)).is_err());
    }
}
