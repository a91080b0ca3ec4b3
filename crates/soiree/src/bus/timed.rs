//! Delayed emits on the bus: `emit_at`, `emit_after`, cancelling, and what
//! the bus does with a delayed event it holds itself.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::dispatch::Work;
use super::persist::queue_dispatch;
use super::{BusInner, Emission, EmissionState, EventBus};
use crate::schedule::clock;
use crate::topic::validate_topic;
use crate::{Error, Event, IntoEvent, Result};

impl EventBus {
    /// Emits an event to be delivered at `when`, never before; a time
    /// already past delivers at once. The due time is the event's
    /// ([`Event::deliver_at`]); `event` is anything [`EventBus::emit`]
    /// takes.
    ///
    /// Where the event waits:
    ///
    /// | bus | until due | cancel ([`EventBus::cancel_scheduled`]) | after a restart |
    /// |---|---|---|---|
    /// | no store | a timer in this bus | yes | lost (warned at close) |
    /// | store without a queue (`MemoryStore::new()`) | persisted at once, then a timer in this bus | yes | lost (the stored copy stays) |
    /// | queue store that schedules (`MemoryStore::queue()`) | in the store | yes | kept, if the store is durable |
    /// | queue store that does not schedule yet | refused: [`Error::Unsupported`] | — | — |
    ///
    /// The emission ends once the event is held (or persisted): its
    /// listeners run later, as a detached emission whose errors reach the
    /// error handler (or the log); [`Emission::persisted`] returns the
    /// event's id. At most 100,000 delayed events wait in one bus's timers
    /// (then [`Error::QueueFull`]); a store holds any number. Due times
    /// are measured on tokio's clock anchored to the system clock, so a
    /// paused tokio clock drives them in tests ([`crate::testing::TestBus`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use soiree::EventBus;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> soiree::Result<()> {
    /// let bus = EventBus::new();
    /// bus.on("invoice.remind", |_ctx| async { Ok(()) })?;
    /// let when = SystemTime::now() + Duration::from_secs(7 * 86_400);
    /// let id = bus.emit_at("invoice.remind", 42, when).persisted().await?;
    /// assert_eq!(bus.scheduled().len(), 1);
    /// assert!(bus.cancel_scheduled(&id).await?);
    /// assert!(bus.scheduled().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn emit_at(&self, topic: &str, event: impl IntoEvent, when: SystemTime) -> Emission {
        match self.timed_event(topic, event) {
            Ok(event) => self.emit(topic, event.deliver_at(when)),
            Err(err) => Emission::failed(err),
        }
    }

    /// Emits an event to be delivered `delay` from now:
    /// [`EventBus::emit_at`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use soiree::EventBus;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> soiree::Result<()> {
    /// let bus = EventBus::new();
    /// bus.on("cart.abandoned", |_ctx| async { Ok(()) })?;
    /// bus.emit_after("cart.abandoned", "cart-7", Duration::from_secs(3600)).persisted().await?;
    /// assert_eq!(bus.scheduled().len(), 1);
    /// tokio::time::sleep(Duration::from_secs(3601)).await; // a paused clock jumps there
    /// bus.wait_for_idle().await;
    /// assert!(bus.scheduled().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn emit_after(&self, topic: &str, event: impl IntoEvent, delay: Duration) -> Emission {
        match self.timed_event(topic, event) {
            Ok(event) => self.emit(topic, event.deliver_after(delay)),
            Err(err) => Emission::failed(err),
        }
    }

    fn timed_event(&self, topic: &str, event: impl IntoEvent) -> Result<Event> {
        let topic: Arc<str> = Arc::from(validate_topic(topic)?);
        event.into_event(&topic)
    }

    /// Cancels a delayed event that is not delivered yet, by its id (what
    /// [`Emission::persisted`] returned); reports whether one was
    /// cancelled. Looks in the bus's own timers, then in its queue store
    /// ([`EventQueue::cancel_scheduled`](crate::EventQueue::cancel_scheduled);
    /// a queue that does not schedule holds no delayed event: `false`).
    /// An event already due, delivered or unknown: `false`. With a store
    /// without a queue the stored copy stays (it is history); only its
    /// delivery is cancelled.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the store cannot be asked.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe up to the store: a cancelled call may or may not have
    /// cancelled the event in the store.
    pub async fn cancel_scheduled(&self, event_id: &str) -> Result<bool> {
        let inner = self.inner();
        if inner.scheduled.cancel(event_id) {
            return Ok(true);
        }
        match inner.store.as_deref().and_then(|s| s.queue()) {
            Some(queue) if queue.schedules() => queue.cancel_scheduled(event_id).await,
            _ => Ok(false),
        }
    }

    /// The delayed events this bus holds in its own timers (not those in
    /// a store: see [`Inspect::scheduled`](crate::Inspect::scheduled)),
    /// soonest first: (event id, topic, due time).
    pub fn scheduled(&self) -> Vec<(String, String, SystemTime)> {
        self.inner().scheduled.listed()
    }

    /// Emissions accepted and not finished (for the test bus).
    pub(crate) fn pending_work(&self) -> usize {
        self.inner().pool.pending()
    }
}

/// What `emit` does with an event that carries options (a due time, a
/// unique key) on a bus without a store; `None`: emit it as usual.
pub(super) fn intercept(bus: &Arc<BusInner>, event: &Event) -> Option<Emission> {
    if event.unique_key_and_window().is_some() {
        return Some(Emission::failed(Error::Unsupported(
            "a unique key needs a store that implements EventStore::append_unique \
             (MemoryStore does); this bus has no store"
                .into(),
        )));
    }
    let due = event.due_at().filter(|due| clock::is_future(*due))?;
    Some(match bus.scheduled.schedule(bus, event.clone(), due) {
        Ok(()) => accepted(bus, event.clone()),
        Err(err) => Emission::failed(err),
    })
}

/// An emission that is over at once, with the event accepted (its id is
/// what [`Emission::persisted`] returns).
fn accepted(bus: &Arc<BusInner>, event: Event) -> Emission {
    let slot = bus.pool.enter();
    let state = Arc::new(EmissionState::new(event, Work::Enqueue, slot, true, true));
    state.finish();
    bus.pool.cancel(slot, None);
    Emission::running(state, bus, crate::pool::inside_job())
}

/// Holds a persisted event for its due time, when it has one ahead
/// (a store without a queue); false: dispatch it now.
pub(crate) fn hold_if_due_later(bus: &Arc<BusInner>, event: &Event) -> Result<bool> {
    let Some(due) = event.due_at().filter(|due| clock::is_future(*due)) else {
        return Ok(false);
    };
    bus.scheduled.schedule(bus, event.clone(), due)?;
    Ok(true)
}

/// Dispatches a delayed event that is due, as a detached emission routed
/// now (listeners registered since the emit hear it).
pub(crate) async fn dispatch_due(bus: &Arc<BusInner>, event: Event) {
    if bus.closed.load(std::sync::atomic::Ordering::Acquire) {
        tracing::warn!(
            topic = event.topic(),
            event_id = event.id().unwrap_or_default(),
            "a delayed event came due after the bus closed: not delivered"
        );
        return;
    }
    let Ok(topic) = validate_topic(event.topic()) else {
        return;
    };
    let route = bus.index.route(topic);
    if route.listeners.is_empty() {
        tracing::debug!(topic, "delayed event with no listener: nobody hears it");
        return;
    }
    let slot = bus.pool.enter();
    let state = Arc::new(EmissionState::new(
        event,
        Work::Dispatch(route),
        slot,
        false,
        true,
    ));
    queue_dispatch(bus, state).await;
}
