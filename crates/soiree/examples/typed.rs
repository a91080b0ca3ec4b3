//! Typed topics: listeners that take a typed payload instead of an untyped
//! event. `TypedTopic::wrap` builds the event, `bind_listener` unwraps it.

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use soiree::{EventBus, EventContext, TypedTopic, bind_listener};

/// The payload: any `Clone + Serialize + Deserialize` type (serde lets stores
/// persist it and lets listeners decode it back).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlaced {
    order_id: String,
    cents: u64,
}

#[tokio::main]
async fn main() -> soiree::Result<()> {
    // One topic value names the topic and fixes its payload type.
    let order_placed = TypedTopic::<OrderPlaced>::new("order.placed");
    let bus = EventBus::new();

    // Listeners receive the payload already unwrapped. Several bindings can
    // be registered at once; `named` gives a stable listener id.
    bus.register_listeners([
        bind_listener(
            &order_placed,
            |ctx: EventContext, order: OrderPlaced| async move {
                println!(
                    "[billing] charging {} cents for {}",
                    order.cents, order.order_id
                );
                // Properties are shared with the listeners that run after this one.
                ctx.properties().set("charged", true);
                Ok(())
            },
        )
        .named("billing"),
        bind_listener(
            &order_placed,
            |ctx: EventContext, order: OrderPlaced| async move {
                let charged = ctx
                    .property("charged")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
                println!(
                    "[mailer] confirming {} (charged: {charged})",
                    order.order_id
                );
                Ok(())
            },
        ),
    ])?;
    bus.start()?;

    // `wrap` checks the topic name and builds the event.
    let event = order_placed.wrap(OrderPlaced {
        order_id: "ord-42".into(),
        cents: 1999,
    })?;
    let errors: Vec<soiree::Error> = bus.emit(order_placed.name(), event).collect().await;
    println!("errors: {}", errors.len());

    // An untyped event of the wrong shape fails the typed listeners with a
    // payload type mismatch instead of reaching them.
    let mut errors = bus.emit(order_placed.name(), "not an order");
    while let Some(err) = errors.next().await {
        println!("expected failure: {err}");
    }

    bus.close().await
}
