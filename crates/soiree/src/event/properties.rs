//! Properties: JSON metadata shared by the listeners of one emission.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde_json::{Map, Value};
use ulid::Ulid;

/// The reserved property key that holds an event's id: the idempotency key
/// across retries and replays. Set on every emitted event that lacks one.
pub const PROPERTY_EVENT_ID: &str = "soiree.event_id";

/// Ad-hoc metadata carried with an event.
///
/// Properties are a shared handle: clones see the same map, so a listener sees
/// what an earlier listener of the same emission set, and a caller that kept a
/// clone sees what the listeners set.
///
/// The event id (`soiree.event_id`) is a property like any other to readers;
/// the bus keeps a generated id in compact form and renders it on demand, so
/// emitting allocates no map entry for it.
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
#[derive(Default)]
pub struct Properties {
    /// Made on first use: most emissions never touch their properties, and
    /// then cost no allocation for them.
    shared: OnceLock<Arc<Mutex<State>>>,
    /// An id is due (see [`EventId::Due`]) but the map is not made yet.
    id_due: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    map: Map<String, Value>,
    /// The `soiree.event_id` property, kept apart from the map.
    event_id: Option<EventId>,
}

#[derive(Debug, Clone)]
enum EventId {
    /// A ULID is due but not made yet: most in-memory emissions never read
    /// their id, so the clock and the random source are read on first use.
    Due,
    Generated(Ulid),
    Value(Value),
}

impl State {
    /// The event id, made now if it was due.
    fn event_id(&mut self) -> Option<Value> {
        let id = self.event_id.as_mut()?;
        if matches!(id, EventId::Due) {
            *id = EventId::Generated(Ulid::generate());
        }
        Some(match id {
            EventId::Generated(ulid) => Value::String(ulid.to_string()),
            EventId::Value(value) => value.clone(),
            EventId::Due => Value::Null,
        })
    }
}

impl Properties {
    /// Creates an empty property map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates properties from a JSON map.
    pub fn from_map(mut map: Map<String, Value>) -> Self {
        let event_id = map.remove(PROPERTY_EVENT_ID).map(EventId::Value);
        Self {
            shared: OnceLock::from(Arc::new(Mutex::new(State { map, event_id }))),
            id_due: AtomicBool::new(false),
        }
    }

    /// Sets `key` to `value`, replacing any earlier value, and returns `self`
    /// so calls can be chained.
    pub fn set(&self, key: impl Into<String>, value: impl Into<Value>) -> &Self {
        let key = key.into();
        let value = value.into();
        let mut state = self.lock();
        if key == PROPERTY_EVENT_ID {
            state.event_id = Some(EventId::Value(value));
        } else {
            state.map.insert(key, value);
        }
        self
    }

    /// Returns a copy of the value at `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        let mut state = self.lock();
        if key == PROPERTY_EVENT_ID {
            return state.event_id();
        }
        state.map.get(key).cloned()
    }

    /// Returns the value at `key` when it is a string.
    pub fn get_str(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&self, key: &str) -> Option<Value> {
        let mut state = self.lock();
        if key == PROPERTY_EVENT_ID {
            let id = state.event_id();
            state.event_id = None;
            return id;
        }
        state.map.remove(key)
    }

    /// Reports whether `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        let state = self.lock();
        if key == PROPERTY_EVENT_ID {
            return state.event_id.is_some();
        }
        state.map.contains_key(key)
    }

    /// The number of properties.
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.map.len() + usize::from(state.event_id.is_some())
    }

    /// Reports whether there are no properties.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of every property.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut state = self.lock();
        let mut map = state.map.clone();
        if let Some(id) = state.event_id() {
            map.insert(PROPERTY_EVENT_ID.to_owned(), id);
        }
        map
    }

    /// Gives the event an id unless it has one: from `generate`, or else a
    /// ULID made when first read and kept in compact form.
    pub(crate) fn ensure_event_id(&self, generate: Option<&(dyn Fn() -> String + Send + Sync)>) {
        if generate.is_none() && self.shared.get().is_none() {
            self.id_due.store(true, Ordering::Release);
            return;
        }
        let mut state = self.lock();
        if state.event_id.is_none() {
            state.event_id = Some(match generate {
                Some(generate) => EventId::Value(Value::String(generate())),
                None => EventId::Due,
            });
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Map operations cannot leave the map inconsistent, so a panic elsewhere
        // while the lock was held does not invalidate it.
        let mut state = self
            .shared
            .get_or_init(Arc::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.id_due.swap(false, Ordering::AcqRel) && state.event_id.is_none() {
            state.event_id = Some(EventId::Due);
        }
        state
    }
}

impl Clone for Properties {
    /// Another handle on the same map.
    fn clone(&self) -> Self {
        // Settle a due id first, so that both handles see the same one.
        drop(self.lock());
        Self {
            shared: self.shared.clone(),
            id_due: AtomicBool::new(false),
        }
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.to_map()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_id_reads_like_any_property() {
        let props = Properties::new();
        assert!(!props.contains(PROPERTY_EVENT_ID));
        props.ensure_event_id(None);
        let id = props.get_str(PROPERTY_EVENT_ID).unwrap();
        assert_eq!(id.len(), 26, "a ULID string");
        assert_eq!(props.to_map()[PROPERTY_EVENT_ID], Value::String(id.clone()));
        assert_eq!(props.len(), 1);
        props.ensure_event_id(None);
        assert_eq!(
            props.get_str(PROPERTY_EVENT_ID),
            Some(id),
            "kept when present"
        );
        props.set(PROPERTY_EVENT_ID, "custom");
        assert_eq!(props.get_str(PROPERTY_EVENT_ID).as_deref(), Some("custom"));
        assert_eq!(props.remove(PROPERTY_EVENT_ID), Some(Value::from("custom")));
        assert!(props.is_empty());
    }

    #[test]
    fn from_map_keeps_a_stored_id() {
        let mut map = Map::new();
        map.insert(PROPERTY_EVENT_ID.into(), "evt-1".into());
        map.insert("k".into(), 1.into());
        let props = Properties::from_map(map.clone());
        assert_eq!(props.to_map(), map);
    }
}
