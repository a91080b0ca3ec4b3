//! Graceful shutdown: on ctrl-c or SIGTERM, or when its work is done, the
//! service closes its bus, and `close` waits for every event it accepted.
//!
//! Left alone it emits its 20 orders and exits; press ctrl-c (or
//! `kill -TERM` it) sooner and it stops emitting, yet every order already
//! emitted is still handled before it exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::EventBus;

const ORDERS: usize = 20;

#[tokio::main]
async fn main() -> soiree::Result<()> {
    let bus = EventBus::new();
    let handled = Arc::new(AtomicUsize::new(0));
    {
        let handled = Arc::clone(&handled);
        bus.on("order.paid", move |_ctx| {
            let handled = Arc::clone(&handled);
            async move {
                // Sending the receipt takes a while.
                tokio::time::sleep(Duration::from_millis(50)).await;
                handled.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })?;
    }
    bus.start()?;

    // The service's work: an order every 10 ms, fire and forget.
    let accepted = AtomicUsize::new(0);
    let work = async {
        for order in 0..ORDERS {
            bus.emit("order.paid", serde_json::json!({ "order": order }))
                .detach();
            accepted.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };

    let reason = tokio::select! {
        () = work => "work done",
        () = shutdown_signal() => "signal",
    };

    // New emissions are refused from here on; the accepted ones finish.
    bus.close().await?;

    let accepted = accepted.load(Ordering::SeqCst);
    let handled = handled.load(Ordering::SeqCst);
    println!("closed ({reason}): {accepted} orders accepted, {handled} handled");
    assert_eq!(
        handled, accepted,
        "close returned before the accepted events finished"
    );
    Ok(())
}

/// Resolves on ctrl-c (SIGINT) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c()
            .await
            .expect("cannot listen for ctrl-c");
    };
    #[cfg(unix)]
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("cannot listen for SIGTERM")
            .recv()
            .await;
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
