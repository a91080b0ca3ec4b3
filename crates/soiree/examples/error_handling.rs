//! Errors: every listener error reaches the emitter as a stream item; an
//! error handler sees each one first and may transform or swallow it; a retry
//! policy re-runs failing listeners with backoff before that.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use soiree::{Backoff, Error, EventBus, RetryPolicy};

#[tokio::main]
async fn main() -> soiree::Result<()> {
    // Three attempts in all, 10 ms apart (jitter off for a predictable demo).
    let retry =
        RetryPolicy::attempts(3)?.with_backoff(Backoff::constant(Duration::from_millis(10)));

    let bus = EventBus::builder()
        .retry(retry)
        .error_handler(|event, err| {
            // Swallow errors from audit topics: returning None drops the error
            // on purpose (it never reaches the emission). An emit's own
            // failure (a full queue, a store error) is shown here too, but
            // its emission reports it whatever this returns.
            if event.topic().starts_with("audit.") {
                println!("[handler] swallowed: {err}");
                return None;
            }
            // Transform the others: keep the listener and topic, add context
            // to the message.
            match err {
                Error::Listener {
                    listener_id,
                    topic,
                    source,
                } => Some(Error::Listener {
                    listener_id,
                    topic,
                    source: format!("{source} (gave up after 3 attempts)").into(),
                }),
                other => Some(other),
            }
        })
        .build()?;

    // Fails twice, then succeeds: the retry policy hides the failures.
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    bus.on("payment.captured", move |ctx| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            if ctx.attempt() < 3 {
                println!("[flaky] attempt {} fails", ctx.attempt());
                return Err("gateway timeout".into());
            }
            println!("[flaky] attempt {} succeeds", ctx.attempt());
            Ok(())
        }
    })?;
    // Always fails: after the last attempt the error handler transforms it
    // and the emission streams it.
    bus.on("invoice.sent", |_ctx| async {
        Err("smtp unavailable".into())
    })?;
    // Fails too, but the handler swallows it: the stream ends empty.
    bus.on("audit.recorded", |_ctx| async {
        Err("audit sink full".into())
    })?;
    // Every listener is registered: start (a no-op without a queue store,
    // where it lets deliveries begin).
    bus.start()?;

    let errors: Vec<Error> = bus.emit("payment.captured", "pay-1").collect().await;
    println!(
        "payment.captured: {} calls, {} errors\n",
        calls.load(Ordering::Relaxed),
        errors.len()
    );

    let mut errors = bus.emit("invoice.sent", "inv-1");
    while let Some(err) = errors.next().await {
        println!("invoice.sent error: {err}\n");
    }

    let errors: Vec<Error> = bus.emit("audit.recorded", "entry-1").collect().await;
    println!("audit.recorded: {} errors", errors.len());

    bus.close().await
}
