//! Wildcards and dispatch order: `*` matches one segment, `**` zero or more;
//! the listeners of one emission run most specific pattern first, and in
//! registration order within a pattern.

use futures::StreamExt;
use soiree::{EventBus, topic_matches};

#[tokio::main]
async fn main() -> soiree::Result<()> {
    let bus = EventBus::new();

    // Registered least specific first, to show the bus reorders them.
    let patterns = [
        "**",
        "order.**",
        "*.created",
        "order.*",
        "order.created",
        "order.created", // a second listener on the same pattern
    ];
    for (n, pattern) in patterns.into_iter().enumerate() {
        bus.on(pattern, move |ctx| async move {
            // Listeners of one emission run one after another, so these lines
            // print in dispatch order.
            println!("  {:<14} (registered #{n})", ctx.pattern());
            Ok(())
        })?;
    }
    bus.start()?;

    for topic in ["order.created", "order.shipped", "user.created"] {
        println!("{topic}:");
        let _errors: Vec<soiree::Error> = bus.emit(topic, "payload").collect().await;
    }

    // The matcher on its own: a trailing `**` after a segment needs at least one.
    println!();
    for (pattern, subject) in [
        ("order.*", "order.created"),
        ("order.*", "order.created.eu"),
        ("order.**", "order.created.eu"),
        ("order.**", "order"),
        ("**", "order"),
    ] {
        println!(
            "{pattern:<9} matches {subject:<17} {}",
            topic_matches(pattern, subject)
        );
    }

    bus.close().await
}
