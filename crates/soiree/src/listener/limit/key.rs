//! A run's key for [`max_concurrent_per_key`](crate::ListenerBinding::max_concurrent_per_key):
//! the value of an event property.

use crate::Event;

/// The longest key kept whole; longer ones are cut and end with a hash of
/// the whole (a store indexes keys: PostgreSQL refuses index entries over
/// about 2.7 KB).
const MAX_KEY_LEN: usize = 256;

/// The key of `event` for `property`: the property's string, or its JSON
/// text when it is not a string; `""` when the event lacks it (such events
/// share one key).
pub(crate) fn key_of(event: &Event, property: &str) -> String {
    let value = match event.properties().get(property) {
        None => String::new(),
        Some(serde_json::Value::String(text)) => text,
        Some(other) => other.to_string(),
    };
    // NUL is refused by PostgreSQL text: escaped, injectively.
    let mut key = if value.contains(['\0', '\\']) {
        value.replace('\\', "\\\\").replace('\0', "\\0")
    } else {
        value
    };
    if key.len() > MAX_KEY_LEN {
        let hash = fnv1a(key.as_bytes());
        let mut cut = MAX_KEY_LEN - 17;
        while !key.is_char_boundary(cut) {
            cut -= 1;
        }
        key.truncate(cut);
        key.push_str(&format!("#{hash:016x}"));
    }
    key
}

/// FNV-1a: stable across processes and builds (unlike std's hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_property_values_escaped_and_bounded() {
        let event = Event::new("t", ());
        assert_eq!(key_of(&event, "tenant"), "");
        event.properties().set("tenant", "a\0b");
        assert_eq!(key_of(&event, "tenant"), "a\\0b");
        event.properties().set("tenant", 7);
        assert_eq!(key_of(&event, "tenant"), "7");
        event.properties().set("tenant", "x".repeat(5000));
        let long = key_of(&event, "tenant");
        assert!(long.len() <= MAX_KEY_LEN);
        event
            .properties()
            .set("tenant", format!("{}y", "x".repeat(4999)));
        assert_ne!(
            key_of(&event, "tenant"),
            long,
            "the hash tells long keys apart"
        );
    }
}
