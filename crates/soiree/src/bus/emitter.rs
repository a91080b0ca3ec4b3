//! The `Emitter` trait: what code that emits depends on, so that tests can
//! hand it a double instead of a bus.

use super::{Emission, EventBus};
use crate::Event;

/// Something events are emitted to: an [`EventBus`], or a test double such
/// as [`RecordingEmitter`](crate::testing::RecordingEmitter). The Go
/// package's `Emitter` interface.
///
/// Object safe: take `&dyn Emitter` (or `Arc<dyn Emitter>`) where code only
/// emits.
///
/// # Examples
///
/// ```
/// use soiree::{Emitter, Event, EventBus};
/// use soiree::testing::RecordingEmitter;
///
/// fn place_order(events: &dyn Emitter, id: u64) {
///     events.emit_event(Event::new("order.placed", id)).detach();
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // In production: a bus.
/// let bus = EventBus::new();
/// place_order(&bus, 7);
///
/// // In a unit test: a double that records.
/// let recorder = RecordingEmitter::new();
/// place_order(&recorder, 7);
/// assert_eq!(recorder.topics(), ["order.placed"]);
/// # }
/// ```
pub trait Emitter: Send + Sync {
    /// Emits `event` on its own topic, without waiting (see [`EventBus::emit`]).
    fn emit_event(&self, event: Event) -> Emission;
}

impl Emitter for EventBus {
    fn emit_event(&self, event: Event) -> Emission {
        EventBus::emit_event(self, event)
    }
}
