//! Ids: a custom id generator (used for event ids and generated listener
//! ids), the `soiree.event_id` property every emitted event carries, and
//! stable listener names with `on_named`.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use soiree::{Event, EventBus, PROPERTY_EVENT_ID};

#[tokio::main]
async fn main() -> soiree::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let bus = EventBus::builder()
        .id_generator(|| format!("id-{:04}", NEXT.fetch_add(1, Ordering::Relaxed)))
        .build()?;

    // A generated listener id comes from the generator too; it changes every
    // time the process starts.
    let generated = bus.on("user.created", |ctx| async move {
        println!(
            "listener {} sees event {:?} (also {:?} from soiree::event_id)",
            ctx.listener_id(),
            ctx.event_id(),
            soiree::event_id(ctx.event()),
        );
        Ok(())
    })?;
    // A named listener keeps its id across restarts, which is what lets a
    // store skip listeners that already handled a redelivered event.
    let named = bus.on_named("send-welcome", "user.created", |ctx| async move {
        println!(
            "listener {} sees event {:?}",
            ctx.listener_id(),
            ctx.event_id()
        );
        Ok(())
    })?;
    println!("registered: {generated} and {named}");
    bus.start()?;

    // Each emission without an id gets one from the generator.
    for _ in 0..2 {
        let _errors: Vec<soiree::Error> = bus.emit("user.created", "ada").collect().await;
    }

    // An event that already has an id (a replay, a retry from upstream) keeps it.
    let event = Event::new("user.created", "grace");
    event.properties().set(PROPERTY_EVENT_ID, "upstream-7");
    println!("before emit: {:?}", soiree::event_id(&event));
    let _errors: Vec<soiree::Error> = bus.emit("user.created", event).collect().await;

    bus.close().await
}
