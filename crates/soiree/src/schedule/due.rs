//! The due time of a delayed event, as stores keep it.

use std::time::SystemTime;

use serde_json::Value;

use crate::{Error, Result};

/// The reserved property key that holds a delayed event's due time in a
/// stored event ([`StoredEvent`](crate::StoredEvent)): an RFC 3339 time in
/// UTC with up to nanosecond precision, such as
/// `"2026-12-07T09:30:00.25Z"` — readable in listings, and cast directly by
/// PostgreSQL (`::timestamptz`) and SQLite's date functions. Reading
/// accepts any RFC 3339 offset.
///
/// Set it with [`Event::deliver_at`](crate::Event::deliver_at) or
/// [`EventBus::emit_at`](crate::EventBus::emit_at), never by hand: the bus
/// reads the event's due time, and [`StoredEvent::from_event`](crate::StoredEvent::from_event)
/// writes it here. [`StoredEvent::into_event`](crate::StoredEvent::into_event)
/// moves it back out of the properties.
pub const PROPERTY_DUE_AT: &str = "soiree.due_at";

/// A due time as the property holds it.
pub(crate) fn format_due(due: SystemTime) -> Result<String> {
    let ts = jiff::Timestamp::try_from(due)
        .map_err(|err| Error::serialization(format!("due time out of range: {err}")))?;
    Ok(ts.to_string())
}

/// The due time a property holds.
pub(crate) fn parse_due(value: &Value) -> Result<SystemTime> {
    let Value::String(text) = value else {
        return Err(Error::serialization(format!(
            "{PROPERTY_DUE_AT} is not an RFC 3339 time string: {}",
            shown(&value.to_string())
        )));
    };
    let ts: jiff::Timestamp = text.parse().map_err(|err| {
        Error::serialization(format!(
            "{PROPERTY_DUE_AT} {:?} is not an RFC 3339 time: {err}",
            shown(text)
        ))
    })?;
    Ok(SystemTime::from(ts))
}

/// The first 64 characters of a hostile value, for an error.
fn shown(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn due_times_round_trip_to_the_nanosecond() {
        let due = SystemTime::UNIX_EPOCH + Duration::new(1_796_635_800, 123_456_789);
        let text = format_due(due).unwrap();
        assert_eq!(text, "2026-12-07T09:30:00.123456789Z");
        assert_eq!(parse_due(&Value::String(text)).unwrap(), due);
    }

    #[test]
    fn malformed_due_times_are_refused() {
        assert!(parse_due(&Value::from("tomorrow")).is_err());
        assert!(parse_due(&Value::from(17)).is_err());
        let offset = parse_due(&Value::from("2026-12-07T10:30:00+01:00")).unwrap();
        assert_eq!(
            offset,
            parse_due(&Value::from("2026-12-07T09:30:00Z")).unwrap()
        );
    }
}
