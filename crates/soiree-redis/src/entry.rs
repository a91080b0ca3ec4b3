//! Decoding stream entries from raw Redis replies.
//!
//! Replies are walked by hand rather than through `redis`'s typed stream
//! replies: it keeps field values as bytes (no per-field map) and it tells a
//! deleted entry (`[id, nil]` in a pending list) from an empty one.

use redis::Value;

use crate::{Error, Result};

/// One stream entry. `fields` is `None` for an entry that was deleted while
/// it was pending.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) fields: Option<Vec<(String, Vec<u8>)>>,
}

impl Entry {
    /// The value of a field.
    pub(crate) fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .as_ref()?
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_slice())
    }

    /// The value of a field as (lossy) text.
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        self.field(name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }
}

/// The event id of an `event` field that is not a readable event (bad
/// JSON shape, a payload nested too deep), when its properties still carry
/// one: everything else in it is skipped unread. Quoted and cut short, as
/// it goes into an error message.
pub(crate) fn readable_event_id(json: &[u8]) -> Option<String> {
    /// The most characters of an id quoted in an error.
    const MAX_CHARS: usize = 128;
    let id: String = event_id_of(json)?.chars().take(MAX_CHARS).collect();
    Some(format!("{id:?}"))
}

/// The event id of an `event` field that is not a readable event, as it is
/// stored (see [`readable_event_id`]).
pub(crate) fn event_id_of(json: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        properties: Option<Properties>,
    }
    #[derive(serde::Deserialize)]
    struct Properties {
        #[serde(rename = "soiree.event_id")]
        id: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(json).ok()?.properties?.id? {
        serde_json::Value::String(id) => Some(id),
        serde_json::Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// A list of entries, as XRANGE and XCLAIM return them.
pub(crate) fn entries(value: Value) -> Result<Vec<Entry>> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(items) => items.into_iter().filter_map(entry).collect(),
        other => Err(unexpected("a list of entries", &other)),
    }
}

/// The entries of the one stream read by XREADGROUP (nil when none).
pub(crate) fn read_reply(value: Value) -> Result<Vec<Entry>> {
    let streams = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => Ok(pair.swap_remove(1)),
                other => Err(unexpected("a [key, entries] pair", &other)),
            })
            .collect::<Result<Vec<_>>>()?,
        Value::Map(pairs) => pairs.into_iter().map(|(_, entries)| entries).collect(),
        other => return Err(unexpected("a stream read reply", &other)),
    };
    let mut out = Vec::new();
    for stream in streams {
        out.extend(entries(stream)?);
    }
    Ok(out)
}

/// XAUTOCLAIM's reply: the next cursor, the claimed entries, and the ids of
/// pending entries that no longer exist (Redis 7+; absent before).
pub(crate) fn autoclaim_reply(value: Value) -> Result<(String, Vec<Entry>, Vec<String>)> {
    let Value::Array(mut parts) = value else {
        return Err(unexpected("an XAUTOCLAIM reply", &value));
    };
    if parts.len() < 2 {
        return Err(Error::UnexpectedReply("short XAUTOCLAIM reply".into()));
    }
    let deleted = if parts.len() > 2 {
        match parts.swap_remove(2) {
            Value::Array(ids) => ids.iter().filter_map(string).collect(),
            _ => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let claimed = entries(parts.swap_remove(1))?;
    let cursor = string(&parts[0]).ok_or_else(|| unexpected("a cursor", &parts[0]))?;
    Ok((cursor, claimed, deleted))
}

/// One row of XPENDING's extended form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingRow {
    pub(crate) id: String,
    pub(crate) consumer: String,
    pub(crate) idle_ms: u64,
    pub(crate) deliveries: u64,
}

/// XPENDING's extended form: `[[id, consumer, idle, count], …]`.
pub(crate) fn pending_rows(value: Value) -> Result<Vec<PendingRow>> {
    let Value::Array(rows) = value else {
        return Err(unexpected("XPENDING rows", &value));
    };
    rows.into_iter()
        .map(|row| match row {
            Value::Array(cols) if cols.len() == 4 => Ok(PendingRow {
                id: string(&cols[0]).unwrap_or_default(),
                consumer: string(&cols[1]).unwrap_or_default(),
                idle_ms: integer(&cols[2]).unwrap_or_default(),
                deliveries: integer(&cols[3]).unwrap_or_default(),
            }),
            other => Err(unexpected("an XPENDING row", &other)),
        })
        .collect()
}

/// A flat `[key, value, key, value, …]` list (or a RESP3 map) as pairs.
pub(crate) fn pairs(value: Value) -> Vec<(String, Value)> {
    match value {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(key), Some(value)) = (items.next(), items.next()) {
                out.push((string(&key).unwrap_or_default(), value));
            }
            out
        }
        Value::Map(items) => items
            .into_iter()
            .map(|(key, value)| (string(&key).unwrap_or_default(), value))
            .collect(),
        _ => Vec::new(),
    }
}

/// A string-like value as text.
pub(crate) fn string(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Some(text.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A numeric value (an integer, or text holding one).
pub(crate) fn integer(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => string(other)?.parse().ok(),
    }
}

fn entry(value: Value) -> Option<Result<Entry>> {
    let Value::Array(mut parts) = value else {
        return Some(Err(unexpected("an entry", &value)));
    };
    if parts.len() != 2 {
        return Some(Err(Error::UnexpectedReply(
            "an entry without two parts".into(),
        )));
    }
    let fields = parts.pop()?;
    let id = string(&parts[0])?;
    let fields = match fields {
        Value::Nil => None,
        other => Some(
            pairs(other)
                .into_iter()
                .map(|(key, value)| {
                    let bytes = match value {
                        Value::BulkString(bytes) => bytes,
                        other => string(&other).unwrap_or_default().into_bytes(),
                    };
                    (key, bytes)
                })
                .collect(),
        ),
    };
    Some(Ok(Entry { id, fields }))
}

fn unexpected(what: &str, value: &Value) -> Error {
    Error::UnexpectedReply(format!("expected {what}, got {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn reads_entries_and_deleted_ones() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("{soiree}:events"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("event"), bulk("{}")]),
                ]),
                Value::Array(vec![bulk("2-0"), Value::Nil]),
            ]),
        ])]);
        let entries = read_reply(reply).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].field("event"), Some(&b"{}"[..]));
        assert_eq!(entries[1].fields, None);
        assert_eq!(read_reply(Value::Nil).unwrap(), Vec::new());
    }

    #[test]
    fn reads_the_event_id_of_an_unreadable_event() {
        let deep = format!(
            r#"{{"topic":"a.b","payload":{}{},"properties":{{"soiree.event_id":"evt-9"}}}}"#,
            "[".repeat(300),
            "]".repeat(300)
        );
        assert!(serde_json::from_str::<soiree::StoredEvent>(&deep).is_err());
        assert_eq!(
            readable_event_id(deep.as_bytes()).as_deref(),
            Some(r#""evt-9""#)
        );
        let numbered = br#"{"payload":1,"properties":{"soiree.event_id":42}}"#;
        assert_eq!(readable_event_id(numbered).as_deref(), Some(r#""42""#));
        let hostile = "{\"properties\":{\"soiree.event_id\":\"a\\u001b[2Jb\"}}";
        assert_eq!(
            readable_event_id(hostile.as_bytes()).as_deref(),
            Some(r#""a\u{1b}[2Jb""#)
        );
        for unreadable in [
            &b"not json"[..],
            br#"{"properties":7}"#,
            br#"{"topic":"a"}"#,
        ] {
            assert_eq!(readable_event_id(unreadable), None);
        }
    }

    #[test]
    fn reads_autoclaim_and_pending() {
        let reply = Value::Array(vec![
            bulk("0-0"),
            Value::Array(vec![Value::Array(vec![bulk("3-0"), Value::Array(vec![])])]),
            Value::Array(vec![bulk("4-0")]),
        ]);
        let (cursor, claimed, deleted) = autoclaim_reply(reply).unwrap();
        assert_eq!(cursor, "0-0");
        assert_eq!(claimed[0].id, "3-0");
        assert_eq!(deleted, vec!["4-0".to_owned()]);
        let rows = pending_rows(Value::Array(vec![Value::Array(vec![
            bulk("3-0"),
            bulk("c1"),
            Value::Int(10),
            Value::Int(2),
        ])]))
        .unwrap();
        assert_eq!(rows[0].deliveries, 2);
        assert_eq!(rows[0].consumer, "c1");
    }
}
