//! A test double for code that emits events.

use std::sync::{Mutex, MutexGuard};

use crate::{Emission, Emitter, Event};

/// An [`Emitter`] that records what is emitted and runs nothing: for unit
/// tests of code that emits (the Go package's test pattern with a mock
/// emitter). Every emission it returns is already over, with no error.
///
/// # Examples
///
/// ```
/// use soiree::testing::RecordingEmitter;
/// use soiree::{Emitter, Event};
///
/// let recorder = RecordingEmitter::new();
/// recorder.emit_event(Event::new("user.created", "ada")).detach();
/// let events = recorder.events();
/// assert_eq!(events.len(), 1);
/// assert_eq!(events[0].topic(), "user.created");
/// assert_eq!(soiree::unwrap_payload::<String>(&events[0]).unwrap(), "ada");
/// ```
#[derive(Debug, Default)]
pub struct RecordingEmitter {
    events: Mutex<Vec<Event>>,
}

impl RecordingEmitter {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events emitted so far, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.lock().clone()
    }

    /// The topics emitted so far, oldest first.
    pub fn topics(&self) -> Vec<String> {
        self.lock().iter().map(|e| e.topic().to_owned()).collect()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Event>> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Emitter for RecordingEmitter {
    fn emit_event(&self, event: Event) -> Emission {
        self.lock().push(event);
        Emission::completed([])
    }
}
