//! The checks of an event's names: topic, event id, property keys.

use super::{MAX_EVENT_ID_LEN, MAX_PROPERTY_KEY_LEN, WHAT_EVENT_ID_LEN, WHAT_PROPERTY_KEY_LEN};
use crate::{Error, Result, StoredEvent};

/// Checks an emitted (concrete) topic as the bus does and returns it
/// trimmed: not empty, no empty segment, no `?`, `[`, wildcard or NUL, at
/// most [`MAX_TOPIC_LEN`](super::MAX_TOPIC_LEN) bytes and
/// [`MAX_TOPIC_SEGMENTS`](super::MAX_TOPIC_SEGMENTS) segments.
///
/// # Errors
///
/// [`Error::InvalidTopicName`], with the reason.
///
/// # Examples
///
/// ```
/// use soiree::limits::check_topic;
///
/// assert_eq!(check_topic(" user.created ").unwrap(), "user.created");
/// assert!(check_topic(&"a.".repeat(300)).is_err());
/// ```
pub fn check_topic(topic: &str) -> Result<&str> {
    crate::topic::validate_topic(topic)
}

/// Checks an event id: at most [`MAX_EVENT_ID_LEN`] bytes, no NUL.
///
/// # Errors
///
/// [`Error::LimitExceeded`] for a long id, [`Error::InvalidEventId`] for an
/// id holding NUL.
pub fn check_event_id(id: &str) -> Result<()> {
    if id.len() > MAX_EVENT_ID_LEN {
        return Err(Error::LimitExceeded {
            what: WHAT_EVENT_ID_LEN,
            limit: MAX_EVENT_ID_LEN,
            actual: id.len(),
        });
    }
    if id.contains('\0') {
        return Err(Error::invalid_event_id(
            id,
            "it contains a NUL character, which databases refuse in text",
        ));
    }
    Ok(())
}

/// Checks a property key: at most [`MAX_PROPERTY_KEY_LEN`] bytes.
///
/// # Errors
///
/// [`Error::LimitExceeded`].
pub fn check_property_key(key: &str) -> Result<()> {
    if key.len() > MAX_PROPERTY_KEY_LEN {
        return Err(Error::LimitExceeded {
            what: WHAT_PROPERTY_KEY_LEN,
            limit: MAX_PROPERTY_KEY_LEN,
            actual: key.len(),
        });
    }
    Ok(())
}

/// Checks the names of a stored event, which cost nothing to check: its
/// topic ([`check_topic`]), its event id when it has one
/// ([`check_event_id`]) and its property keys ([`check_property_key`]).
/// The JSON limits (depth, sizes) are checked where it is written:
/// [`encode_event`](super::encode_event), [`encode_payload`](super::encode_payload),
/// [`check_stored`](super::check_stored).
///
/// # Errors
///
/// As the checks named.
pub fn check_envelope(event: &StoredEvent) -> Result<()> {
    check_topic(&event.topic)?;
    if let Some(id) = event.id() {
        check_event_id(id)?;
    }
    check_properties_keys(&event.properties)
}

/// [`check_property_key`] for every key of `properties`.
pub(crate) fn check_properties_keys(
    properties: &serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    properties
        .keys()
        .try_for_each(|key| check_property_key(key))
}
