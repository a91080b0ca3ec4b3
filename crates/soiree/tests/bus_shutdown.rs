//! `shutdown_all` closes every live bus of the process. Alone in its test
//! binary, since it closes the buses of any test running beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use soiree::{Error, EventBus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_all_closes_every_live_bus() {
    let first = EventBus::new();
    let second = EventBus::builder().workers(2).build().unwrap();
    let already_closed = EventBus::new();
    already_closed.close().await.unwrap();
    // A dropped bus is no longer live.
    drop(EventBus::new());

    let done = Arc::new(AtomicUsize::new(0));
    {
        let done = Arc::clone(&done);
        second
            .on("slow", move |_ctx| {
                let done = Arc::clone(&done);
                async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    done.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            })
            .unwrap();
    }
    second.emit("slow", ()).detach();

    let closed = tokio::time::timeout(Duration::from_secs(10), soiree::shutdown_all())
        .await
        .expect("shutdown_all returned");
    assert_eq!(
        closed, 2,
        "the two open buses, not the closed or dropped ones"
    );
    assert!(first.is_closed());
    assert!(second.is_closed());
    assert_eq!(
        done.load(Ordering::SeqCst),
        1,
        "work under way finished first"
    );

    assert!(matches!(first.close().await, Err(Error::AlreadyClosed)));
    let errors: Vec<Error> = second.emit("slow", ()).collect().await;
    assert!(matches!(errors.as_slice(), [Error::Closed]));

    // Nothing left to close.
    assert_eq!(soiree::shutdown_all().await, 0);
}
