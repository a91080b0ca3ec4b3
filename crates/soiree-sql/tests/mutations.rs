//! Mutation events in the outbox: `record` in the caller's transaction and
//! database triggers, on a throwaway PostgreSQL and on SQLite files.

#![cfg(all(feature = "postgres", feature = "sqlite"))]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use soiree::EventBus;
use soiree::EventHistory;
use soiree::mutation::{MutationPayload, Mutations, Operation};
use soiree::workflow::MutationDetectedPayload;
use soiree_sql::triggers::MutationTrigger;
use soiree_sql::{Error, PostgresStore, SqliteStore};
use sqlx::AssertSqlSafe;
use support::{TempDir, eventually, pg_builder, sqlite_builder, within};

const LIMIT: Duration = Duration::from_secs(30);

/// The store under test, with the few operations the scenarios need.
#[derive(Clone)]
enum Db {
    Pg(PostgresStore),
    Lite(SqliteStore),
}

impl Db {
    async fn exec(&self, sql: &str) -> Result<u64, sqlx::Error> {
        let sql = AssertSqlSafe(sql.to_owned());
        match self {
            Db::Pg(store) => Ok(sqlx::query(sql)
                .execute(store.pool())
                .await?
                .rows_affected()),
            Db::Lite(store) => Ok(sqlx::query(sql)
                .execute(store.pool())
                .await?
                .rows_affected()),
        }
    }

    /// Runs `sql` and records `payload` in one transaction, then commits or
    /// rolls back.
    async fn record(
        &self,
        mutations: &Mutations,
        sql: &str,
        payload: &MutationPayload,
        commit: bool,
    ) -> Vec<String> {
        let sql = AssertSqlSafe(sql.to_owned());
        match self {
            Db::Pg(store) => {
                let mut tx = store.begin().await.unwrap();
                sqlx::query(sql).execute(&mut *tx).await.unwrap();
                let ids = store.record(&mut tx, mutations, payload).await.unwrap();
                if commit {
                    store.commit(tx).await.unwrap();
                } else {
                    tx.rollback().await.unwrap();
                }
                ids
            }
            Db::Lite(store) => {
                let mut tx = store.begin().await.unwrap();
                sqlx::query(sql).execute(&mut *tx).await.unwrap();
                let ids = store.record(&mut tx, mutations, payload).await.unwrap();
                if commit {
                    store.commit(tx).await.unwrap();
                } else {
                    tx.rollback().await.unwrap();
                }
                ids
            }
        }
    }

    /// Runs `sql` in a transaction that is rolled back.
    async fn rolled_back(&self, sql: &str) {
        let sql = AssertSqlSafe(sql.to_owned());
        match self {
            Db::Pg(store) => {
                let mut tx = store.begin().await.unwrap();
                sqlx::query(sql).execute(&mut *tx).await.unwrap();
                tx.rollback().await.unwrap();
            }
            Db::Lite(store) => {
                let mut tx = store.begin().await.unwrap();
                sqlx::query(sql).execute(&mut *tx).await.unwrap();
                tx.rollback().await.unwrap();
            }
        }
    }

    /// Runs an outbox insert built for this database, with sqlx binds.
    async fn exec_insert(&self, insert: &soiree_sql::outbox::OutboxInsert) {
        let sql = AssertSqlSafe(insert.sql.clone());
        match self {
            Db::Pg(store) => {
                let mut query = sqlx::query(sql);
                for value in &insert.values {
                    query = query.bind(value.clone());
                }
                query.execute(store.pool()).await.unwrap();
            }
            Db::Lite(store) => {
                let mut query = sqlx::query(sql);
                for value in &insert.values {
                    query = query.bind(value.clone());
                }
                query.execute(store.pool()).await.unwrap();
            }
        }
    }

    /// The outbox statement of this database's driver, for an ORM.
    fn mutation_insert(
        &self,
        mutations: &Mutations,
        payload: &MutationPayload,
    ) -> soiree_sql::Result<Option<soiree_sql::outbox::OutboxInsert>> {
        use soiree_sql::outbox::mutation_insert;
        match self {
            Db::Pg(store) => {
                mutation_insert::<soiree_sql::Postgres>(store.schema(), mutations, payload)
            }
            Db::Lite(_) => mutation_insert::<soiree_sql::Sqlite>("main", mutations, payload),
        }
    }

    async fn install(&self, trigger: &MutationTrigger) -> soiree_sql::Result<()> {
        match self {
            Db::Pg(store) => store.install_mutation_triggers(trigger).await,
            Db::Lite(store) => store.install_mutation_triggers(trigger).await,
        }
    }

    async fn remove(&self, trigger: &MutationTrigger) -> soiree_sql::Result<()> {
        match self {
            Db::Pg(store) => store.remove_mutation_triggers(trigger).await,
            Db::Lite(store) => store.remove_mutation_triggers(trigger).await,
        }
    }

    /// The topics of the log, oldest first.
    async fn logged_topics(&self) -> Vec<String> {
        let page = match self {
            Db::Pg(store) => store.events(None, 10_000).await.unwrap(),
            Db::Lite(store) => store.events(None, 10_000).await.unwrap(),
        };
        page.items.into_iter().map(|e| e.topic).collect()
    }

    fn bus(&self) -> EventBus {
        let builder = EventBus::builder();
        let builder = match self {
            Db::Pg(store) => builder.store(store.clone()),
            Db::Lite(store) => builder.store(store.clone()),
        };
        builder.build().unwrap()
    }
}

type Seen = Arc<Mutex<Vec<MutationPayload>>>;

fn listen(mutations: &Mutations, name: &str, entity: &str) -> Seen {
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    mutations
        .add_named_mutation_listener(name, entity, move |_ctx, payload| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(payload);
                Ok(())
            }
        })
        .unwrap();
    seen
}

async fn settle(bus: &EventBus, seen: &Seen, count: usize) {
    assert!(
        eventually(LIMIT, || async { seen.lock().unwrap().len() >= count }).await,
        "{} of {count} handled",
        seen.lock().unwrap().len()
    );
    within(LIMIT, "idle", bus.wait_for_idle()).await;
}

async fn record_scenario(db: Db) {
    db.exec("CREATE TABLE invoices (id TEXT PRIMARY KEY, total INTEGER)")
        .await
        .unwrap();
    let bus = db.bus();
    let mutations = Mutations::new(bus.clone());
    let seen = listen(&mutations, "billing", "Invoice");
    bus.start().unwrap();

    // Rolled back: never handled.
    let payload = MutationPayload::new(Operation::Create, "Invoice", "inv-0");
    let ids = db
        .record(
            &mutations,
            "INSERT INTO invoices (id, total) VALUES ('inv-0', 1)",
            &payload,
            false,
        )
        .await;
    assert_eq!(ids.len(), 1);

    // Committed: handled once.
    let payload = MutationPayload::new(Operation::Create, "Invoice", "inv-1")
        .with_changed_fields(["id", "total"])
        .with_after(json!({ "id": "inv-1", "total": 5 }))
        .with_actor("user-7");
    let ids = db
        .record(
            &mutations,
            "INSERT INTO invoices (id, total) VALUES ('inv-1', 5)",
            &payload,
            true,
        )
        .await;
    assert_eq!(ids.len(), 1);
    settle(&bus, &seen, 1).await;
    assert_eq!(*seen.lock().unwrap(), vec![payload]);
    assert_eq!(db.logged_topics().await, ["Invoice"]);

    // Nobody listens to ledgers: nothing is staged.
    let ledger = MutationPayload::new(Operation::Create, "Ledger", "l-1");
    let ids = db.record(&mutations, "SELECT 1", &ledger, true).await;
    assert!(ids.is_empty());
    assert_eq!(db.logged_topics().await, ["Invoice"]);

    // Unless told to stage everything (listeners in other processes).
    let everything = Mutations::new(bus.clone()).always_stage(true);
    let ids = db.record(&everything, "SELECT 1", &ledger, true).await;
    assert_eq!(ids.len(), 1);
    assert_eq!(db.logged_topics().await, ["Invoice", "Ledger"]);

    within(LIMIT, "idle", bus.wait_for_idle()).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the rolled back one never ran"
    );

    // The same events as a statement for another data layer (an ORM).
    let payload = MutationPayload::new(Operation::DeleteOne, "Invoice", "inv-1");
    let insert = db.mutation_insert(&mutations, &payload).unwrap().unwrap();
    db.exec_insert(&insert).await;
    if let Db::Pg(store) = &db {
        store.wake();
    }
    settle(&bus, &seen, 2).await;
    assert_eq!(seen.lock().unwrap()[1], payload);
    let ledger_insert = db.mutation_insert(&mutations, &ledger).unwrap();
    assert!(ledger_insert.is_none(), "nobody listens to ledgers");
    within(LIMIT, "close", bus.close()).await.unwrap();
}

async fn trigger_scenario(db: Db) {
    db.exec("CREATE TABLE settings (id TEXT PRIMARY KEY, plan TEXT, seats INTEGER)")
        .await
        .unwrap();
    let trigger = MutationTrigger::new("settings", "OrganizationSetting");
    db.install(&trigger).await.unwrap();
    db.install(&trigger).await.unwrap(); // twice: harmless
    let bus = db.bus();
    let mutations = Mutations::new(bus.clone());
    let seen = listen(&mutations, "billing", "OrganizationSetting");
    bus.start().unwrap();

    db.exec("INSERT INTO settings (id, plan, seats) VALUES ('os-1', 'free', 3)")
        .await
        .unwrap();
    db.exec("UPDATE settings SET plan = 'pro' WHERE id = 'os-1'")
        .await
        .unwrap();
    db.exec("DELETE FROM settings WHERE id = 'os-1'")
        .await
        .unwrap();
    db.rolled_back("INSERT INTO settings (id, plan) VALUES ('os-rolled-back', 'free')")
        .await;
    settle(&bus, &seen, 3).await;
    {
        // Listeners run concurrently: find each by its operation.
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "{seen:?}");
        let of = |op| seen.iter().find(|p| p.operation == op).unwrap();
        let (created, updated, deleted) = (
            of(Operation::Create),
            of(Operation::UpdateOne),
            of(Operation::DeleteOne),
        );
        let row = json!({ "id": "os-1", "plan": "free", "seats": 3 });
        let changed = json!({ "id": "os-1", "plan": "pro", "seats": 3 });
        assert_eq!(created.entity_type, "OrganizationSetting");
        assert_eq!(created.entity_id, "os-1");
        assert_eq!(created.changed_fields, ["id", "plan", "seats"]);
        assert_eq!(created.after, Some(row.clone()));
        assert_eq!(created.before, None);
        assert_eq!(updated.entity_id, "os-1");
        assert_eq!(updated.changed_fields, ["plan"]);
        assert_eq!(updated.before, Some(row));
        assert_eq!(updated.after, Some(changed.clone()));
        assert_eq!(deleted.entity_id, "os-1");
        assert!(deleted.changed_fields.is_empty());
        assert_eq!(deleted.before, Some(changed));
        assert_eq!(deleted.after, None);
        assert!(seen.iter().all(|p| p.actor_id.is_none()));
    }

    // Bulk statements: one event per row.
    let values: Vec<String> = (0..100)
        .map(|n| format!("('bulk-{n}', 'free', {n})"))
        .collect();
    let inserted = db
        .exec(&format!(
            "INSERT INTO settings (id, plan, seats) VALUES {}",
            values.join(", ")
        ))
        .await
        .unwrap();
    assert_eq!(inserted, 100);
    let updated = db
        .exec("UPDATE settings SET seats = seats + 1")
        .await
        .unwrap();
    assert_eq!(updated, 100);
    settle(&bus, &seen, 203).await;
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 203);
        let updates: Vec<&MutationPayload> = seen
            .iter()
            .filter(|p| p.operation == Operation::UpdateOne && p.entity_id.starts_with("bulk-"))
            .collect();
        assert_eq!(updates.len(), 100);
        assert!(updates.iter().all(|p| p.changed_fields == ["seats"]));
        let creates = seen
            .iter()
            .filter(|p| p.operation == Operation::Create && p.entity_id.starts_with("bulk-"))
            .count();
        assert_eq!(creates, 100);
        let mut ids: Vec<&str> = updates.iter().map(|p| p.entity_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 100);
        for p in &updates {
            let before = p.before.as_ref().unwrap()["seats"].as_i64().unwrap();
            let after = p.after.as_ref().unwrap()["seats"].as_i64().unwrap();
            assert_eq!(after, before + 1);
        }
    }

    // A bulk delete too.
    let deleted = db
        .exec("DELETE FROM settings WHERE id LIKE 'bulk-%'")
        .await
        .unwrap();
    assert_eq!(deleted, 100);
    settle(&bus, &seen, 303).await;
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 303);
        let deletes: Vec<&MutationPayload> = seen
            .iter()
            .filter(|p| p.operation == Operation::DeleteOne && p.entity_id.starts_with("bulk-"))
            .collect();
        assert_eq!(deletes.len(), 100);
        assert!(deletes.iter().all(|p| {
            p.before.as_ref().and_then(|b| b["id"].as_str()) == Some(p.entity_id.as_str())
                && p.after.is_none()
        }));
    }

    // Removed: writes no longer stage events.
    db.remove(&trigger).await.unwrap();
    db.remove(&trigger).await.unwrap();
    let logged = db.logged_topics().await.len();
    db.exec("UPDATE settings SET seats = 0").await.unwrap();
    assert_eq!(db.logged_topics().await.len(), logged);

    // Hostile and missing names are typed errors.
    for hostile in [
        MutationTrigger::new("settings\"; DROP TABLE settings; --", "OrganizationSetting"),
        MutationTrigger::new("settings", "OrganizationSetting").id_column("id) OR 1=1"),
    ] {
        let err = db.install(&hostile).await.unwrap_err();
        assert!(matches!(err, Error::InvalidIdentifier { .. }), "{err:?}");
        let err = db.remove(&hostile).await.unwrap_err();
        assert!(matches!(err, Error::InvalidIdentifier { .. }), "{err:?}");
    }
    let err = db
        .install(&MutationTrigger::new("no_such_table", "Nothing"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    let err = db
        .install(&MutationTrigger::new("settings", "OrganizationSetting").id_column("uuid"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    assert!(
        db.exec("SELECT 1 FROM settings").await.is_ok(),
        "the table is intact"
    );

    within(LIMIT, "idle", bus.wait_for_idle()).await;
    assert_eq!(seen.lock().unwrap().len(), 303, "rolled back: none");
    within(LIMIT, "close", bus.close()).await.unwrap();
}

async fn detected_scenario(db: Db) {
    db.exec("CREATE TABLE controls (control_id INTEGER PRIMARY KEY, status TEXT)")
        .await
        .unwrap();
    let trigger = MutationTrigger::new("controls", "Control")
        .id_column("control_id")
        .detected(true);
    db.install(&trigger).await.unwrap();
    let bus = db.bus();
    let detected: Arc<Mutex<Vec<MutationDetectedPayload>>> = Arc::default();
    let sink = Arc::clone(&detected);
    soiree::bind_listener(
        soiree::workflow::mutation_detected_topic(),
        move |_ctx, payload: MutationDetectedPayload| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(payload);
                Ok(())
            }
        },
    )
    .named("workflows")
    .register(&bus)
    .unwrap();
    bus.start().unwrap();
    db.exec("INSERT INTO controls (control_id, status) VALUES (7, 'draft')")
        .await
        .unwrap();
    db.exec("UPDATE controls SET status = 'approved'")
        .await
        .unwrap();
    assert!(eventually(LIMIT, || async { detected.lock().unwrap().len() >= 2 }).await);
    within(LIMIT, "idle", bus.wait_for_idle()).await;
    let detected = detected.lock().unwrap().clone();
    assert_eq!(detected.len(), 2);
    let update = detected.iter().find(|d| d.operation == "update").unwrap();
    assert_eq!(update.schema_type, "Control");
    assert_eq!(update.object_id, "7");
    assert_eq!(update.changed_fields, ["status"]);
    assert!(detected.iter().any(|d| d.operation == "create"));
    // The mutation events themselves are in the log too.
    let topics = db.logged_topics().await;
    assert_eq!(topics.iter().filter(|t| *t == "Control").count(), 2);
    within(LIMIT, "close", bus.close()).await.unwrap();
}

/// A row too large for the payload limit is written (the application's
/// write never fails over its event), and its event leaves the image out
/// and says so; the rows around it keep theirs.
async fn oversized_rows_scenario(db: Db) {
    use soiree_sql::triggers::{MAX_ROW_IMAGE_LEN, PROPERTY_ROW_OMITTED};

    db.exec("CREATE TABLE docs (id TEXT PRIMARY KEY, body TEXT)")
        .await
        .unwrap();
    db.install(&MutationTrigger::new("docs", "Doc"))
        .await
        .unwrap();
    // Varied text: a database may compress a repeated one.
    let big: String = (0..MAX_ROW_IMAGE_LEN / 8 + 1)
        .map(|n| format!("{:08x}", n.wrapping_mul(2_654_435_761_usize)))
        .collect();
    db.exec("INSERT INTO docs (id, body) VALUES ('d-0', 'small')")
        .await
        .unwrap();
    db.exec(&format!(
        "INSERT INTO docs (id, body) VALUES ('d-big', '{big}')"
    ))
    .await
    .unwrap();
    db.exec(&format!(
        "UPDATE docs SET body = '{big}x' WHERE id = 'd-big'"
    ))
    .await
    .unwrap();
    db.exec("DELETE FROM docs WHERE id = 'd-big'")
        .await
        .unwrap();
    db.exec("INSERT INTO docs (id, body) VALUES ('d-1', 'small')")
        .await
        .unwrap();

    let page = match &db {
        Db::Pg(store) => store.events(None, 100).await.unwrap(),
        Db::Lite(store) => store.events(None, 100).await.unwrap(),
    };
    let docs: Vec<_> = page.items.iter().filter(|e| e.topic == "Doc").collect();
    assert_eq!(docs.len(), 5, "one event per change: {docs:?}");
    for event in &docs {
        let payload: MutationPayload = serde_json::from_value(event.payload.clone()).unwrap();
        let omitted = event.properties.get(PROPERTY_ROW_OMITTED) == Some(&json!(true));
        assert!(event.id().is_some(), "every event has its id");
        let json_len = serde_json::to_string(&event.payload).unwrap().len();
        assert!(json_len <= soiree::limits::MAX_PAYLOAD_LEN, "{json_len}");
        if payload.entity_id == "d-big" {
            assert!(
                omitted,
                "{:?} of the big row says its image was left out",
                payload.operation
            );
            assert_eq!((payload.before, payload.after), (None, None));
        } else {
            assert!(!omitted);
            assert_eq!(payload.after.unwrap()["body"], "small");
        }
    }
}

/// A multi-row statement writes one event per row, in the order of its
/// rows, with the payload a single-row statement would have (a null
/// column is no changed field), and a fresh event id each: the ids of a
/// later statement sort after
/// those of an earlier one (time first, as the bus's own ULIDs are made),
/// so the log's index on `event_id` grows at its end.
async fn row_order_and_ids_scenario(db: Db) {
    db.exec("CREATE TABLE ledger (id BIGINT PRIMARY KEY, memo TEXT, amount BIGINT NOT NULL)")
        .await
        .unwrap();
    db.install(&MutationTrigger::new("ledger", "Ledger"))
        .await
        .unwrap();
    let memo = |n: i64| {
        if n % 2 == 0 {
            json!(null)
        } else {
            json!(format!("m{n}"))
        }
    };
    let values: Vec<String> = (0..50)
        .map(|n| match memo(n) {
            serde_json::Value::String(m) => format!("({n}, '{m}', {n})"),
            _ => format!("({n}, NULL, {n})"),
        })
        .collect();
    let statements = [
        format!(
            "INSERT INTO ledger (id, memo, amount) VALUES {}",
            values.join(", ")
        ),
        "UPDATE ledger SET amount = amount + 1 WHERE id < 10".to_owned(),
        "DELETE FROM ledger WHERE id >= 40".to_owned(),
    ];
    for statement in &statements {
        db.exec(statement).await.unwrap();
        // Another millisecond for the next statement's ids.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }

    let page = match &db {
        Db::Pg(store) => store.events(None, 1000).await.unwrap(),
        Db::Lite(store) => store.events(None, 1000).await.unwrap(),
    };
    let events: Vec<_> = page.items.iter().filter(|e| e.topic == "Ledger").collect();
    assert_eq!(events.len(), 70, "one event per row");
    let payloads: Vec<MutationPayload> = events
        .iter()
        .map(|e| serde_json::from_value(e.payload.clone()).unwrap())
        .collect();
    for (n, p) in (0_i64..).zip(&payloads[..50]) {
        assert_eq!(p.operation, Operation::Create);
        assert_eq!(p.entity_id, n.to_string(), "row order");
        assert_eq!(
            p.after,
            Some(json!({ "amount": n, "id": n, "memo": memo(n) }))
        );
        let changed: &[&str] = if n % 2 == 0 {
            &["amount", "id"]
        } else {
            &["amount", "id", "memo"]
        };
        assert_eq!(p.changed_fields, changed);
        assert_eq!((p.before.as_ref(), p.actor_id.as_ref()), (None, None));
    }
    for (n, p) in (0_i64..).zip(&payloads[50..60]) {
        assert_eq!(p.operation, Operation::UpdateOne);
        assert_eq!(p.entity_id, n.to_string(), "row order");
        assert_eq!(p.changed_fields, ["amount"]);
        assert_eq!(p.before.as_ref().unwrap()["amount"], n);
        assert_eq!(p.after.as_ref().unwrap()["amount"], n + 1);
    }
    for (n, p) in (40_i64..).zip(&payloads[60..]) {
        assert_eq!(p.operation, Operation::DeleteOne);
        assert_eq!(p.entity_id, n.to_string(), "row order");
        assert!(p.changed_fields.is_empty());
        assert_eq!(
            p.before,
            Some(json!({ "amount": n, "id": n, "memo": memo(n) }))
        );
        assert_eq!(p.after, None);
    }

    let ids: Vec<String> = events.iter().map(|e| e.id().unwrap().to_owned()).collect();
    for id in &ids {
        match &db {
            Db::Pg(_) => {
                assert_eq!(id.len(), 36, "a UUID: {id}");
                assert_eq!(&id[14..15], "7", "a UUIDv7: {id}");
                assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
            }
            Db::Lite(_) => {
                assert_eq!(id.len(), 32, "{id}");
                assert!(
                    id.chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                );
            }
        }
    }
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "every event its own id");
    let (created, updated, deleted) = (&ids[..50], &ids[50..60], &ids[60..]);
    assert!(created.iter().max() < updated.iter().min(), "{ids:?}");
    assert!(updated.iter().max() < deleted.iter().min(), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_write_rows_in_order_with_time_ordered_ids_on_postgres() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "row_order").build().await.unwrap();
    row_order_and_ids_scenario(Db::Pg(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_write_rows_in_order_with_time_ordered_ids_on_sqlite() {
    let dir = TempDir::new();
    let store = sqlite_builder(&dir.db(), "row_order")
        .build()
        .await
        .unwrap();
    row_order_and_ids_scenario(Db::Lite(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_leave_out_oversized_row_images_on_postgres() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "oversized").build().await.unwrap();
    oversized_rows_scenario(Db::Pg(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_leave_out_oversized_row_images_on_sqlite() {
    let dir = TempDir::new();
    let store = sqlite_builder(&dir.db(), "oversized")
        .build()
        .await
        .unwrap();
    oversized_rows_scenario(Db::Lite(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_stages_in_the_transaction_on_postgres() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "record").build().await.unwrap();
    record_scenario(Db::Pg(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_stages_in_the_transaction_on_sqlite() {
    let dir = TempDir::new();
    let store = sqlite_builder(&dir.db(), "record").build().await.unwrap();
    record_scenario(Db::Lite(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_capture_rows_and_bulk_statements_on_postgres() {
    let server = pg_or_skip!();
    let store = pg_builder(&server, "triggers").build().await.unwrap();
    trigger_scenario(Db::Pg(store.clone())).await;
    detected_scenario(Db::Pg(store.clone())).await;

    // The actor comes from the transaction's `soiree.actor_id` setting.
    let db = Db::Pg(store.clone());
    db.exec("CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT)")
        .await
        .unwrap();
    db.install(&MutationTrigger::new("notes", "Note").table_schema("public"))
        .await
        .unwrap();
    let bus = db.bus();
    let seen = listen(&Mutations::new(bus.clone()), "audit", "Note");
    bus.start().unwrap();
    let mut tx = store.begin().await.unwrap();
    sqlx::query("SELECT set_config('soiree.actor_id', 'user-7', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO notes (id, body) VALUES (1, 'hello')")
        .execute(&mut *tx)
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    settle(&bus, &seen, 1).await;
    let note = seen.lock().unwrap()[0].clone();
    assert_eq!(note.actor_id.as_deref(), Some("user-7"));
    assert_eq!(note.entity_id, "1");
    within(LIMIT, "close", bus.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_capture_rows_and_bulk_statements_on_sqlite() {
    let dir = TempDir::new();
    let store = sqlite_builder(&dir.db(), "triggers").build().await.unwrap();
    trigger_scenario(Db::Lite(store.clone())).await;
    detected_scenario(Db::Lite(store)).await;
}
