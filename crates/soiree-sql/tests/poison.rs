//! One poison item harms nobody else, on real servers: an event or result
//! the database refuses fails alone (its batch is split), a result that can
//! never be written does not hold acknowledgements (or `close`) back, a row
//! that cannot be decoded is dead-lettered alone and listed lossily, a NUL
//! in a property does not break replay, and a transaction that did not
//! commit is reported by `commit`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use soiree::{
    DeadLetterSelection, Event, EventBus, EventHistory, EventQueue, EventStore, Inspect,
    PROPERTY_EVENT_ID, Query, StoredEvent, StoredResult,
};
use soiree_sql::{Error, SqlDeadLetterFilter};
use support::{TempDir, eventually, within};

const LIMIT: Duration = Duration::from_secs(30);

/// `len` pseudo-random letters and digits (incompressible enough that
/// PostgreSQL cannot shrink them into an index row).
fn noise(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

fn event(topic: &str, id: &str) -> StoredEvent {
    let mut properties = serde_json::Map::new();
    properties.insert(PROPERTY_EVENT_ID.to_owned(), id.into());
    StoredEvent {
        topic: topic.to_owned(),
        payload: serde_json::json!({ "id": id }),
        properties,
    }
}

fn bus_over(store: &(impl EventStore + Clone + 'static)) -> EventBus {
    EventBus::builder()
        .store(store.clone())
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap()
}

/// A listener on `order.*` recording the event ids it ran for; fails them
/// all with `fail`.
fn recorder(bus: &EventBus, fail: bool) -> Arc<Mutex<Vec<String>>> {
    let runs = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&runs);
    bus.on_named("charge", "order.*", move |ctx| {
        seen.lock()
            .unwrap()
            .push(ctx.event_id().unwrap_or_default());
        async move {
            if fail {
                Err("card declined".into())
            } else {
                Ok(())
            }
        }
    })
    .unwrap();
    bus.start().unwrap();
    runs
}

async fn emit(bus: &EventBus, topic: &str, event: Event) {
    let mut emission = bus.emit(topic, event);
    within(LIMIT, "persisted", emission.persisted())
        .await
        .unwrap();
}

fn ran(runs: &Mutex<Vec<String>>, id: &str) -> usize {
    runs.lock().unwrap().iter().filter(|r| *r == id).count()
}

async fn backlog_drains(store: &impl EventQueue) -> bool {
    eventually(LIMIT, || async {
        within(LIMIT, "backlog", store.backlog()).await.unwrap() == 0
    })
    .await
}

/// A listener collecting the payloads of `entity`'s mutation events.
fn payloads_of(bus: &EventBus, entity: &str) -> Arc<Mutex<Vec<serde_json::Value>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let topic = soiree::mutation::mutation_topic(entity).unwrap();
    bus.on_named("audit", &topic, move |ctx| {
        sink.lock().unwrap().push(ctx.payload().to_json().unwrap());
        async { Ok(()) }
    })
    .unwrap();
    bus.start().unwrap();
    seen
}

/// The payload of operation `op` among `seen`.
fn of_op(seen: &Mutex<Vec<serde_json::Value>>, op: &str) -> serde_json::Value {
    let seen = seen.lock().unwrap();
    seen.iter()
        .find(|p| p["operation"] == op)
        .unwrap_or_else(|| panic!("no {op} in {seen:?}"))
        .clone()
}

/// Dequeues until `n` deliveries came, at most 100 polls of 200 ms.
async fn take(store: &impl EventQueue, n: usize) -> Vec<soiree::Delivery> {
    let mut deliveries = Vec::new();
    for _ in 0..100 {
        if deliveries.len() >= n {
            break;
        }
        let batch = within(
            LIMIT,
            "dequeue",
            store.dequeue(10, Duration::from_millis(200)),
        )
        .await
        .unwrap();
        deliveries.extend(batch);
    }
    deliveries
}

/// Results before ack: three deliveries acknowledged together, the result
/// of one of them (event `lost`) failing for a transient reason until
/// `heal` runs. The other two are acknowledged; the call fails naming one
/// delivery not settled; only `lost` comes back (counted as a delivery),
/// and once its result can be written it is acknowledged.
async fn a_lost_result_holds_back_its_own_delivery<S, F>(store: &S, heal: F)
where
    S: EventStore + EventQueue + EventHistory,
    F: std::future::Future<Output = ()>,
{
    for id in ["ok-1", "lost", "ok-2"] {
        within(LIMIT, "save", store.save_event(&event("order.paid", id)))
            .await
            .unwrap();
    }
    let deliveries = take(store, 3).await;
    assert_eq!(deliveries.len(), 3, "{deliveries:?}");
    let success = |event_id: &str| StoredResult {
        topic: "order.paid".into(),
        event_id: event_id.to_owned(),
        handler_id: "charge".into(),
        error: None,
        attempt: 1,
    };
    for delivery in &deliveries {
        let id = delivery.event.id().unwrap().to_owned();
        within(LIMIT, "result", store.save_handler_result(&success(&id)))
            .await
            .unwrap();
    }
    let receipts: Vec<String> = deliveries.iter().map(|d| d.receipt.clone()).collect();
    let acked = within(LIMIT, "ack", store.ack(&receipts)).await;
    assert!(
        matches!(acked, Err(soiree::Error::ResultsNotSaved { deliveries: 1 })),
        "{acked:?}"
    );
    // Only the held-back delivery comes back.
    let again = take(store, 1).await;
    let ids: Vec<&str> = again.iter().map(|d| d.event.id().unwrap()).collect();
    assert_eq!(ids, ["lost"], "only the held-back delivery comes back");
    assert_eq!(again[0].delivery_count, 2);
    heal.await;
    within(LIMIT, "result", store.save_handler_result(&success("lost")))
        .await
        .unwrap();
    within(LIMIT, "ack", store.ack(&[again[0].receipt.clone()]))
        .await
        .unwrap();
    assert!(backlog_drains(store).await);
    let results = within(LIMIT, "results", EventHistory::results(store, None, 100))
        .await
        .unwrap();
    let mut saved: Vec<&str> = results.items.iter().map(|r| r.event_id.as_str()).collect();
    saved.sort_unstable();
    assert_eq!(saved, ["lost", "ok-1", "ok-2"]);
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::pg_or_skip;
    use support::pg_builder;

    /// Makes the database refuse for good, with a check constraint named
    /// `soiree_poison`, the rows of `table` for which `allowed` is false.
    async fn refuse(store: &soiree_sql::PostgresStore, table: &str, allowed: &str) {
        let statement = format!(
            "ALTER TABLE {}.{table} ADD CONSTRAINT soiree_poison CHECK ({allowed})",
            store.schema()
        );
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(store.pool())
            .await
            .unwrap();
    }

    /// Results before ack on PostgreSQL: a trigger fails the result rows
    /// of event `lost` (SQLSTATE P0001: not a refusal of the data, so
    /// retried, then given up alone).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_result_holds_back_its_own_delivery_only() {
        let server = pg_or_skip!();
        let store = pg_builder(&server, "c1")
            .lease_timeout(Duration::from_secs(3))
            .retry_backoff(Duration::from_millis(100))
            .build()
            .await
            .unwrap();
        let schema = store.schema().to_owned();
        for statement in [
            format!(
                "CREATE FUNCTION {schema}.soiree_lose() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.event_id = 'lost' THEN RAISE EXCEPTION 'results unavailable'; END IF; \
                 RETURN NEW; END $$"
            ),
            format!(
                "CREATE TRIGGER soiree_lose BEFORE INSERT ON {schema}.soiree_results \
                 FOR EACH ROW EXECUTE FUNCTION {schema}.soiree_lose()"
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(store.pool())
                .await
                .unwrap();
        }
        let heal = async {
            let statement = format!("DROP TRIGGER soiree_lose ON {schema}.soiree_results");
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(store.pool())
                .await
                .unwrap();
        };
        a_lost_result_holds_back_its_own_delivery(&store, heal).await;
    }

    /// An event the database refuses for good (here a check constraint;
    /// ids too long for the index are refused earlier, by the limits) fails
    /// its own emit only: the batch it shared with 299 others is split until
    /// it fails alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_the_database_refuses_fails_alone_in_its_batch() {
        let server = pg_or_skip!();
        let store = pg_builder(&server, "c1").build().await.unwrap();
        refuse(&store, "soiree_events", "event_id <> 'e-poison'").await;
        let poison = 150;
        let events: Vec<StoredEvent> = (0..300)
            .map(|n| {
                let id = if n == poison {
                    "e-poison".to_owned()
                } else {
                    format!("e-{n}")
                };
                event("order.paid", &id)
            })
            .collect();
        // Polled together: they queue before the writer takes a batch.
        let outcomes = within(
            LIMIT,
            "emits",
            futures::future::join_all(events.iter().map(|e| store.save_event(e))),
        )
        .await;
        let failed: Vec<usize> = (0..outcomes.len())
            .filter(|&n| outcomes[n].is_err())
            .collect();
        assert_eq!(failed, [poison], "{:?}", outcomes[poison]);
        let message = outcomes[poison].as_ref().unwrap_err().to_string();
        assert!(
            message.contains("soiree_poison"),
            "its own error: {message}"
        );
        let page = within(LIMIT, "events", EventHistory::events(&store, None, 1000))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 299);
    }

    /// An event whose success row the database refuses for good (a check
    /// constraint on the dedup table): the success is refused alone (logged
    /// and counted), the acknowledgements go on, the backlog drains, `close`
    /// returns; its neighbours' results are saved.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_success_the_database_refuses_does_not_hold_acks_back() {
        let server = pg_or_skip!();
        let store = pg_builder(&server, "c1").build().await.unwrap();
        refuse(&store, "soiree_handled", "event_id <> 'refused'").await;
        let bus = bus_over(&store);
        let runs = recorder(&bus, false);
        let long = "refused".to_owned();
        for n in 0..10 {
            let id = if n == 5 {
                long.clone()
            } else {
                format!("ok-{n}")
            };
            let event = Event::new("order.paid", serde_json::json!({ "n": n }));
            event.properties().set(PROPERTY_EVENT_ID, id.as_str());
            emit(&bus, "order.paid", event).await;
        }
        assert!(
            eventually(LIMIT, || async { runs.lock().unwrap().len() >= 10 }).await,
            "every event ran"
        );
        assert!(backlog_drains(&store).await, "every event acknowledged");
        assert_eq!(ran(&runs, &long), 1);
        let results = within(LIMIT, "results", EventHistory::results(&store, None, 100))
            .await
            .unwrap();
        assert_eq!(results.items.len(), 9, "the neighbours' results are saved");
        within(LIMIT, "close", bus.close()).await.unwrap();
    }

    /// A result the database refuses for good does not fail the flush of
    /// the results beside it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_result_is_given_up_alone() {
        let server = pg_or_skip!();
        let store = pg_builder(&server, "c1").build().await.unwrap();
        let result = |event_id: String| StoredResult {
            topic: "order.paid".into(),
            event_id,
            handler_id: "charge".into(),
            error: None,
            attempt: 1,
        };
        refuse(&store, "soiree_handled", "event_id <> 'refused'").await;
        refuse(&store, "soiree_results", "event_id <> 'refused'").await;
        for n in 0..5 {
            let id = if n == 2 {
                "refused".to_owned()
            } else {
                format!("ok-{n}")
            };
            within(LIMIT, "save", store.save_handler_result(&result(id)))
                .await
                .unwrap();
        }
        let results = within(LIMIT, "results", EventHistory::results(&store, None, 100))
            .await
            .unwrap();
        let ids: Vec<&str> = results.items.iter().map(|r| r.event_id.as_str()).collect();
        assert_eq!(ids, ["ok-0", "ok-1", "ok-3", "ok-4"]);
    }

    /// A NUL in a property string: the event is delivered, dead-lettered,
    /// and replayed with its neighbours by every kind of replay.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_nul_in_a_property_does_not_break_replay() {
        let server = pg_or_skip!();
        let store = pg_builder(&server, "c1").build().await.unwrap();
        let bus = bus_over(&store);
        let runs = recorder(&bus, true);
        for id in ["before", "nul", "after"] {
            let event = Event::new("order.paid", serde_json::json!({ "id": id }));
            event.properties().set(PROPERTY_EVENT_ID, id);
            if id == "nul" {
                event.properties().set("note", "a\u{0}b");
                event.properties().set(soiree_sql::PROPERTY_KEY, "k");
            }
            emit(&bus, "order.paid", event).await;
        }
        let letters = || async {
            within(LIMIT, "dead letters", store.sql_dead_letters(None, 100))
                .await
                .unwrap()
                .items
        };
        assert!(eventually(LIMIT, || async { letters().await.len() == 3 }).await);
        assert!(backlog_drains(&store).await);
        // Bulk replay: every letter moves.
        let moved = within(
            LIMIT,
            "replay all",
            store.replay_sql_dead_letters(&SqlDeadLetterFilter::all()),
        )
        .await
        .unwrap();
        assert_eq!(moved, 3);
        assert!(eventually(LIMIT, || async { ran(&runs, "nul") == 2 }).await);
        assert!(eventually(LIMIT, || async { letters().await.len() == 3 }).await);
        // By ids, through the inspection trait.
        let ids: Vec<String> = letters().await.iter().map(|l| l.id.to_string()).collect();
        let moved = within(
            LIMIT,
            "replay ids",
            Inspect::replay_dead_letters(&store, &DeadLetterSelection::Ids(ids)),
        )
        .await
        .unwrap();
        assert_eq!(moved, 3);
        assert!(eventually(LIMIT, || async { ran(&runs, "nul") == 3 }).await);
        assert!(eventually(LIMIT, || async { letters().await.len() == 3 }).await);
        // One letter by event id (a copy, the letter stays).
        assert_eq!(
            within(LIMIT, "replay one", store.replay_dead_letters_of("nul"))
                .await
                .unwrap(),
            1
        );
        assert!(eventually(LIMIT, || async { ran(&runs, "nul") == 4 }).await);
        assert!(backlog_drains(&store).await);
        for id in ["before", "after"] {
            assert_eq!(ran(&runs, id), 3, "{id}");
        }
        within(LIMIT, "close", bus.close()).await.unwrap();
    }

    /// An event id too long for the dead letters' index (a row written
    /// before the limits, inserted raw here) is still dead-lettered (found
    /// by its properties), and a letter whose key the retry table refuses
    /// for good stays behind alone when the others are replayed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn letters_the_database_cannot_hold_fail_alone() {
        let server = pg_or_skip!();
        let store = pg_builder(&server, "c1").build().await.unwrap();
        refuse(
            &store,
            "soiree_retries",
            "key IS DISTINCT FROM 'refused-key'",
        )
        .await;
        let bus = bus_over(&store);
        let runs = recorder(&bus, true);
        let long_id = noise(2690, 5);
        for (id, key) in [
            ("before", None),
            (long_id.as_str(), None),
            ("huge-key", Some("refused-key".to_owned())),
            ("after", None),
        ] {
            if id == long_id {
                // Past today's id limit: written raw, as an older version
                // could have.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {}.soiree_events (topic, event_id, payload, properties) \
                     VALUES ('order.paid', $1, '{{}}', json_build_object('soiree.event_id', $1::text))",
                    store.schema()
                )))
                .bind(id)
                .execute(store.pool())
                .await
                .unwrap();
                continue;
            }
            let event = Event::new("order.paid", serde_json::json!({ "id": id }));
            event.properties().set(PROPERTY_EVENT_ID, id);
            if let Some(key) = key {
                event
                    .properties()
                    .set(soiree_sql::PROPERTY_KEY, key.as_str());
            }
            emit(&bus, "order.paid", event).await;
        }
        let letters = || async {
            within(LIMIT, "dead letters", store.sql_dead_letters(None, 100))
                .await
                .unwrap()
                .items
        };
        assert!(
            eventually(LIMIT, || async { letters().await.len() == 4 }).await,
            "{:?}",
            letters().await
        );
        assert!(backlog_drains(&store).await, "every delivery settled");
        let long = letters()
            .await
            .into_iter()
            .find(|l| l.event().and_then(|e| e.id().map(str::to_owned)) == Some(long_id.clone()))
            .expect("the long id's letter");
        assert_eq!(long.event_id, None, "too long for the column's index");
        assert_eq!(
            within(LIMIT, "replay", store.replay_dead_letters_of(&long_id))
                .await
                .unwrap(),
            1
        );
        assert!(eventually(LIMIT, || async { ran(&runs, &long_id) == 2 }).await);
        assert!(backlog_drains(&store).await);
        // Moved, failed again: 4 letters, of which the huge key's stays
        // behind in a bulk replay.
        assert!(eventually(LIMIT, || async { letters().await.len() == 4 }).await);
        let moved = within(
            LIMIT,
            "replay all",
            store.replay_sql_dead_letters(&SqlDeadLetterFilter::all()),
        )
        .await
        .unwrap();
        assert_eq!(moved, 3);
        // The three moved run (and fail) again; the huge key's letter stayed.
        assert!(
            eventually(LIMIT, || async {
                ran(&runs, "before") == 2 && ran(&runs, "after") == 2 && ran(&runs, &long_id) == 3
            })
            .await
        );
        assert!(eventually(LIMIT, || async { letters().await.len() == 4 }).await);
        assert!(backlog_drains(&store).await);
        assert_eq!(ran(&runs, "huge-key"), 1, "it stayed a dead letter");
        within(LIMIT, "close", bus.close()).await.unwrap();
    }

    /// A statement failed inside the transaction: PostgreSQL rolls it back
    /// at `COMMIT` without an error; `commit` reports it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commit_reports_a_transaction_rolled_back_after_a_failed_statement() {
        let server = pg_or_skip!();
        let store = pg_builder(&server, "c1").build().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        store
            .emit_in(&mut tx, "order.paid", serde_json::json!({ "n": 1 }))
            .await
            .unwrap();
        assert!(sqlx::query("SELECT 1 / 0").execute(&mut *tx).await.is_err());
        let outcome = within(LIMIT, "commit", store.commit(tx)).await;
        assert!(matches!(outcome, Err(Error::Database(_))), "{outcome:?}");
        let page = within(LIMIT, "events", EventHistory::events(&store, None, 10))
            .await
            .unwrap();
        assert!(page.items.is_empty(), "nothing was committed");
        // A healthy transaction still commits.
        let mut tx = store.begin().await.unwrap();
        store
            .emit_in(&mut tx, "order.paid", serde_json::json!({ "n": 2 }))
            .await
            .unwrap();
        within(LIMIT, "commit", store.commit(tx)).await.unwrap();
        let page = within(LIMIT, "events", EventHistory::events(&store, None, 10))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
    }

    /// With triggers installed, rows holding `\u0000` in a `json` column
    /// are inserted, updated and deleted (the triggers used to fail the
    /// application's statements), and numerics arrive exact, as strings.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn triggers_never_break_writes_and_keep_numerics_exact() {
        let server = pg_or_skip!();
        let store = pg_builder(&server, "c1").build().await.unwrap();
        let exec = |sql: &'static str| {
            let pool = store.pool().clone();
            async move { within(LIMIT, sql, sqlx::query(sql).execute(&pool)).await }
        };
        exec(
            "CREATE TABLE docs (id text PRIMARY KEY, body json, amount numeric, \
               amounts numeric[], seats integer)",
        )
        .await
        .unwrap();
        within(
            LIMIT,
            "install",
            store.install_mutation_triggers(&soiree_sql::triggers::MutationTrigger::new(
                "docs", "Doc",
            )),
        )
        .await
        .unwrap();
        let bus = bus_over(&store);
        let seen = payloads_of(&bus, "Doc");
        exec(
            "INSERT INTO docs VALUES ('d-1', '{\"note\": \"a\\u0000b\"}', \
               12345678901234567890.123456789, '{1e400, 0.1}', 3)",
        )
        .await
        .unwrap();
        exec("UPDATE docs SET body = '[\"\\u0000\"]', seats = 4 WHERE id = 'd-1'")
            .await
            .unwrap();
        exec("DELETE FROM docs WHERE id = 'd-1'").await.unwrap();
        assert!(
            eventually(LIMIT, || async { seen.lock().unwrap().len() == 3 }).await,
            "{:?}",
            seen.lock().unwrap()
        );
        let created = of_op(&seen, "OpCreate");
        let after = &created["after"];
        assert_eq!(created["entity_id"], "d-1");
        assert_eq!(after["body"]["note"], "a\u{0}b");
        assert_eq!(after["amount"], "12345678901234567890.123456789");
        let big = format!("1{}", "0".repeat(400));
        assert_eq!(after["amounts"], serde_json::json!([big, "0.1"]));
        assert_eq!(after["seats"], 3);
        let updated = of_op(&seen, "OpUpdateOne");
        assert_eq!(
            updated["changed_fields"],
            serde_json::json!(["body", "seats"])
        );
        assert_eq!(updated["before"]["body"]["note"], "a\u{0}b");
        assert_eq!(updated["after"]["body"], serde_json::json!(["\u{0}"]));
        let deleted = of_op(&seen, "OpDeleteOne");
        assert_eq!(deleted["entity_id"], "d-1");
        assert_eq!(
            deleted["before"]["amount"],
            "12345678901234567890.123456789"
        );
        assert!(backlog_drains(&store).await);
        let letters = within(LIMIT, "dead letters", store.sql_dead_letters(None, 10))
            .await
            .unwrap();
        assert!(letters.items.is_empty(), "{:?}", letters.items);
        within(LIMIT, "close", bus.close()).await.unwrap();
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use support::sqlite_builder;

    /// Results before ack on SQLite: a trigger fails the result rows of
    /// event `lost` with a runtime error (malformed JSON: not a refusal of
    /// the data, so retried, then given up alone).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_result_holds_back_its_own_delivery_only() {
        let dir = TempDir::new();
        let store = sqlite_builder(&dir.db(), "c1")
            .lease_timeout(Duration::from_secs(3))
            .retry_backoff(Duration::from_millis(100))
            .build()
            .await
            .unwrap();
        sqlx::query(
            "CREATE TRIGGER soiree_lose BEFORE INSERT ON soiree_results \
             WHEN NEW.event_id = 'lost' BEGIN SELECT json(NEW.topic || '{'); END",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let heal = async {
            sqlx::query("DROP TRIGGER soiree_lose")
                .execute(store.pool())
                .await
                .unwrap();
        };
        a_lost_result_holds_back_its_own_delivery(&store, heal).await;
    }

    /// A row that is not an event (written by `insert`, event id `bad`)
    /// among 20 events: the neighbours are delivered at once (not after the
    /// lease expires), the row is dead-lettered alone with its event id and
    /// an error containing `error`, and every listing shows it. Returns its
    /// dead letter.
    async fn one_bad_row_among_twenty(insert: &str, error: &str) -> soiree_sql::SqlDeadLetter {
        let dir = TempDir::new();
        // Longer than the test's own bound: a claim held back until the
        // lease expires fails it.
        let store = sqlite_builder(&dir.db(), "c1")
            .lease_timeout(Duration::from_secs(120))
            .build()
            .await
            .unwrap();
        for n in 0..20 {
            if n == 10 {
                sqlx::query(sqlx::AssertSqlSafe(insert.to_owned()))
                    .execute(store.pool())
                    .await
                    .unwrap();
            }
            within(
                LIMIT,
                "save",
                store.save_event(&event("order.paid", &format!("ok-{n}"))),
            )
            .await
            .unwrap();
        }
        let bus = bus_over(&store);
        let runs = recorder(&bus, false);
        assert!(
            eventually(LIMIT, || async { runs.lock().unwrap().len() >= 20 }).await,
            "the neighbours were delivered: {:?}",
            runs.lock().unwrap()
        );
        assert!(backlog_drains(&store).await);
        assert_eq!(ran(&runs, "bad"), 0);
        let letters = within(LIMIT, "dead letters", store.sql_dead_letters(None, 100))
            .await
            .unwrap()
            .items;
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert_eq!(letters[0].event_id.as_deref(), Some("bad"));
        assert!(letters[0].error.contains(error), "{letters:?}");
        // The listings show it, lossily.
        let history = within(LIMIT, "history", EventHistory::events(&store, None, 100))
            .await
            .unwrap();
        assert_eq!(history.items.len(), 21);
        let listed = within(
            LIMIT,
            "events",
            Inspect::events(&store, &Query::oldest(100)),
        )
        .await
        .unwrap();
        assert_eq!(listed.items.len(), 21);
        let inspected = within(
            LIMIT,
            "dead letters",
            Inspect::dead_letters(&store, &Query::oldest(100)),
        )
        .await
        .unwrap();
        assert_eq!(inspected.items.len(), 1);
        within(LIMIT, "close", bus.close()).await.unwrap();
        letters.into_iter().next().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_row_that_is_not_utf8_is_dead_lettered_alone() {
        let letter = one_bad_row_among_twenty(
            "INSERT INTO soiree_events (topic, event_id, payload, properties) \
             VALUES ('order.paid', 'bad', CAST(x'7b226e223a22ff227d' AS TEXT), \
               '{\"soiree.event_id\":\"bad\"}')",
            "UTF-8",
        )
        .await;
        assert!(
            letter.payload.as_deref().unwrap().contains('\u{fffd}'),
            "{letter:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_row_nested_too_deep_is_dead_lettered_alone() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        one_bad_row_among_twenty(
            &format!(
                "INSERT INTO soiree_events (topic, event_id, payload, properties) \
                 VALUES ('order.paid', 'bad', '{deep}', '{{\"soiree.event_id\":\"bad\"}}')"
            ),
            "recursion limit",
        )
        .await;
    }

    /// Results, dead letters and consumers whose texts are not UTF-8 are
    /// listed lossily instead of failing their listings.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listings_show_rows_that_are_not_utf8() {
        let dir = TempDir::new();
        let store = sqlite_builder(&dir.db(), "c1").build().await.unwrap();
        sqlx::query(
            "INSERT INTO soiree_results (topic, event_id, handler_id, error, attempt) \
             VALUES (CAST(x'6f2eff' AS TEXT), 'e', 'h', CAST(x'ff' AS TEXT), 1)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO soiree_dead_letters (group_name, event_row, topic, event_id, \
               payload, properties, error, deliveries) \
             VALUES ('soiree', 1, CAST(x'6f2eff' AS TEXT), CAST(x'65ff' AS TEXT), \
               CAST(x'ff' AS TEXT), NULL, CAST(x'ff' AS TEXT), 1)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let results = within(LIMIT, "results", EventHistory::results(&store, None, 10))
            .await
            .unwrap();
        assert_eq!(results.items[0].topic, "o.\u{fffd}");
        let results = within(
            LIMIT,
            "results",
            Inspect::results(&store, &Query::oldest(10)),
        )
        .await
        .unwrap();
        assert_eq!(results.items.len(), 1);
        let letters = within(LIMIT, "dead letters", store.sql_dead_letters(None, 10))
            .await
            .unwrap()
            .items;
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].event_id.as_deref(), Some("e\u{fffd}"));
        let inspected = within(
            LIMIT,
            "dead letters",
            Inspect::dead_letters(&store, &Query::oldest(10)),
        )
        .await
        .unwrap();
        assert_eq!(inspected.items.len(), 1);
    }

    /// A transaction SQLite rolled back (a statement raised ROLLBACK):
    /// `commit` reports it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commit_reports_a_transaction_sqlite_rolled_back() {
        let dir = TempDir::new();
        let store = sqlite_builder(&dir.db(), "c1").build().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        store
            .emit_in(&mut tx, "order.paid", serde_json::json!({ "n": 1 }))
            .await
            .unwrap();
        for statement in [
            "CREATE TEMP TABLE boom (x)",
            "CREATE TEMP TRIGGER boom_rollback BEFORE INSERT ON boom \
             BEGIN SELECT RAISE(ROLLBACK, 'boom'); END",
        ] {
            sqlx::query(statement).execute(&mut *tx).await.unwrap();
        }
        assert!(
            sqlx::query("INSERT INTO boom VALUES (1)")
                .execute(&mut *tx)
                .await
                .is_err()
        );
        let outcome = within(LIMIT, "commit", store.commit(tx)).await;
        assert!(matches!(outcome, Err(Error::Database(_))), "{outcome:?}");
        let page = within(LIMIT, "events", EventHistory::events(&store, None, 10))
            .await
            .unwrap();
        assert!(page.items.is_empty(), "nothing was committed");
    }

    /// Makes SQLite refuse for good (a constraint error raised by a
    /// trigger named `soiree_poison_<table>`) the rows of `table` for which
    /// `refused` holds.
    async fn refuse(store: &soiree_sql::SqliteStore, table: &str, refused: &str) {
        let statement = format!(
            "CREATE TRIGGER soiree_poison_{table} BEFORE INSERT ON {table} \
             WHEN {refused} BEGIN SELECT RAISE(ABORT, 'soiree_poison'); END"
        );
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(store.pool())
            .await
            .unwrap();
    }

    /// Events `e-0` … `e-{n-1}`, `e-poison` in place of the `poison`th.
    fn events_with_poison(n: usize, poison: usize) -> Vec<StoredEvent> {
        (0..n)
            .map(|k| {
                let id = if k == poison {
                    "e-poison".to_owned()
                } else {
                    format!("e-{k}")
                };
                event("order.paid", &id)
            })
            .collect()
    }

    /// The event ids in the log, in log order.
    async fn logged_ids(store: &soiree_sql::SqliteStore) -> Vec<String> {
        sqlx::query_scalar("SELECT event_id FROM soiree_events ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap()
    }

    /// An event SQLite refuses for good fails its own emit only, and its
    /// batch-mates are logged once each: the batch (more rows than one
    /// statement inserts) is written all or nothing, then split until the
    /// poison fails alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_the_database_refuses_fails_alone_in_its_batch() {
        let dir = TempDir::new();
        let store = sqlite_builder(&dir.db(), "c1").build().await.unwrap();
        refuse(&store, "soiree_events", "NEW.event_id = 'e-poison'").await;
        let (n, poison) = (700, 600);
        let events = events_with_poison(n, poison);
        // Polled together: they queue before the writer takes a batch.
        let outcomes = within(
            LIMIT,
            "emits",
            futures::future::join_all(events.iter().map(|e| store.save_event(e))),
        )
        .await;
        let failed: Vec<usize> = (0..n).filter(|&k| outcomes[k].is_err()).collect();
        assert_eq!(failed, [poison], "{:?}", outcomes[poison]);
        let message = outcomes[poison].as_ref().unwrap_err().to_string();
        assert!(
            message.contains("soiree_poison"),
            "its own error: {message}"
        );
        let mut logged = logged_ids(&store).await;
        logged.sort();
        let mut expected: Vec<String> = (0..n)
            .filter(|&k| k != poison)
            .map(|k| format!("e-{k}"))
            .collect();
        expected.sort();
        assert_eq!(logged, expected, "each neighbour logged once");
    }

    /// `emit_all_in` on a connection outside any transaction writes all of
    /// its events or none, however many statements it takes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn emit_all_in_outside_a_transaction_writes_all_or_nothing() {
        let dir = TempDir::new();
        let store = sqlite_builder(&dir.db(), "c1").build().await.unwrap();
        refuse(&store, "soiree_events", "NEW.event_id = 'e-poison'").await;
        let mut conn = store.pool().acquire().await.unwrap();
        let refused = store
            .emit_all_in(
                &mut conn,
                events_with_poison(700, 600)
                    .into_iter()
                    .map(|e| (e.topic.clone(), e.into_event())),
            )
            .await;
        assert!(refused.is_err(), "the poison is refused");
        let written = store
            .emit_all_in(
                &mut conn,
                events_with_poison(700, usize::MAX)
                    .into_iter()
                    .map(|e| (e.topic.clone(), e.into_event())),
            )
            .await
            .unwrap();
        drop(conn);
        assert_eq!(written.len(), 700);
        assert_eq!(
            logged_ids(&store).await,
            written,
            "only the second call's events, in order"
        );
    }

    /// With triggers installed, text holding NUL is inserted, updated and
    /// deleted, and captured as it is.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn triggers_capture_nul_in_text() {
        let dir = TempDir::new();
        let store = sqlite_builder(&dir.db(), "c1").build().await.unwrap();
        let exec = |sql: &'static str| {
            let pool = store.pool().clone();
            async move { within(LIMIT, sql, sqlx::query(sql).execute(&pool)).await }
        };
        exec("CREATE TABLE docs (id TEXT PRIMARY KEY, body TEXT, total REAL)")
            .await
            .unwrap();
        within(
            LIMIT,
            "install",
            store.install_mutation_triggers(&soiree_sql::triggers::MutationTrigger::new(
                "docs", "Doc",
            )),
        )
        .await
        .unwrap();
        let bus = bus_over(&store);
        let seen = payloads_of(&bus, "Doc");
        exec("INSERT INTO docs VALUES ('d-1', 'a' || char(0) || 'b', 1.5)")
            .await
            .unwrap();
        exec("UPDATE docs SET body = char(0) WHERE id = 'd-1'")
            .await
            .unwrap();
        exec("DELETE FROM docs WHERE id = 'd-1'").await.unwrap();
        assert!(eventually(LIMIT, || async { seen.lock().unwrap().len() == 3 }).await);
        assert_eq!(of_op(&seen, "OpCreate")["after"]["body"], "a\u{0}b");
        assert_eq!(of_op(&seen, "OpUpdateOne")["after"]["body"], "\u{0}");
        assert_eq!(of_op(&seen, "OpDeleteOne")["before"]["total"], 1.5);
        within(LIMIT, "close", bus.close()).await.unwrap();
    }
}
