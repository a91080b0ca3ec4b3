//! A bus over NatsStore takes nothing from the stream before `start`:
//! three named listeners registered with awaits between them each handle a
//! 50-event backlog that waited in the stream.

mod support;

use std::sync::Arc;

use soiree_test::conformance::{self, Conformance, Outcome};
use support::builder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_registered_with_awaits_between_them_each_handle_the_whole_backlog() {
    let server = server_or_skip!();
    let store = builder(&server.url())
        .prefix("start")
        .build()
        .await
        .unwrap();
    let outcome = conformance::listeners_registered_before_start_each_handle_the_backlog(
        Arc::new(store),
        &Conformance::default(),
    )
    .await;
    assert_eq!(outcome, Outcome::Passed);
}
