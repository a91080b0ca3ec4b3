//! Panics: a panicking listener is caught, reported once to the panic handler
//! and once as `Error::Panicked` on the emission, and the listeners after it
//! still run.

use futures::StreamExt;
use soiree::{Error, EventBus};

#[tokio::main]
async fn main() -> soiree::Result<()> {
    // The default panic hook would print a backtrace notice to stderr; the
    // panic handler below reports it instead, so keep the output readable.
    std::panic::set_hook(Box::new(|_| {}));

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
