//! The outbox relay: every event of a source store (the SQL outbox) is
//! published to the NATS store, with its event id.
//!
//! A relay is a bus on the source store with one listener, `nats-relay`,
//! on `**`: it publishes each event to JetStream with `Nats-Msg-Id` = the
//! event id and returns only once the stream acknowledged it, so the
//! source's lease is acknowledged only after the stream holds the event.
//! That gives:
//!
//! - at least once: a relay killed mid-batch leaves its lease
//!   unacknowledged, and the next relay (or another process of the same
//!   group) takes it over after the source's lease timeout;
//! - no duplicates within the stream's duplicate window: an event published
//!   again by the next relay carries the same id and is dropped by the
//!   stream (keep the source's lease timeout well inside the window,
//!   2 minutes by default);
//! - transactional emit with a clustered fan-out: events committed with
//!   `emit_in` in the application's transaction reach every NATS group.
//!
//! Give the source store a consumer group of its own (`nats-relay`), so
//! that the relay's progress is separate from the application's consumers.
//!
//! # Examples
//!
//! ```no_run
//! use std::sync::Arc;
//! use soiree_nats::{NatsStore, Relay};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let outbox = soiree_sql::SqliteStore::builder("app.db").group("nats-relay").build().await?;
//! let nats = NatsStore::builder("nats://127.0.0.1:4222").prefix("shop").build().await?;
//! let relay = Relay::start(Arc::new(outbox), nats)?;
//! // … until shutdown:
//! relay.close().await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use soiree::{EventBus, EventQueue, EventStore, StoredEvent};

use crate::NatsStore;

/// Forwards every event of a source store's group to a [`NatsStore`];
/// see the [module](self) docs.
#[derive(Debug)]
pub struct Relay {
    bus: EventBus,
}

impl Relay {
    /// The relay's listener id, stable across processes: a relay that
    /// already published an event (and recorded it) skips it when the
    /// source delivers it again.
    pub const LISTENER: &'static str = "nats-relay";

    /// Starts relaying from `source` (a queue store; its group is the
    /// relay's progress) to `target`.
    ///
    /// # Errors
    ///
    /// [`soiree::Error`] when the bus cannot be built or started (a source
    /// without a queue).
    pub fn start(source: Arc<dyn EventStore>, target: NatsStore) -> soiree::Result<Self> {
        if source.queue().is_none() {
            return Err(soiree::Error::InvalidConfig(
                "the relay's source must be a queue store (the SQL outbox)".into(),
            ));
        }
        let bus = EventBus::builder().shared_store(source).build()?;
        bus.on_named(Self::LISTENER, "**", move |ctx| {
            let target = target.clone();
            async move {
                let event = StoredEvent {
                    topic: ctx.topic().to_owned(),
                    payload: ctx.payload().to_json()?,
                    properties: ctx.properties().to_map(),
                };
                target.enqueue(&event).await?;
                Ok(())
            }
        })?;
        bus.start()?;
        Ok(Self { bus })
    }

    /// The relay's bus (for its metrics, `wait_for_idle`).
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// Stops taking events and waits for the ones in flight.
    ///
    /// # Errors
    ///
    /// As [`EventBus::close`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled close leaves leases to expire; their
    /// events are relayed again (dropped by the duplicate window).
    pub async fn close(self) -> soiree::Result<()> {
        self.bus.close().await
    }
}
