//! Panics: a panicking listener is caught, reported once to the panic handler
//! and once as `Error::Panicked` on the emission, and the listeners after it
//! still run.

use futures::StreamExt;
use soiree::{Error, EventBus};

#[tokio::main]
async fn main() -> soiree::Result<()> {
    // Rust's panic hook still prints the panic message to stderr, as it does
    // for any caught panic; the panic handler below is where a service
    // reports it (log, metrics, alert). Silencing the hook process-wide would
    // also hide panics elsewhere, so this example leaves it alone.
    let bus = EventBus::builder()
        .panic_handler(|panic| {
            println!(
                "[panic handler] listener {} panicked on {}: {}",
                panic.listener_id, panic.topic, panic.message
            );
        })
        .build()?;

    bus.on_named("first", "job.run", |_ctx| async {
        println!("first listener runs");
        Ok(())
    })?;
    bus.on_named("buggy", "job.run", |ctx| async move {
        // A bug: the job id is a string, not a number. The bus catches the
        // panic instead of losing the worker or the listeners after this one.
        let job = ctx.payload_as::<u64>().expect("job ids are numbers");
        println!("never printed: {job}");
        Ok(())
    })?;
    bus.on_named("last", "job.run", |_ctx| async {
        println!("last listener still runs");
        Ok(())
    })?;
    bus.start()?;

    let mut errors = bus.emit("job.run", "job-1");
    while let Some(err) = errors.next().await {
        if let Error::Panicked {
            listener_id,
            message,
        } = &err
        {
            println!(
                "emission error: Panicked {{ listener_id: {listener_id:?}, message: {message:?} }}"
            );
        } else {
            println!("emission error: {err}");
        }
    }

    bus.close().await
}
