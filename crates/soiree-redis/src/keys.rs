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
    /// The start of the group's dedup sets of earlier versions (see
    /// [`Keys::dedup`]).
    dedup: String,
    /// The start of the group's success records (see [`Keys::successes`]).
    successes: String,
    /// Until when the group's dedup sets of earlier versions are read (see
    /// `successes`).
    pub(crate) dedup_legacy: String,
    /// The events stream: the queue, read by the consumer group.
    pub(crate) events: String,
    /// The handler results stream.
    pub(crate) results: String,
    /// The dead-letter stream.
    pub(crate) dead: String,
    /// Delayed events (see `scheduled.rs`): the sorted set of members by
    /// due time, member → event JSON, member → event id, event id → JSON
    /// array of members, and the member counter.
    pub(crate) scheduled: [String; 5],
    /// The group's deferred entries (snoozes kept by the store, see
    /// `deferred.rs`): entry id by due time in Unix milliseconds.
    pub(crate) deferred: String,
}

impl Keys {
    /// Keys under `prefix`, which [`validate_prefix`] accepted, for
    /// consumer group `group`.
    pub(crate) fn new(prefix: &str, group: &str) -> Self {
        let base = format!("{{{prefix}}}:");
        let dedup = if group == DEFAULT_GROUP {
            format!("{base}{DEDUP}")
        } else {
            // The group's length makes the key unambiguous whatever the
            // group and event id hold (`:` included).
            format!("{base}{DEDUP_OF_GROUP}{}:{group}:", group.len())
        };
        Self {
            events: format!("{base}events"),
            results: format!("{base}results"),
            dead: format!("{base}dead"),
            scheduled: [
                "scheduled",
                "scheduled:data",
                "scheduled:owner",
                "scheduled:by_id",
                "scheduled:seq",
            ]
            .map(|name| format!("{base}{name}")),
            deferred: format!("{base}{DEFERRED}{}:{group}", group.len()),
            successes: format!("{base}{SUCCESSES}{}:{group}:", group.len()),
            dedup_legacy: format!("{base}{DEDUP_LEGACY}{}:{group}", group.len()),
            dedup,
            base,
        }
    }

    /// `{<prefix>}`, as keys start, for messages.
    pub(crate) fn prefix_braced(&self) -> String {
        self.base.trim_end_matches(':').to_owned()
    }

    /// The listeners that succeeded for an event id in the store's group (a
    /// string, see `successes`): `{<prefix>}:done@<group length>:<group>:<event id>`.
    pub(crate) fn successes(&self, event_id: &str) -> String {
        format!("{}{event_id}", self.successes)
    }

    /// The set of handler ids that succeeded for an event id in the store's
    /// group, as earlier versions wrote it (read, never written, see
    /// `successes`): `{<prefix>}:dedup:<event id>` for the default group `soiree`
    /// (the key every group used before dedup was per group, so that its
    /// records stay readable), `{<prefix>}:dedup@<group length>:<group>:<event id>`
    /// for the others.
    pub(crate) fn dedup(&self, event_id: &str) -> String {
        format!("{}{event_id}", self.dedup)
    }

    /// The last handler error recorded for an event id.
    pub(crate) fn last_error(&self, event_id: &str) -> String {
        format!("{}{ERROR}{event_id}", self.base)
    }

    /// The key holding unique key `key` at emit (store-wide, whatever the
    /// group): `{<prefix>}:unique:<key>`.
    pub(crate) fn unique(&self, key: &str) -> String {
        format!("{}{UNIQUE}{key}", self.base)
    }

    /// The leader lease `name`: `{<prefix>}:lease:<name>`.
    pub(crate) fn lease(&self, name: &str) -> String {
        format!("{}{LEASE}{name}", self.base)
    }

    /// The start of every lease key (`lease` is this and the name).
    pub(crate) fn lease_prefix(&self) -> String {
        format!("{}{LEASE}", self.base)
    }

    /// The start of every limit slot key (`limit_slot` is this and the key).
    pub(crate) fn limit_slot_prefix(&self) -> String {
        format!("{}{LIMIT}slot:", self.base)
    }

    /// A listener limit's slots (a sorted set of holders by expiry,
    /// store-wide): `{<prefix>}:limit:slot:<key>`.
    pub(crate) fn limit_slot(&self, key: &str) -> String {
        format!("{}{LIMIT}slot:{key}", self.base)
    }

    /// A listener rate's next start (Unix ms, store-wide):
    /// `{<prefix>}:limit:rate:<key>`.
    pub(crate) fn limit_rate(&self, key: &str) -> String {
        format!("{}{LIMIT}rate:{key}", self.base)
    }

    /// The keys the store writes with fixed names.
    pub(crate) fn fixed(&self) -> [&str; 8] {
        let [a, b, c, d, e] = &self.scheduled;
        [&self.events, &self.results, &self.dead, a, b, c, d, e]
    }

    /// SCAN patterns matching the per-event keys the store writes
    /// (every group's), so that a purge leaves none behind.
    pub(crate) fn per_event_patterns(&self) -> [String; 9] {
        // The prefix has no glob characters (see `validate_prefix`).
        [
            format!("{}{SUCCESSES}*", self.base),
            format!("{}{DEDUP_LEGACY}*", self.base),
            format!("{}{DEDUP}*", self.base),
            format!("{}{DEDUP_OF_GROUP}*", self.base),
            format!("{}{ERROR}*", self.base),
            format!("{}{UNIQUE}*", self.base),
            format!("{}{LEASE}*", self.base),
            format!("{}{LIMIT}*", self.base),
            format!("{}{DEFERRED}*", self.base),
        ]
    }
}

/// The group whose dedup keys keep the name they had before groups had
/// their own.
const DEFAULT_GROUP: &str = "soiree";
const DEDUP: &str = "dedup:";
const DEDUP_OF_GROUP: &str = "dedup@";
const SUCCESSES: &str = "done@";
const DEDUP_LEGACY: &str = "dedup-legacy@";
const ERROR: &str = "error:";
const UNIQUE: &str = "unique:";
const LEASE: &str = "lease:";
const LIMIT: &str = "limit:";
const DEFERRED: &str = "deferred@";

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
        let keys = Keys::new("tenant-1", "soiree");
        assert_eq!(keys.events, "{tenant-1}:events");
        assert_eq!(keys.dedup("e"), "{tenant-1}:dedup:e");
        assert_eq!(keys.per_event_patterns()[4], "{tenant-1}:error:*");
    }

    #[test]
    fn dedup_keys_are_per_group_and_unambiguous() {
        let default = Keys::new("p", "soiree");
        let billing = Keys::new("p", "billing");
        assert_eq!(billing.dedup("e"), "{p}:dedup@7:billing:e");
        assert_ne!(default.dedup("e"), billing.dedup("e"));
        // (group "a", event "b:c") and (group "a:b", event "c").
        assert_ne!(
            Keys::new("p", "a").dedup("b:c"),
            Keys::new("p", "a:b").dedup("c")
        );
        // No event id of the default group names another group's key.
        assert!(!default.dedup("7:billing:e").starts_with("{p}:dedup@"));
        let patterns = default.per_event_patterns();
        assert!(patterns.contains(&"{p}:dedup@*".to_owned()));
        assert_eq!(billing.successes("e"), "{p}:done@7:billing:e");
        assert_eq!(default.successes("e"), "{p}:done@6:soiree:e");
        assert_ne!(
            Keys::new("p", "a").successes("b:c"),
            Keys::new("p", "a:b").successes("c")
        );
        assert!(patterns.contains(&"{p}:done@*".to_owned()));
        assert!(patterns.contains(&"{p}:dedup-legacy@*".to_owned()));
        assert_eq!(default.dedup_legacy, "{p}:dedup-legacy@6:soiree");
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
