//! The README's quick start: one listener, one event, errors drained inline.

use futures::StreamExt;
use soiree::{Event, EventBus};

#[tokio::main]
async fn main() -> soiree::Result<()> {
    let bus = EventBus::new();
    let topic = "user.created";

    bus.on(topic, |ctx| async move {
        let name = ctx.property_str("name").unwrap_or_default();
        println!("welcome {name}");
        Ok(())
    })?;
    // Listeners first, then start: with a queue store nothing is delivered
    // before it (without one, as here, it does nothing).
    bus.start()?;

    let event = Event::new(topic, serde_json::json!({ "email": "user@example.com" }));
    event.properties().set("name", "Ada Lovelace");

    let mut errors = bus.emit(topic, event);
    while let Some(err) = errors.next().await {
        println!("listener error: {err}");
    }
    bus.close().await
}
