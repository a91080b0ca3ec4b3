//! The limits at the SQL store's own entry points: `emit_in`, `emit_all_in`
//! and `record` refuse what the bus refuses, before anything is written; and
//! trigger rows no consumer can parse harm no neighbour. (The hostile-row
//! suite of soiree-test runs in `sqlite_conformance.rs` and
//! `pg_conformance.rs`, with the rest of the conformance suite.)

mod support;

use serde_json::{Value, json};
use soiree::EventBus;
use soiree::limits::{
    MAX_EVENT_ID_LEN, MAX_JSON_DEPTH, MAX_PAYLOAD_LEN, MAX_TOPIC_LEN, MAX_TOPIC_SEGMENTS,
};
use soiree::mutation::{MutationPayload, Mutations, Operation};

/// `[[…]]`, `depth` arrays deep.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |value, _| Value::Array(vec![value]))
}

/// Topics past the limits, each with the reason the bus gives.
fn bad_topics() -> Vec<String> {
    vec![
        "t".repeat(MAX_TOPIC_LEN + 1),
        vec!["s"; MAX_TOPIC_SEGMENTS + 1].join("."),
        "a\u{0}b".to_owned(),
    ]
}

fn is_limit(err: &soiree_sql::Error, expected: &str) -> bool {
    matches!(err, soiree_sql::Error::Event(soiree::Error::LimitExceeded { what, .. }) if *what == expected)
}

/// The entry-point checks, written once for both stores (their methods
/// share names and shapes).
macro_rules! entry_point_limits {
    ($store:expr) => {{
        let store = $store;
        let mut tx = store.begin().await.unwrap();
        store
            .emit_in(&mut *tx, "limits.before", json!("before"))
            .await
            .unwrap();
        for topic in bad_topics() {
            let err = store.emit_in(&mut *tx, &topic, json!(1)).await.unwrap_err();
            assert!(
                matches!(err, soiree_sql::Error::InvalidTopic { .. }),
                "{err}"
            );
            let core: soiree::Error = err.into();
            assert!(matches!(core, soiree::Error::Store(_)), "{core}");
        }
        let err = store
            .emit_in(&mut *tx, "limits.deep", nested(MAX_JSON_DEPTH + 1))
            .await
            .unwrap_err();
        assert!(is_limit(&err, soiree::limits::WHAT_PAYLOAD_DEPTH), "{err}");
        let core: soiree::Error = err.into();
        assert!(
            matches!(core, soiree::Error::LimitExceeded { .. }),
            "{core}"
        );
        let big = Value::String("a".repeat(MAX_PAYLOAD_LEN));
        let err = store
            .emit_in(&mut *tx, "limits.big", big)
            .await
            .unwrap_err();
        assert!(is_limit(&err, soiree::limits::WHAT_PAYLOAD_LEN), "{err}");
        let long_id = soiree::Event::new("limits.id", 1);
        long_id
            .properties()
            .set(soiree::PROPERTY_EVENT_ID, "x".repeat(MAX_EVENT_ID_LEN + 1));
        let err = store
            .emit_in(&mut *tx, "limits.id", long_id)
            .await
            .unwrap_err();
        assert!(is_limit(&err, soiree::limits::WHAT_EVENT_ID_LEN), "{err}");
        // One bad event refuses the whole call: nothing of it is written.
        let err = store
            .emit_all_in(
                &mut *tx,
                [("limits.all", json!(1)), ("limits.all", nested(200))],
            )
            .await
            .unwrap_err();
        assert!(is_limit(&err, soiree::limits::WHAT_PAYLOAD_DEPTH), "{err}");
        let mutations = Mutations::new(EventBus::new()).always_stage(true);
        let deep_row =
            MutationPayload::new(Operation::Create, "LimitsRow", "r-1").with_after(nested(200));
        let err = store
            .record(&mut *tx, &mutations, &deep_row)
            .await
            .unwrap_err();
        assert!(is_limit(&err, soiree::limits::WHAT_PAYLOAD_DEPTH), "{err}");
        store
            .emit_in(&mut *tx, "limits.after", json!("after"))
            .await
            .unwrap();
        store.commit(tx).await.unwrap();

        let history = soiree::EventStore::history(&store).unwrap();
        let page = history.events(None, 100).await.unwrap();
        let topics: Vec<&str> = page
            .items
            .iter()
            .map(|event| event.topic.as_str())
            .collect();
        assert_eq!(
            topics,
            ["limits.before", "limits.after"],
            "only the good events are written"
        );
    }};
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use soiree_sql::SqliteStore;

    use super::*;
    use crate::support::{TempDir, sqlite_builder};

    async fn store(dir: &TempDir) -> SqliteStore {
        sqlite_builder(&dir.db(), "hostile").build().await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entry_points_refuse_past_the_limits() {
        let dir = TempDir::new();
        entry_point_limits!(store(&dir).await);
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::Arc;

    use soiree_sql::PostgresStore;

    use super::*;
    use crate::pg_or_skip;
    use crate::support::{PostgresServer, pg_builder};

    async fn store(server: &PostgresServer) -> PostgresStore {
        pg_builder(server, "hostile").build().await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entry_points_refuse_past_the_limits() {
        let server = pg_or_skip!();
        entry_point_limits!(store(&server).await);
    }

    /// A trigger writes what it cannot check cheaply: a `jsonb` column
    /// nested past what `serde_json` reads. The application's write
    /// succeeds; the consumer dead-letters that row alone, with its event
    /// id, and delivers the rows around it. A `numeric` past `f64` arrives
    /// as its exact decimal text and is delivered like any row.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trigger_rows_consumers_cannot_parse_harm_no_neighbour() {
        use std::sync::Mutex;
        use std::time::Duration;

        use soiree_sql::triggers::MutationTrigger;

        use crate::support::eventually;

        let server = pg_or_skip!();
        let store = store(&server).await;
        sqlx::query("CREATE TABLE amounts (id text PRIMARY KEY, amount numeric, doc jsonb)")
            .execute(store.pool())
            .await
            .unwrap();
        store
            .install_mutation_triggers(&MutationTrigger::new("amounts", "Amount"))
            .await
            .unwrap();
        let bus = EventBus::builder().store(store.clone()).build().unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = Arc::clone(&seen);
        bus.on_named("amounts", "Amount", move |ctx| {
            let sink = Arc::clone(&sink);
            async move {
                let payload: Value = ctx.payload().decode()?;
                let id = payload["entity_id"].as_str().unwrap_or_default().to_owned();
                sink.lock().unwrap().push(id);
                Ok(())
            }
        })
        .unwrap();
        bus.start().unwrap();
        let deep = serde_json::to_string(&nested(200)).unwrap();
        for insert in [
            "INSERT INTO amounts (id, amount) VALUES ('a-0', 1)".to_owned(),
            "INSERT INTO amounts (id, amount) VALUES ('a-huge', 1e400)".to_owned(),
            format!("INSERT INTO amounts (id, doc) VALUES ('a-deep', '{deep}')"),
            "INSERT INTO amounts (id, amount) VALUES ('a-1', 2)".to_owned(),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(insert))
                .execute(store.pool())
                .await
                .expect("a trigger never fails the application's write");
        }
        let limit = Duration::from_secs(30);
        let neighbours = eventually(limit, || async {
            let seen = seen.lock().unwrap();
            ["a-0", "a-huge", "a-1"]
                .iter()
                .all(|want| seen.iter().any(|id| id == want))
        })
        .await;
        assert!(
            neighbours,
            "the rows around the poison one were delivered, the huge numeric too: {seen:?}"
        );
        let dead = eventually(limit, || async {
            let letters = store.sql_dead_letters(None, 100).await.unwrap().items;
            letters.len() == 1 && letters.iter().all(|dead| dead.event_id.is_some())
        })
        .await;
        let letters = store.sql_dead_letters(None, 100).await.unwrap().items;
        assert!(
            dead,
            "the poison row is a dead letter with its id: {letters:?}"
        );
        soiree::EventHistory::events(&store, None, 100)
            .await
            .expect("the history page holding the poison rows reads");
        bus.close().await.unwrap();
    }
}
