//! Writing an event's JSON under the limits, in the one pass a store makes
//! anyway: depth is checked while writing, sizes on the bytes written.

use std::io;

use serde_json::{Map, Value};

use super::{
    MAX_PAYLOAD_LEN, MAX_PROPERTIES_LEN, WHAT_PAYLOAD_DEPTH, WHAT_PAYLOAD_LEN, WHAT_PROPERTIES_LEN,
    WHAT_PROPERTY_DEPTH, check_envelope,
};
use crate::event::finite;
use crate::{Error, Result, StoredEvent};

/// The JSON of a payload, as stores write it.
///
/// # Errors
///
/// [`Error::LimitExceeded`] when it nests deeper than [`MAX_JSON_DEPTH`](super::MAX_JSON_DEPTH) or
/// is longer than [`MAX_PAYLOAD_LEN`] bytes.
///
/// # Examples
///
/// ```
/// let json = soiree::limits::encode_payload(&serde_json::json!({ "id": 1 })).unwrap();
/// assert_eq!(json, r#"{"id":1}"#);
/// ```
pub fn encode_payload(payload: &Value) -> Result<String> {
    let mut out = Bounded::keeping(MAX_PAYLOAD_LEN);
    write_payload(&mut out, payload)?;
    out.into_string()
}

/// The JSON of an event's properties, as stores write them.
///
/// # Errors
///
/// [`Error::LimitExceeded`] when a key is longer than
/// [`MAX_PROPERTY_KEY_LEN`](super::MAX_PROPERTY_KEY_LEN) bytes, a value
/// nests deeper than [`MAX_JSON_DEPTH`](super::MAX_JSON_DEPTH), or the whole is longer than
/// [`MAX_PROPERTIES_LEN`] bytes.
pub fn encode_properties(properties: &Map<String, Value>) -> Result<String> {
    super::check_properties_keys(properties)?;
    let mut out = Bounded::keeping(MAX_PROPERTIES_LEN);
    write_properties(&mut out, properties)?;
    out.into_string()
}

/// The JSON envelope of an event (`{"topic", "payload", "properties"}`, as
/// `serde_json` writes a [`StoredEvent`]), for stores that keep events as
/// one document, after every check of the limits.
///
/// # Errors
///
/// As [`check_envelope`], [`encode_payload`] and [`encode_properties`].
pub fn encode_event(event: &StoredEvent) -> Result<Vec<u8>> {
    check_envelope(event)?;
    // One buffer, written once: each part is counted against its limit as
    // it is appended.
    let mut out = Vec::with_capacity(event.topic.len() + 64);
    out.extend_from_slice(br#"{"topic":"#);
    serde_json::to_writer(&mut out, &event.topic).map_err(Error::serialization)?;
    out.extend_from_slice(br#","payload":"#);
    let mut payload = Bounded::appending(out, MAX_PAYLOAD_LEN);
    write_payload(&mut payload, &event.payload)?;
    let mut out = payload.into_vec();
    out.extend_from_slice(br#","properties":"#);
    let mut properties = Bounded::appending(out, MAX_PROPERTIES_LEN);
    write_properties(&mut properties, &event.properties)?;
    let mut out = properties.into_vec();
    out.push(b'}');
    Ok(out)
}

/// Checks every limit of an event, for a store that keeps it without
/// writing JSON (the JSON is written into a counter, not kept).
///
/// # Errors
///
/// As [`encode_event`].
pub fn check_stored(event: &StoredEvent) -> Result<()> {
    check_envelope(event)?;
    write_payload(&mut Bounded::counting(MAX_PAYLOAD_LEN), &event.payload)?;
    write_properties(
        &mut Bounded::counting(MAX_PROPERTIES_LEN),
        &event.properties,
    )
}

fn write_payload(out: &mut Bounded, payload: &Value) -> Result<()> {
    finite::to_writer(WHAT_PAYLOAD_DEPTH, &mut *out, payload)?;
    out.check(WHAT_PAYLOAD_LEN)
}

/// Writes `{"key":value,…}` as `serde_json` would, each value checked for
/// depth on its own (the map's level is the envelope's, not the value's).
fn write_properties(out: &mut Bounded, properties: &Map<String, Value>) -> Result<()> {
    out.push(b'{');
    for (index, (key, value)) in properties.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).map_err(Error::serialization)?;
        out.push(b':');
        finite::to_writer(WHAT_PROPERTY_DEPTH, &mut *out, value)?;
    }
    out.push(b'}');
    out.check(WHAT_PROPERTIES_LEN)
}

/// A writer that appends at most `limit` bytes to its buffer (dropping the
/// buffer past that) and counts them all, so that an oversized value costs
/// no more memory than the limit and is still reported with its size.
struct Bounded {
    kept: Option<Vec<u8>>,
    len: usize,
    limit: usize,
}

impl Bounded {
    fn keeping(limit: usize) -> Self {
        Self::appending(Vec::new(), limit)
    }

    fn appending(buffer: Vec<u8>, limit: usize) -> Self {
        Self {
            kept: Some(buffer),
            len: 0,
            limit,
        }
    }

    fn counting(limit: usize) -> Self {
        Self {
            kept: None,
            len: 0,
            limit,
        }
    }

    fn push(&mut self, byte: u8) {
        io::Write::write_all(self, &[byte]).unwrap_or_else(|_| unreachable!("never fails"));
    }

    fn check(&self, what: &'static str) -> Result<()> {
        if self.len > self.limit {
            return Err(Error::LimitExceeded {
                what,
                limit: self.limit,
                actual: self.len,
            });
        }
        Ok(())
    }

    /// The buffer; only called after [`Bounded::check`] passed, so it was
    /// kept whole.
    fn into_vec(self) -> Vec<u8> {
        self.kept.unwrap_or_default()
    }

    fn into_string(self) -> Result<String> {
        // serde_json writes UTF-8 only.
        String::from_utf8(self.into_vec()).map_err(Error::serialization)
    }
}

impl io::Write for Bounded {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.len = self.len.saturating_add(bytes.len());
        if self.len > self.limit {
            self.kept = None;
        } else if let Some(kept) = &mut self.kept {
            kept.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::PROPERTY_EVENT_ID;
    use crate::limits::{
        MAX_EVENT_ID_LEN, MAX_JSON_DEPTH, MAX_PROPERTY_KEY_LEN, WHAT_EVENT_ID_LEN,
        WHAT_PROPERTY_KEY_LEN,
    };

    fn event(payload: Value, properties: Value) -> StoredEvent {
        let Value::Object(properties) = properties else {
            panic!("properties must be an object");
        };
        StoredEvent {
            topic: "user.created".into(),
            payload,
            properties,
        }
    }

    fn nested(depth: usize) -> Value {
        (0..depth).fold(json!("leaf"), |value, _| {
            Value::Object(Map::from_iter([("k".to_owned(), value)]))
        })
    }

    fn what(result: Result<impl std::fmt::Debug>) -> &'static str {
        match result {
            Err(Error::LimitExceeded { what, .. }) => what,
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    #[test]
    fn encodes_as_serde_json_does() {
        let event = event(
            json!({ "name": "Ada \u{0}\u{202e}", "n": [1, 2.5, u64::MAX, i64::MIN] }),
            json!({ PROPERTY_EVENT_ID: "evt-1", "nested": nested(3) }),
        );
        assert_eq!(
            encode_event(&event).unwrap(),
            serde_json::to_vec(&event).unwrap()
        );
        assert_eq!(
            encode_payload(&event.payload).unwrap(),
            serde_json::to_string(&event.payload).unwrap()
        );
        assert_eq!(
            encode_properties(&event.properties).unwrap(),
            serde_json::to_string(&event.properties).unwrap()
        );
        check_stored(&event).unwrap();
        let empty = self::event(Value::Null, json!({}));
        assert_eq!(
            encode_event(&empty).unwrap(),
            serde_json::to_vec(&empty).unwrap()
        );
    }

    #[test]
    fn depth_is_admitted_at_the_limit_and_refused_past_it() {
        let at = event(
            nested(MAX_JSON_DEPTH),
            json!({ "p": nested(MAX_JSON_DEPTH) }),
        );
        encode_event(&at).unwrap();
        check_stored(&at).unwrap();
        // The envelope adds two levels: still far below serde_json's 128.
        let json = encode_event(&at).unwrap();
        let back: StoredEvent = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, at);

        let deep_payload = event(nested(MAX_JSON_DEPTH + 1), json!({}));
        assert_eq!(what(encode_event(&deep_payload)), WHAT_PAYLOAD_DEPTH);
        assert_eq!(what(check_stored(&deep_payload)), WHAT_PAYLOAD_DEPTH);
        let deep_property = event(json!(1), json!({ "p": nested(MAX_JSON_DEPTH + 1) }));
        assert_eq!(what(encode_event(&deep_property)), WHAT_PROPERTY_DEPTH);
        assert_eq!(what(check_stored(&deep_property)), WHAT_PROPERTY_DEPTH);
    }

    #[test]
    fn sizes_are_admitted_at_the_limit_and_refused_past_it() {
        // A JSON string's two quotes count.
        let at = json!("a".repeat(MAX_PAYLOAD_LEN - 2));
        assert_eq!(encode_payload(&at).unwrap().len(), MAX_PAYLOAD_LEN);
        let past = json!("a".repeat(MAX_PAYLOAD_LEN - 1));
        let err = encode_payload(&past).unwrap_err();
        assert!(
            matches!(err, Error::LimitExceeded { what: WHAT_PAYLOAD_LEN, limit: MAX_PAYLOAD_LEN, actual } if actual == MAX_PAYLOAD_LEN + 1),
            "{err}"
        );
        assert_eq!(
            what(check_stored(&event(past, json!({})))),
            WHAT_PAYLOAD_LEN
        );

        let big = json!({ "p": "a".repeat(MAX_PROPERTIES_LEN) });
        assert_eq!(
            what(encode_event(&event(json!(1), big.clone()))),
            WHAT_PROPERTIES_LEN
        );
        assert_eq!(
            what(check_stored(&event(json!(1), big))),
            WHAT_PROPERTIES_LEN
        );
    }

    #[test]
    fn names_are_checked() {
        let long_key = "k".repeat(MAX_PROPERTY_KEY_LEN + 1);
        let mut properties = Map::new();
        properties.insert(long_key, json!(1));
        assert_eq!(
            what(encode_event(&event(json!(1), Value::Object(properties)))),
            WHAT_PROPERTY_KEY_LEN
        );
        let long_id = event(
            json!(1),
            json!({ PROPERTY_EVENT_ID: "i".repeat(MAX_EVENT_ID_LEN + 1) }),
        );
        assert_eq!(what(check_stored(&long_id)), WHAT_EVENT_ID_LEN);
        let nul_id = event(json!(1), json!({ PROPERTY_EVENT_ID: "a\u{0}b" }));
        assert!(matches!(
            check_stored(&nul_id),
            Err(Error::InvalidEventId { .. })
        ));
        let mut bad_topic = event(json!(1), json!({}));
        bad_topic.topic = "a\u{0}b".into();
        assert!(matches!(
            encode_event(&bad_topic),
            Err(Error::InvalidTopicName { .. })
        ));
    }
}
