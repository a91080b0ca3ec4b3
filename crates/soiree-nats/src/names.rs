//! The names of a store's streams, subjects and keys.

/// Every name one store uses, derived from its prefix and group. Prefixes
/// hold only letters, digits and `-`, so `<prefix>_…` names of one store
/// are never another prefix's.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub(crate) prefix: String,
    pub(crate) events_stream: String,
    pub(crate) dead_stream: String,
    pub(crate) results_stream: String,
    pub(crate) dedup_bucket: String,
    /// `<prefix>.>`: every event.
    pub(crate) events_subjects: String,
    /// `<prefix>_dead.<group>`.
    pub(crate) dead_subject: String,
    /// `<prefix>_results.<group>`.
    pub(crate) results_subject: String,
    pub(crate) group: String,
}

impl Names {
    pub(crate) fn new(prefix: &str, group: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            events_stream: format!("SOIREE_{prefix}_EVENTS"),
            dead_stream: format!("SOIREE_{prefix}_DEAD"),
            results_stream: format!("SOIREE_{prefix}_RESULTS"),
            dedup_bucket: format!("SOIREE_{prefix}_DEDUP"),
            events_subjects: format!("{prefix}.>"),
            dead_subject: format!("{prefix}_dead.{group}"),
            results_subject: format!("{prefix}_results.{group}"),
            group: group.to_owned(),
        }
    }

    /// The subject holding a unique key's reservation, in the dedup stream
    /// and shared by every group of the prefix: `<prefix>_dedup.unique.<key
    /// in hex>` (never a group's dedup subject: `unique` is not hex).
    pub(crate) fn unique_subject(&self, key: &str) -> String {
        format!("{}_dedup.unique.{}", self.prefix, hex(key))
    }

    /// The dedup subject of an event in this group, on which each
    /// listener success is one message: `<prefix>_dedup.<group>.<event
    /// id>`, each part hex-encoded (subjects allow few characters).
    pub(crate) fn dedup_subject(&self, event_id: &str) -> String {
        format!(
            "{}_dedup.{}.{}",
            self.prefix,
            hex(&self.group),
            hex(event_id)
        )
    }
}

pub(crate) fn hex(text: &str) -> String {
    if text.is_empty() {
        // Subjects have no empty tokens.
        return "_".to_owned();
    }
    // On every result and dedup lookup: no allocation per byte.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(text.len() * 2);
    for b in text.bytes() {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The text [`hex`] spelled, `None` when `hexed` is not such a spelling
/// (another kind of key in the same bucket).
pub(crate) fn unhex(hexed: &str) -> Option<String> {
    if hexed == "_" {
        return Some(String::new());
    }
    if hexed.is_empty() || !hexed.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..hexed.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(hexed.get(at..at + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// The `Nats-Msg-Id` of an event id: the id itself when it is printable
/// ASCII without `~`, else `~` and its bytes in hex, so that two ids never
/// share a message id (the client would turn CR and LF into spaces).
pub(crate) fn message_id(event_id: &str) -> String {
    if event_id.bytes().all(|b| b > 0x20 && b < 0x7f && b != b'~') {
        event_id.to_owned()
    } else {
        format!("~{}", hex(event_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhex_reads_back_what_hex_spelled_and_nothing_else() {
        for text in ["", "failover-tick", "é~\n"] {
            assert_eq!(unhex(&hex(text)).as_deref(), Some(text));
        }
        for other in ["slot.61", "6", "zz", "ff"] {
            assert_eq!(unhex(other), None, "{other}");
        }
    }

    #[test]
    fn message_ids_are_distinct_for_distinct_event_ids() {
        assert_eq!(message_id("evt-1"), "evt-1");
        assert_ne!(message_id("a\rb"), message_id("a b"));
        assert_ne!(message_id("~61"), message_id("a"));
        assert!(!message_id("line\nbreak").contains('\n'));
    }

    #[test]
    fn hex_spells_each_byte_in_two_lowercase_digits() {
        assert_eq!(hex("a\u{ff}"), "61c3bf");
        assert_eq!(hex(""), "_");
    }

    #[test]
    fn dedup_keys_are_per_group() {
        let a = Names::new("p", "first").dedup_subject("e");
        let b = Names::new("p", "second").dedup_subject("e");
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        );
    }
}
