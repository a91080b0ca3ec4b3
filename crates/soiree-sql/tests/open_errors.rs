//! Opening a store that cannot be opened: the error names what failed
//! (host:port, database, path) and what to do, at once, and says it once.

mod support;

use std::time::Duration;

use soiree_sql::Error;
use support::within;

const LIMIT: Duration = Duration::from_secs(30);

/// Asserts that no error of the chain repeats its source's message.
fn assert_said_once(err: &Error) {
    let mut current: &dyn std::error::Error = err;
    for _ in 0..16 {
        let Some(source) = current.source() else {
            return;
        };
        let (text, cause) = (current.to_string(), source.to_string());
        assert!(!text.contains(&cause), "{text:?} repeats {cause:?}");
        current = source;
    }
    panic!("{err:?}: source chain too long");
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_refused_postgres_connection_names_the_server_and_fails_at_once() {
    // A loopback port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let url = format!("postgres://app:s3cret@127.0.0.1:{port}/app");
    let outcome = within(
        LIMIT,
        "building against a closed port",
        soiree_sql::PostgresStore::builder(&url)
            // Far above the test's bound: a refusal must not wait for it.
            .acquire_timeout(Duration::from_secs(120))
            .build(),
    )
    .await;
    let err = outcome.expect_err("nobody listens there");
    let text = err.to_string();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(!text.contains("s3cret") && !text.contains("app:"), "{text}");
    assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
    assert_said_once(&err);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_missing_postgres_database_is_named_without_source_positions() {
    let server = pg_or_skip!();
    let outcome = within(
        LIMIT,
        "building against a missing database",
        soiree_sql::PostgresStore::builder(&server.url_for("nope_db")).build(),
    )
    .await;
    let err = outcome.expect_err("the database does not exist");
    let text = err.to_string();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert!(text.contains("\"nope_db\" does not exist"), "{text}");
    assert!(text.contains("3D000"), "{text}");
    assert!(!text.contains(" at line "), "{text}");
    assert_said_once(&err);
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_sqlite_file_in_a_missing_directory_names_the_directory() {
    let dir = support::TempDir::new();
    let missing = dir.0.join("not-made");
    let file = missing.join("events.sqlite");
    let outcome = within(
        LIMIT,
        "opening in a missing directory",
        support::sqlite_builder(&file, "c").build(),
    )
    .await;
    let err = outcome.expect_err("the directory does not exist");
    let text = err.to_string();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(
        text.contains(&format!("directory {} does not exist", missing.display())),
        "{text}"
    );
    assert!(text.contains("create it"), "{text}");
    assert!(!missing.exists(), "the store must not create directories");
    assert_said_once(&err);
}

#[cfg(all(feature = "sqlite", unix))]
#[tokio::test]
async fn a_sqlite_file_that_cannot_be_opened_is_named() {
    let dir = support::TempDir::new();
    // A directory where the database file should be: SQLite cannot open it.
    let file = dir.db();
    std::fs::create_dir(&file).expect("a directory in the file's place");
    let outcome = within(
        LIMIT,
        "opening a directory as a database",
        support::sqlite_builder(&file, "c").build(),
    )
    .await;
    let err = outcome.expect_err("a directory is no database");
    let text = err.to_string();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert_said_once(&err);
}
