//! Properties: JSON metadata shared by the listeners of one emission.

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};

/// The reserved property key that holds an event's id: the idempotency key
/// across retries and replays. Set on every emitted event that lacks one.
pub const PROPERTY_EVENT_ID: &str = "soiree.event_id";

/// Ad-hoc metadata carried with an event.
///
/// Properties are a shared handle: clones see the same map, so a listener sees
/// what an earlier listener of the same emission set.
///
/// # Examples
///
/// ```
/// use soiree::Properties;
///
/// let props = Properties::new();
/// props.set("name", "Ada Lovelace").set("age", 36);
/// assert_eq!(props.get_str("name").as_deref(), Some("Ada Lovelace"));
/// assert_eq!(props.get("age"), Some(serde_json::json!(36)));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Properties {
    inner: Arc<Mutex<Map<String, Value>>>,
}

impl Properties {
    /// Creates an empty property map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates properties from an existing JSON map.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(map)),
        }
    }

    /// Sets `key` to `value`, replacing any earlier value, and returns `self`
    /// so calls can be chained.
    pub fn set(&self, key: impl Into<String>, value: impl Into<Value>) -> &Self {
        self.lock().insert(key.into(), value.into());
        self
    }

    /// Returns a copy of the value at `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.lock().get(key).cloned()
    }

    /// Returns the value at `key` when it is a string.
    pub fn get_str(&self, key: &str) -> Option<String> {
        match self.lock().get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&self, key: &str) -> Option<Value> {
        self.lock().remove(key)
    }

    /// Reports whether `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    /// The number of properties.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Reports whether there are no properties.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// A copy of every property.
    pub fn to_map(&self) -> Map<String, Value> {
        self.lock().clone()
    }

    /// Sets `key` to `value` unless it is already set; returns the value now held.
    pub(crate) fn get_or_insert_with(&self, key: &str, value: impl FnOnce() -> String) -> Value {
        self.lock()
            .entry(key)
            .or_insert_with(|| Value::String(value()))
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, Map<String, Value>> {
        // Map operations cannot leave the map inconsistent, so a panic elsewhere
        // while the lock was held does not invalidate it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
