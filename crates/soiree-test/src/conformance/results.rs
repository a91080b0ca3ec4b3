//! Checks of saved listener results.

use std::sync::Arc;

use soiree::{EventStore, StoredResult};

use super::support::{ok, read_all, unique_id, within};
use super::{Ability, Conformance, Outcome};

/// Results saved with [`EventStore::save_handler_result`] read back from
/// [`EventHistory::results`](soiree::EventHistory::results) unchanged, in
/// the order saved: topic, event id, handler id, success or the error text,
/// and the attempt number. Paging covers each exactly once.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn handler_results_read_back(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(history) = store.history() else {
        return Outcome::Skipped(Ability::History.missing());
    };
    let event_id = unique_id("results");
    let topic = "conformance.results.done";
    let saved = vec![
        StoredResult::new(
            topic,
            &event_id,
            "conformance-first",
            1,
            Some("boom: first attempt".into()),
        ),
        StoredResult::new(topic, &event_id, "conformance-first", 2, None),
        StoredResult::new(topic, &event_id, "conformance-second", 1, None),
        StoredResult::new(
            topic,
            &event_id,
            "conformance-third",
            3,
            Some("héllo ✓ \"quoted\"\nline".into()),
        ),
    ];
    for result in &saved {
        ok(
            "save_handler_result",
            within(
                config,
                "save_handler_result",
                store.save_handler_result(result),
            )
            .await,
        );
    }
    for limit in [1, 3, 1000] {
        let read = read_all("history().results", limit, |cursor| async move {
            history.results(cursor.as_deref(), limit).await
        });
        let read: Vec<StoredResult> = within(config, "history().results", read)
            .await
            .into_iter()
            .filter(|result| result.event_id == event_id)
            .collect();
        assert_eq!(
            read.len(),
            saved.len(),
            "history().results ({limit} a page) returned {} of the {} saved results",
            read.len(),
            saved.len()
        );
        for (read, saved) in read.iter().zip(&saved) {
            assert_eq!(
                (read.handler_id.as_str(), read.attempt),
                (saved.handler_id.as_str(), saved.attempt),
                "history().results ({limit} a page) is not in the order the results were saved"
            );
            assert_eq!(
                read.succeeded(),
                saved.succeeded(),
                "a saved result's success changed"
            );
            assert_eq!(read, saved, "a saved result changed");
        }
    }
    Outcome::Passed
}
