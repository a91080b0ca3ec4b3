//! Events: a topic, a payload, shared properties, and the emitter's context.

mod envelope;
#[allow(clippy::module_inception)]
mod event;
pub(crate) mod finite;
mod payload;
mod properties;

pub use envelope::StoredEvent;
pub use event::{Event, IntoEvent, event_id};
pub use payload::Payload;
pub use properties::{PROPERTY_EVENT_ID, Properties};

#[cfg(feature = "otel")]
pub(crate) mod trace_context;
