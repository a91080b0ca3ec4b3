//! Extracting a typed payload from an event.

use serde::de::DeserializeOwned;

use crate::{Event, Result};

/// The event's payload as a `T`: downcast first, then decoded from JSON (for
/// payloads that came back from a store), with the decoding cached on the
/// payload so each listener of an emission does not decode again.
///
/// # Errors
///
/// [`Error::NilPayload`](crate::Error::NilPayload) for an event without
/// payload; [`Error::PayloadTypeMismatch`](crate::Error::PayloadTypeMismatch)
/// when the payload is not a `T` and does not decode into one.
///
/// # Examples
///
/// ```
/// use soiree::{Event, Payload, unwrap_payload};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Order { id: u64 }
///
/// let live = Event::new("order.placed", Order { id: 1 });
/// assert_eq!(unwrap_payload::<Order>(&live).unwrap(), Order { id: 1 });
///
/// let stored = Event::with_payload("order.placed", Payload::from_json(serde_json::json!({ "id": 2 })));
/// assert_eq!(unwrap_payload::<Order>(&stored).unwrap(), Order { id: 2 });
/// assert!(unwrap_payload::<String>(&stored).is_err());
/// ```
pub fn unwrap_payload<T>(event: &Event) -> Result<T>
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    event.payload().decode()
}
