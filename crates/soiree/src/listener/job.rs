//! A job's view for its listeners: the one interface through which the
//! listener layer reaches the emission it handles and the bus behind it.

use crate::{Error, Event, EventBus};

use super::{ListenerEntry, PipelineHandle};

/// One job of the bus (an emission or a delivery, with its route), as its
/// listeners see it. The bus implements it; the listener pipeline and
/// [`EventContext`](super::EventContext) know nothing else of the bus.
pub(crate) trait ListenerJob: Send + Sync {
    /// The bus's pipeline settings, built once per bus.
    fn pipeline(&self) -> &PipelineHandle;

    /// The event being handled.
    fn event(&self) -> &Event;

    /// Listener `index` of the job's route.
    fn listener(&self, index: usize) -> &ListenerEntry;

    /// Passes an error through the bus's error handler to the emission.
    fn report(&self, error: Error);

    /// The bus, for a listener that emits follow-up events or changes
    /// listeners.
    fn bus(&self) -> EventBus;

    /// The queue store's receipt of the delivery this job runs, if it is one.
    fn receipt(&self) -> Option<&str> {
        None
    }

    /// Asks the job to have its delivery snoozed in the store for `delay`
    /// once its other listeners have run (see [`Snooze`](crate::Snooze)):
    /// true when it will be (a queue delivery whose store defers, no error
    /// so far); false when the snooze must wait in the process.
    fn defer(&self, delay: std::time::Duration) -> bool {
        let _ = delay;
        false
    }

    /// Whether the success of listener `index` ends a delivery that the bus
    /// then acknowledges: the job is a queue's delivery, no error reached
    /// it so far, and every listener after `index` is removed.
    fn settles_after(&self, index: usize) -> bool {
        let _ = index;
        false
    }
}
