//! What the panic handler is told.

use std::any::Any;

use super::ListenerId;

/// A caught listener panic, as given to the bus's panic handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerPanic {
    /// The listener that panicked.
    pub listener_id: ListenerId,
    /// The emitted topic.
    pub topic: String,
    /// The panic message (`"<non-string panic>"` when the payload was not a string).
    pub message: String,
}

/// The message of a panic payload.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "<non-string panic>".to_owned()
    }
}
