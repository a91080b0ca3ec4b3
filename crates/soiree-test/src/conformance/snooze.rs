//! Checks of snoozes: a listener that returns [`Snooze`] runs again after
//! the delay, as the same attempt, and the store's results show the snooze.
//! Snoozes wait in the bus, so every store runs these checks.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use soiree::{EventBus, EventStore, Snooze};
use tokio::time::Instant;

use super::bus::Shared;
use super::support::{ok, within};
use super::{Conformance, Outcome};

const DELAY: Duration = Duration::from_millis(200);

/// A listener that snoozes once runs again after the delay with the same
/// attempt number, the emission reports no error, and the stored results
/// of the event are a snooze then a success.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn bus_reruns_snoozed_listeners(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let bus = ok(
        "build",
        EventBus::builder().shared_store(Arc::clone(&store)).build(),
    );
    let calls: Shared<(Instant, u32, Option<String>)> = Shared::new();
    let seen = calls.clone();
    let snoozed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    ok(
        "on_named",
        bus.on_named("conformance-snoozer", "conformance.snooze", move |ctx| {
            let seen = seen.clone();
            let snoozed = Arc::clone(&snoozed);
            async move {
                seen.push((Instant::now(), ctx.attempt(), ctx.event_id()));
                if !snoozed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    return Err(Snooze::after(DELAY).into());
                }
                Ok(())
            }
        }),
    );
    ok("start", bus.start());
    let mut emission = bus.emit("conformance.snooze", 1);
    let id = ok(
        "persisted",
        within(config, "the emit", emission.persisted()).await,
    );
    let errors: Vec<soiree::Error> = within(config, "the emission", emission.collect()).await;
    assert!(
        errors.is_empty(),
        "a snooze was reported as an error: {errors:?}"
    );
    within(config, "the bus to go idle", bus.wait_for_idle()).await;
    let calls = calls.take();
    assert_eq!(
        calls.len(),
        2,
        "a snoozed listener ran {} times",
        calls.len()
    );
    assert!(
        calls[1].0 - calls[0].0 >= DELAY,
        "re-run before the snooze ended"
    );
    assert_eq!(
        (calls[0].1, calls[1].1),
        (1, 1),
        "a snooze counted as an attempt"
    );
    let event_id = calls[0].2.clone().unwrap_or(id);
    if let Some(history) = store.history() {
        let page = ok(
            "results",
            within(config, "results", history.results(None, 10_000)).await,
        );
        let outcomes: Vec<&str> = page
            .items
            .iter()
            .filter(|r| r.event_id == event_id && r.handler_id == "conformance-snoozer")
            .map(|r| r.outcome())
            .collect();
        assert_eq!(
            outcomes,
            ["snoozed", "succeeded"],
            "the stored results do not show the snooze then the success"
        );
    }
    let _ = within(config, "close", bus.close()).await;
    Outcome::Passed
}
