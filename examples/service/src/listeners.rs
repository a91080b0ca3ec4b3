//! What handles the shop's events, in the same process as the API.

use soiree::EventBus;

use crate::db::{Db, OrderPlaced};

/// Registers the shop's listeners; call [`EventBus::start`] after it.
///
/// - `receipt` (`order.placed`): writes the order's receipt and marks it
///   confirmed, idempotently (delivery is at least once);
/// - `audit` (`order.**`, a wildcard): logs every order event.
///
/// # Errors
///
/// When a pattern is invalid.
pub fn register(bus: &EventBus, db: &Db) -> soiree::Result<()> {
    let db = db.clone();
    bus.on_named("receipt", "order.placed", move |ctx| {
        let db = db.clone();
        async move {
            let order: OrderPlaced = ctx.payload().decode()?;
            db.confirm(&order).await
        }
    })?;
    bus.on_named("audit", "order.**", |ctx| async move {
        tracing::info!(topic = ctx.topic(), event_id = ?ctx.event_id(), "order event");
        Ok(())
    })?;
    Ok(())
}
