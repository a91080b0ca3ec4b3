//! Payloads: any value, with an optional JSON form for stores.

use std::any::{Any, TypeId, type_name};
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Error, Result};

type ToJson = fn(&(dyn Any + Send + Sync)) -> Result<Value>;
type Decoded = (TypeId, Box<dyn Any + Send + Sync>);

/// An event's payload: any `Send + Sync` value, cheap to clone.
///
/// Payloads built with [`Payload::new`] can be serialized to JSON when a store
/// needs them; [`Payload::opaque`] holds values that cannot (a store then
/// reports [`Error::Serialization`]). Payloads that come back from a store are
/// JSON ([`Payload::from_json`]) and decode into the listener's type on demand.
///
/// # Examples
///
/// ```
/// use soiree::Payload;
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct User { id: u32 }
///
/// let payload = Payload::new(User { id: 7 });
/// assert_eq!(payload.downcast_ref::<User>(), Some(&User { id: 7 }));
/// assert_eq!(payload.to_json().unwrap(), serde_json::json!({ "id": 7 }));
///
/// let stored = Payload::from_json(serde_json::json!({ "id": 7 }));
/// assert_eq!(stored.decode::<User>().unwrap(), User { id: 7 });
/// ```
#[derive(Clone, Default)]
pub struct Payload(Option<Arc<Inner<dyn Any + Send + Sync>>>);

struct Inner<V: ?Sized> {
    type_name: &'static str,
    to_json: Option<ToJson>,
    /// The first JSON decoding into another type, kept so that each listener of
    /// an emission does not decode again.
    /// Boxed: most payloads are never decoded, and each carries this slot.
    decoded: OnceLock<Box<Decoded>>,
    value: V,
}

impl Payload {
    /// A payload that can be serialized to JSON.
    pub fn new<T: Serialize + Send + Sync + 'static>(value: T) -> Self {
        Self::build(value, Some(to_json_of::<T>))
    }

    /// A payload that has no JSON form; stores reject it with
    /// [`Error::Serialization`].
    pub fn opaque<T: Send + Sync + 'static>(value: T) -> Self {
        Self::build(value, None)
    }

    /// A payload read back from a store.
    pub fn from_json(value: Value) -> Self {
        Self::new(value)
    }

    /// No payload.
    pub fn empty() -> Self {
        Self(None)
    }

    fn build<T: Send + Sync + 'static>(value: T, to_json: Option<ToJson>) -> Self {
        let inner: Arc<Inner<dyn Any + Send + Sync>> = Arc::new(Inner {
            type_name: type_name::<T>(),
            to_json,
            decoded: OnceLock::new(),
            value,
        });
        Self(Some(inner))
    }

    /// Reports whether there is no payload.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The Rust type name of the value held, if any.
    pub fn type_name(&self) -> Option<&'static str> {
        self.0.as_ref().map(|inner| inner.type_name)
    }

    /// Borrows the value when it is a `T`.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        self.0.as_ref()?.value.downcast_ref()
    }

    /// The JSON form of the payload (`null` when there is none).
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`] when the payload is opaque, its `Serialize`
    /// implementation fails, or it holds a non-finite float (NaN, ±infinity:
    /// JSON has no form for them, and `serde_json` would write `null`);
    /// [`Error::LimitExceeded`] when it nests deeper than
    /// [`MAX_JSON_DEPTH`](crate::limits::MAX_JSON_DEPTH) (checked while the
    /// JSON is made, not in a second pass).
    pub fn to_json(&self) -> Result<Value> {
        let Some(inner) = &self.0 else {
            return Ok(Value::Null);
        };
        let to_json = inner.to_json.ok_or_else(|| {
            Error::serialization(format!(
                "payload of type {} has no JSON form (built with Payload::opaque)",
                inner.type_name
            ))
        })?;
        to_json(&inner.value)
    }

    /// The payload as a `T`: the value itself when it is one, otherwise decoded
    /// from its JSON form (payloads that came back from a store). The first
    /// decoding is cached.
    ///
    /// # Errors
    ///
    /// [`Error::NilPayload`] when there is no payload, and
    /// [`Error::PayloadTypeMismatch`] when the value is neither a `T` nor
    /// JSON that decodes into one.
    pub fn decode<T>(&self) -> Result<T>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let inner = self.0.as_ref().ok_or(Error::NilPayload)?;
        if let Some(value) = inner.value.downcast_ref::<T>() {
            return Ok(value.clone());
        }
        if let Some((type_id, value)) = inner.decoded.get().map(|decoded| &**decoded)
            && *type_id == TypeId::of::<T>()
            && let Some(value) = value.downcast_ref::<T>()
        {
            return Ok(value.clone());
        }
        let mismatch = |reason: String| Error::PayloadTypeMismatch {
            expected: type_name::<T>(),
            reason,
        };
        let json = match inner.value.downcast_ref::<Value>() {
            Some(json) => json.clone(),
            None => self
                .to_json()
                .map_err(|_| mismatch(format!("found {}", inner.type_name)))?,
        };
        let value: T = serde_json::from_value(json).map_err(|err| {
            mismatch(format!(
                "found {} that does not decode: {err}",
                inner.type_name
            ))
        })?;
        let _ = inner
            .decoded
            .set(Box::new((TypeId::of::<T>(), Box::new(value.clone()))));
        Ok(value)
    }
}

fn to_json_of<T: Serialize + 'static>(value: &(dyn Any + Send + Sync)) -> Result<Value> {
    match value.downcast_ref::<T>() {
        Some(value) => super::finite::to_value(crate::limits::WHAT_PAYLOAD_DEPTH, value),
        None => Err(Error::serialization("payload type changed")),
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Payload(empty)"),
            Some(inner) => write!(f, "Payload({})", inner.type_name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct User {
        id: u32,
    }

    #[test]
    fn decodes_json_once_and_caches() {
        let payload = Payload::from_json(serde_json::json!({ "id": 3 }));
        assert_eq!(payload.decode::<User>().unwrap(), User { id: 3 });
        let cached = payload.0.as_ref().unwrap().decoded.get().unwrap();
        assert_eq!(cached.0, TypeId::of::<User>());
        assert_eq!(payload.decode::<User>().unwrap(), User { id: 3 });
    }

    #[test]
    fn mismatches_are_typed_errors() {
        let payload = Payload::from_json(serde_json::json!("not a user"));
        assert!(matches!(
            payload.decode::<User>(),
            Err(Error::PayloadTypeMismatch { .. })
        ));
        assert!(matches!(
            Payload::opaque(std::time::Instant::now()).decode::<User>(),
            Err(Error::PayloadTypeMismatch { .. })
        ));
        assert!(matches!(
            Payload::empty().decode::<User>(),
            Err(Error::NilPayload)
        ));
    }

    #[test]
    fn opaque_payloads_do_not_serialize() {
        let err = Payload::opaque(std::time::Instant::now())
            .to_json()
            .unwrap_err();
        assert!(matches!(err, Error::Serialization(_)));
    }
}
