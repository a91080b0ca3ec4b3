//! The limits every entry point enforces, in one place.
//!
//! An event that a store accepts must be one that every consumer can read
//! back: `serde_json`'s parser, used by every consumer, stops at 128 levels
//! of nesting; PostgreSQL refuses btree index entries over about 2.7 KB
//! (event ids are indexed) and text holding NUL. So each entry point (the
//! bus's emit with a store, the stores' `enqueue` and `save_event`, the SQL
//! store's `emit_in`, `emit_all_in` and `record`) checks these limits
//! before it writes anything, and refuses an event past one with a typed
//! error; nothing is written then, and the events around it are not
//! affected.
//!
//! | limit | value | checked on | error |
//! |---|---|---|---|
//! | topic length | [`MAX_TOPIC_LEN`] bytes (64 KiB) | the topic as given | [`Error::InvalidTopicName`] |
//! | topic segments | [`MAX_TOPIC_SEGMENTS`] (256) | the topic | [`Error::InvalidTopicName`] |
//! | NUL in a topic | refused | the topic | [`Error::InvalidTopicName`] |
//! | event id length | [`MAX_EVENT_ID_LEN`] bytes (256) | `soiree.event_id` | [`Error::LimitExceeded`] |
//! | NUL in an event id | refused | `soiree.event_id` | [`Error::InvalidEventId`] |
//! | nesting depth | [`MAX_JSON_DEPTH`] (64) arrays or objects | the payload, and each property value | [`Error::LimitExceeded`] |
//! | payload size | [`MAX_PAYLOAD_LEN`] bytes (1 MiB) | the payload's JSON | [`Error::LimitExceeded`] |
//! | property key length | [`MAX_PROPERTY_KEY_LEN`] bytes (256) | each property key | [`Error::LimitExceeded`] |
//! | properties size | [`MAX_PROPERTIES_LEN`] bytes (64 KiB) | the properties' JSON (the event id included) | [`Error::LimitExceeded`] |
//!
//! Depth is checked while the JSON is written (the bus writes it once, when
//! it turns the payload into a [`StoredEvent`]; a store that serializes
//! checks sizes on the bytes it writes anyway), never by parsing it again.
//! Without a store the bus writes no JSON and checks only the topic.
//! Numbers JSON cannot hold (NaN, infinities, integers beyond 64 bits) are
//! refused as [`Error::Serialization`].
//!
//! # Examples
//!
//! ```
//! use soiree::{Error, StoredEvent, limits};
//!
//! let mut payload = serde_json::json!("leaf");
//! for _ in 0..limits::MAX_JSON_DEPTH + 1 {
//!     payload = serde_json::json!([payload]);
//! }
//! let event = StoredEvent { topic: "deep".into(), payload, properties: Default::default() };
//! let err = limits::check_stored(&event).unwrap_err();
//! assert!(matches!(err, Error::LimitExceeded { what: limits::WHAT_PAYLOAD_DEPTH, .. }));
//! assert_eq!(err.to_string(), "payload nesting depth over the limit: 65 (limit 64)");
//! ```

mod check;
mod encode;

pub use crate::topic::{MAX_TOPIC_LEN, MAX_TOPIC_SEGMENTS};
use check::check_properties_keys;
pub use check::{check_envelope, check_event_id, check_property_key, check_topic};
pub use encode::{check_stored, encode_event, encode_payload, encode_properties};

/// The longest event id (`soiree.event_id`), in bytes: ids are indexed by
/// the SQL stores (with the listener id, in their dedup table), and
/// PostgreSQL refuses index entries over about 2.7 KB.
pub const MAX_EVENT_ID_LEN: usize = 256;

/// The deepest nesting of arrays and objects in a payload or a property
/// value (`[[1]]` is 2 deep). Consumers parse with `serde_json`, which stops
/// at 128 levels; stores wrap payloads and properties in an envelope of a
/// few levels more, so this stays well below.
pub const MAX_JSON_DEPTH: usize = 64;

/// The largest payload, in bytes of its JSON. Consumers read events in
/// batches: this bounds what one batch holds in memory.
pub const MAX_PAYLOAD_LEN: usize = 1024 * 1024;

/// The longest property key, in bytes.
pub const MAX_PROPERTY_KEY_LEN: usize = 256;

/// The largest set of properties, in bytes of their JSON (keys, values and
/// the event id).
pub const MAX_PROPERTIES_LEN: usize = 64 * 1024;

/// [`Error::LimitExceeded::what`](crate::Error::LimitExceeded) for an event id over
/// [`MAX_EVENT_ID_LEN`].
pub const WHAT_EVENT_ID_LEN: &str = "event id bytes";
/// `what` for a payload nesting deeper than [`MAX_JSON_DEPTH`].
pub const WHAT_PAYLOAD_DEPTH: &str = "payload nesting depth";
/// `what` for a property value nesting deeper than [`MAX_JSON_DEPTH`].
pub const WHAT_PROPERTY_DEPTH: &str = "property nesting depth";
/// `what` for a payload over [`MAX_PAYLOAD_LEN`].
pub const WHAT_PAYLOAD_LEN: &str = "payload bytes";
/// `what` for a property key over [`MAX_PROPERTY_KEY_LEN`].
pub const WHAT_PROPERTY_KEY_LEN: &str = "property key bytes";
/// `what` for properties over [`MAX_PROPERTIES_LEN`].
pub const WHAT_PROPERTIES_LEN: &str = "properties bytes";

#[cfg(doc)]
use crate::{Error, StoredEvent};
