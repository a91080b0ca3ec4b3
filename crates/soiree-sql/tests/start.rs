//! A bus over an SQL store takes nothing from the log before `start`: three
//! named listeners registered with awaits between them each handle a
//! 50-event backlog that waited in the database (SQLite, and a throwaway
//! PostgreSQL).

mod support;

use std::sync::Arc;

use soiree_test::conformance::{self, Conformance, Outcome};

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_listeners_registered_with_awaits_between_them_each_handle_the_whole_backlog() {
    let dir = support::TempDir::new();
    let store = support::sqlite_builder(&dir.db(), "start")
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

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listeners_registered_with_awaits_between_them_each_handle_the_whole_backlog() {
    let server = pg_or_skip!();
    let store = support::pg_builder(&server, "start").build().await.unwrap();
    let outcome = conformance::listeners_registered_before_start_each_handle_the_backlog(
        Arc::new(store),
        &Conformance::default(),
    )
    .await;
    assert_eq!(outcome, Outcome::Passed);
}
