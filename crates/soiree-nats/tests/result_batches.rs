//! Results written as batches: a flush sends the results held since the
//! last one as one message, and reading the history takes such messages
//! apart (and still reads a message of one result, as earlier versions
//! wrote them), page by page in both directions, cursors falling inside a
//! message; the stats count results, not messages.

mod support;

use std::time::Duration;

use soiree::{EventStore, Inspect, Query, StoredResult};
use support::builder;

const WAIT: Duration = Duration::from_secs(30);

fn result(i: usize) -> StoredResult {
    let error = (i % 2 == 1).then(|| format!("failure {i}"));
    StoredResult::new("order.paid", format!("rb-{i}"), "listener", 1, error)
}

/// Every result of `query`'s pages, joined, at most 100 pages.
async fn read_all(store: &dyn Inspect, mut query: Query) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..100 {
        let page = tokio::time::timeout(WAIT, store.results(&query))
            .await
            .expect("a page in time")
            .unwrap();
        ids.extend(page.items.into_iter().map(|record| record.item.event_id));
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return ids,
        }
    }
    panic!("more than 100 pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_results_read_back_in_order_page_by_page() {
    let server = server_or_skip!();
    let store = builder(&server.url())
        .prefix("rb")
        .group("g")
        .build()
        .await
        .unwrap();
    // One result alone in its message, as earlier versions wrote each.
    let js = async_nats::jetstream::new(store.client().clone());
    let single = serde_json::to_vec(&result(0)).unwrap();
    js.publish("rb_results.g", single.into())
        .await
        .unwrap()
        .await
        .unwrap();
    for i in 1..=5 {
        store.save_handler_result(&result(i)).await.unwrap();
    }
    let oldest: Vec<String> = (0..=5).map(|i| format!("rb-{i}")).collect();
    let mut newest = oldest.clone();
    newest.reverse();
    for limit in [1, 2, 3, 4, 100] {
        assert_eq!(
            read_all(&store, Query::oldest(limit)).await,
            oldest,
            "oldest first, {limit} a page"
        );
        assert_eq!(
            read_all(&store, Query::newest(limit)).await,
            newest,
            "newest first, {limit} a page"
        );
    }
    let js_stream = js.get_stream("SOIREE_rb_RESULTS").await.unwrap();
    let messages = js_stream.cached_info().state.messages;
    assert_eq!(messages, 2, "the five results were flushed as one message");
    let stats = tokio::time::timeout(WAIT, store.stats())
        .await
        .expect("stats in time")
        .unwrap();
    assert_eq!(stats.results, 6, "results, not messages, are counted");
}
