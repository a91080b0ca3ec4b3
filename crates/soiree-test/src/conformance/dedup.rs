//! Checks of handler de-duplication.

use std::sync::Arc;

use soiree::{EventStore, StoredResult};

use super::support::{ok, unique_id, within};
use super::{Ability, Conformance, Outcome};

/// [`HandlerDedup::handler_succeeded`](soiree::HandlerDedup::handler_succeeded) is false until a successful result is
/// saved for that event id and handler id, true after; a failed result does
/// not count; and a success counts only for its own (event id, handler id)
/// pair.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn dedup_is_scoped_per_event_and_handler(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(dedup) = store.dedup() else {
        return Outcome::Skipped(Ability::Dedup.missing());
    };
    let topic = "conformance.dedup.seen";
    let event = unique_id("dedup");
    let other_event = unique_id("dedup");
    let (handler, other_handler) = ("conformance-handler", "conformance-other-handler");
    let succeeded = |event_id: String, handler_id: &'static str| async move {
        let answer = dedup.handler_succeeded(&event_id, handler_id);
        ok(
            "handler_succeeded",
            within(config, "handler_succeeded", answer).await,
        )
    };
    let save = |result: StoredResult| {
        let store = Arc::clone(&store);
        async move {
            let saved = store.save_handler_result(&result);
            ok(
                "save_handler_result",
                within(config, "save_handler_result", saved).await,
            );
        }
    };

    assert!(
        !succeeded(event.clone(), handler).await,
        "handler_succeeded is true before any result was saved"
    );
    save(StoredResult::new(
        topic,
        &event,
        handler,
        1,
        Some("failed".into()),
    ))
    .await;
    assert!(
        !succeeded(event.clone(), handler).await,
        "handler_succeeded is true after only a failed result"
    );
    save(StoredResult::new(topic, &event, handler, 2, None)).await;
    assert!(
        succeeded(event.clone(), handler).await,
        "handler_succeeded is false after a successful result"
    );
    assert!(
        !succeeded(event.clone(), other_handler).await,
        "another handler's success counted for a handler of the same event"
    );
    assert!(
        !succeeded(other_event.clone(), handler).await,
        "a handler's success on one event counted for another event"
    );
    save(StoredResult::new(
        topic,
        &other_event,
        other_handler,
        1,
        Some("failed".into()),
    ))
    .await;
    assert!(
        succeeded(event.clone(), handler).await,
        "a later failure of another handler undid a recorded success"
    );
    assert!(
        !succeeded(other_event, other_handler).await,
        "handler_succeeded is true after only a failed result"
    );
    Outcome::Passed
}
