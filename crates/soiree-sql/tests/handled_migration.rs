//! Upgrading a database whose handler dedup had no group: every row is
//! kept, and given to the only group that consumed anything, or else to the
//! default group `soiree`.

mod support;

use soiree::{EventStore, HandlerDedup};

/// Legacy dedup rows: (event id, handler id).
const LEGACY: [(&str, &str); 3] = [("e1", "mailer"), ("e1", "audit"), ("e2", "mailer")];

/// Asks `store` whether each legacy row counts for it.
async fn answers(store: &dyn EventStore) -> Vec<bool> {
    let dedup: &dyn HandlerDedup = store.dedup().expect("the store has dedup");
    let mut answers = Vec::new();
    for (event, handler) in LEGACY {
        answers.push(dedup.handler_succeeded(event, handler).await.unwrap());
    }
    answers
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    use support::{TempDir, sqlite_builder};

    /// The migrations before dedup had a group.
    const BEFORE: i64 = 5;

    /// A database at the schema before the change, with `cursors`
    /// (group, claimed id) and the legacy dedup rows.
    async fn legacy_database(path: &std::path::Path, cursors: &[(&str, i64)]) {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        let all = sqlx::migrate!("migrations/sqlite");
        let mut old = sqlx::migrate::Migrator::with_migrations(
            all.iter().filter(|m| m.version < BEFORE).cloned().collect(),
        );
        old.dangerous_set_table_name(soiree_sql::MIGRATIONS_TABLE);
        old.run(&pool).await.unwrap();
        for (group, claimed) in cursors {
            sqlx::query("INSERT INTO soiree_cursors (group_name, claimed_id) VALUES (?1, ?2)")
                .bind(group)
                .bind(claimed)
                .execute(&pool)
                .await
                .unwrap();
        }
        for (event, handler) in LEGACY {
            sqlx::query("INSERT INTO soiree_handled (event_id, handler_id) VALUES (?1, ?2)")
                .bind(event)
                .bind(handler)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    }

    async fn store(path: &std::path::Path, group: &str) -> soiree_sql::SqliteStore {
        sqlite_builder(path, group)
            .group(group)
            .build()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn legacy_rows_go_to_the_only_group_that_consumed() {
        let dir = TempDir::new();
        let db = dir.db();
        // `soiree` is a producer's cursor that never moved.
        legacy_database(&db, &[("billing", 7), ("soiree", 0)]).await;
        let billing = store(&db, "billing").await;
        let default = store(&db, "soiree").await;
        assert_eq!(answers(&billing).await, [true, true, true]);
        assert_eq!(answers(&default).await, [false, false, false]);
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM soiree_handled")
            .fetch_one(billing.pool())
            .await
            .unwrap();
        assert_eq!(rows, LEGACY.len() as i64, "the migration lost rows");
    }

    #[tokio::test]
    async fn legacy_rows_go_to_the_default_group_when_several_consumed() {
        let dir = TempDir::new();
        let db = dir.db();
        legacy_database(&db, &[("billing", 7), ("audit", 3)]).await;
        let billing = store(&db, "billing").await;
        let default = store(&db, "soiree").await;
        assert_eq!(answers(&default).await, [true, true, true]);
        assert_eq!(answers(&billing).await, [false, false, false]);
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use support::{PostgresServer, fresh_schema, pg_builder_in};

    /// The migrations before dedup had a group.
    const BEFORE: i64 = 6;

    async fn legacy_database(server: &PostgresServer, schema: &str, cursors: &[(&str, i64)]) {
        let connect: PgConnectOptions = server.url().parse().unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(connect.options([("search_path", schema)]))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&pool)
            .await
            .unwrap();
        let all = sqlx::migrate!("migrations/postgres");
        let mut old = sqlx::migrate::Migrator::with_migrations(
            all.iter().filter(|m| m.version < BEFORE).cloned().collect(),
        );
        old.dangerous_set_table_name(format!("\"{schema}\".{}", soiree_sql::MIGRATIONS_TABLE));
        old.run(&pool).await.unwrap();
        for (group, claimed) in cursors {
            sqlx::query("INSERT INTO soiree_cursors (group_name, claimed_id) VALUES ($1, $2)")
                .bind(group)
                .bind(claimed)
                .execute(&pool)
                .await
                .unwrap();
        }
        for (event, handler) in LEGACY {
            sqlx::query("INSERT INTO soiree_handled (event_id, handler_id) VALUES ($1, $2)")
                .bind(event)
                .bind(handler)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    }

    async fn store(
        server: &PostgresServer,
        schema: &str,
        group: &str,
    ) -> soiree_sql::PostgresStore {
        pg_builder_in(server, schema, group)
            .group(group)
            .build()
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn legacy_rows_go_to_the_only_group_that_consumed() {
        let server = pg_or_skip!();
        let schema = fresh_schema();
        legacy_database(&server, &schema, &[("billing", 7), ("soiree", 0)]).await;
        let billing = store(&server, &schema, "billing").await;
        let default = store(&server, &schema, "soiree").await;
        assert_eq!(answers(&billing).await, [true, true, true]);
        assert_eq!(answers(&default).await, [false, false, false]);
        // The key is the new one, on a valid index, and no row was lost.
        let (rows, key): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT (SELECT count(*) FROM \"{schema}\".soiree_handled), \
                    (SELECT pg_get_indexdef(indexrelid) FROM pg_index \
                     WHERE indrelid = '\"{schema}\".soiree_handled'::regclass \
                       AND indisprimary AND indisvalid)"
        )))
        .fetch_one(billing.pool())
        .await
        .unwrap();
        assert_eq!(rows, LEGACY.len() as i64, "the migration lost rows");
        assert!(
            key.ends_with("(event_id, group_name, handler_id)"),
            "the primary key is {key}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn legacy_rows_go_to_the_default_group_when_several_consumed() {
        let server = pg_or_skip!();
        let schema = fresh_schema();
        legacy_database(&server, &schema, &[("billing", 7), ("audit", 3)]).await;
        let billing = store(&server, &schema, "billing").await;
        let default = store(&server, &schema, "soiree").await;
        assert_eq!(answers(&default).await, [true, true, true]);
        assert_eq!(answers(&billing).await, [false, false, false]);
    }
}

/// Stores started together on a database that needs the migrations: one
/// migrates, the others wait, and all of them start (the concurrent index
/// build of migration 0007 must not deadlock with the waiters).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_started_together_all_migrate() {
    use support::{fresh_schema, pg_builder_in};
    let server = pg_or_skip!();
    let schema = fresh_schema();
    let build = |name: &'static str| pg_builder_in(&server, &schema, name).build();
    let (a, b, c) = tokio::join!(build("a"), build("b"), build("c"));
    for (name, built) in [("a", a), ("b", b), ("c", c)] {
        if let Err(err) = built {
            panic!("store {name} did not start: {err}");
        }
    }
}
