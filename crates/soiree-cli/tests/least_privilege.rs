//! Inspection is read-only, and works with the least privileges the
//! README states: a PostgreSQL role with SELECT only, a Redis ACL user with
//! read commands only, a SQLite file opened read-only. Repairs with those
//! privileges fail naming what they lack; an unknown group, prefix or
//! schema is an error naming what exists, and creates nothing.
//!
//! Runs the built `soiree` binary against throwaway servers (skipped when a
//! server cannot start, except under `CI=true`). Every wait is bounded.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use soiree::{EventBus, EventStore};
use soiree_test::postgres::PostgresServer;
use soiree_test::redis::RedisServer;
use support::{Output, temp_dir};

const DEADLINE: Duration = Duration::from_secs(60);

/// The inspection commands: each must succeed with read privileges.
const INSPECTIONS: [&[&str]; 7] = [
    &["stats", "--json", "--interval", "0s"],
    &["events", "--json"],
    &["dead-letters", "list", "--json"],
    &["pending", "--json"],
    &["consumers", "--json"],
    &["leases", "list", "--json"],
    &["limits", "list", "--json"],
];

/// Runs `soiree --store URL ARGS` (off the async runtime's threads).
async fn soiree(url: &str, args: &[&str]) -> Output {
    let mut all = vec!["--store".to_owned(), url.to_owned()];
    all.extend(args.iter().map(|arg| (*arg).to_owned()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        support::soiree_within(&args, DEADLINE)
    })
    .await
    .expect("the runner thread")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Emits a good event and one whose listener fails (a dead letter), waits
/// until both are handled, and closes the bus; then takes a leader lease
/// and a limit slot, for the views to list.
async fn produce(store: Arc<dyn EventStore>) {
    let ttl = Duration::from_secs(600);
    let leases = store.leases().expect("the store has leases");
    tokio::time::timeout(DEADLINE, leases.acquire("nightly-report", "host-a", ttl))
        .await
        .expect("in time")
        .expect("acquired")
        .expect("free");
    let limits = store.limits().expect("the store shares limits");
    let taken = tokio::time::timeout(DEADLINE, limits.acquire_slot("mailer", 1, "run-1", ttl))
        .await
        .expect("in time")
        .expect("taken");
    assert!(taken);
    let bus = EventBus::builder()
        .shared_store(store)
        .build()
        .expect("a bus");
    bus.on_named("welcome", "user.created", |_ctx| async { Ok(()) })
        .unwrap();
    let failures = Arc::new(AtomicUsize::new(0));
    let count = failures.clone();
    bus.on_named("mailer", "invoice.sent", move |_ctx| {
        count.fetch_add(1, Ordering::SeqCst);
        async { Err("smtp down".into()) }
    })
    .unwrap();
    bus.start().unwrap();
    for (topic, payload) in [
        ("user.created", json!({"name": "ada"})),
        ("invoice.sent", json!({"invoice": 7})),
    ] {
        bus.emit(topic, payload).persisted().await.expect("emitted");
    }
    let start = Instant::now();
    while failures.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "no failure ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::timeout(Duration::from_secs(20), bus.wait_for_idle())
        .await
        .expect("the bus went idle");
    tokio::time::timeout(Duration::from_secs(20), bus.close())
        .await
        .expect("the bus closed")
        .expect("closed once");
}

/// Every inspection succeeds; the dead letter is listed.
async fn inspections_succeed(url: &str, opts: &[&str]) {
    for command in INSPECTIONS {
        let args: Vec<&str> = opts.iter().chain(command.iter()).copied().collect();
        let out = soiree(url, &args).await;
        assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
    }
    let mut args = opts.to_vec();
    args.extend(["dead-letters", "list", "--json"]);
    let letters = soiree(url, &args).await.json();
    assert_eq!(
        letters["items"].as_array().map(Vec::len),
        Some(1),
        "{letters}"
    );
    let mut args = opts.to_vec();
    args.extend(["leases", "list", "--json"]);
    let leases = soiree(url, &args).await.json();
    assert_eq!(leases["items"][0]["holder"], "host-a", "{leases}");
    assert_eq!(leases["items"][0]["held"], true, "{leases}");
    let mut args = opts.to_vec();
    args.extend(["limits", "list", "--json"]);
    let slots = soiree(url, &args).await.json();
    assert_eq!(slots["items"][0]["key"], "mailer", "{slots}");
}

/// A repair (replay and purge) fails with exit 1 and a message naming the
/// operation and what it lacks, each message containing `lacking`.
async fn repairs_fail(url: &str, opts: &[&str], lacking: &[&str]) {
    let mut args = opts.to_vec();
    args.extend(["dead-letters", "list", "--json"]);
    let letters = soiree(url, &args).await.json();
    let id = letters["items"][0]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let event_id = letters["items"][0]["event_id"]
        .as_str()
        .expect("an event id")
        .to_owned();
    for (operation, command) in [
        (
            "replay needs",
            vec!["dead-letters", "replay", "--id", &id, "--yes"],
        ),
        ("replay needs", vec!["replay", &event_id, "--yes"]),
        (
            "purge dead letters needs",
            vec!["dead-letters", "purge", "--all", "--yes"],
        ),
    ] {
        let args: Vec<&str> = opts.iter().copied().chain(command).collect();
        let out = soiree(url, &args).await;
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert!(out.stderr.contains(operation), "{args:?}: {out:?}");
        for text in lacking {
            assert!(
                out.stderr.contains(text),
                "{args:?} lacks {text:?}: {out:?}"
            );
        }
        assert!(!out.stderr.contains("at line"), "{out:?}");
    }
    // Nothing was changed.
    let letters = soiree(url, &args).await.json();
    assert_eq!(
        letters["items"].as_array().map(Vec::len),
        Some(1),
        "{letters}"
    );
}

/// Replaying the dead letter's event by id, the dead letter itself, and
/// purging the dead letters all succeed.
async fn repairs_succeed(url: &str, opts: &[&str]) {
    let mut list = opts.to_vec();
    list.extend(["dead-letters", "list", "--json"]);
    let letters = soiree(url, &list).await.json();
    let id = letters["items"][0]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let event_id = letters["items"][0]["event_id"]
        .as_str()
        .expect("an event id")
        .to_owned();
    for command in [
        vec!["replay", &event_id, "--yes"],
        vec!["dead-letters", "replay", "--id", &id, "--yes"],
        vec!["dead-letters", "purge", "--all", "--yes"],
    ] {
        let args: Vec<&str> = opts.iter().copied().chain(command).collect();
        let out = soiree(url, &args).await;
        assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
    }
}

/// `--group typo` is "not found" (exit 3) naming the groups that exist.
async fn unknown_group_is_named(url: &str, opts: &[&str], groups: &str) {
    for command in INSPECTIONS {
        let args: Vec<&str> = opts
            .iter()
            .copied()
            .chain(["--group", "typo"])
            .chain(command.iter().copied())
            .collect();
        let out = soiree(url, &args).await;
        assert_eq!(out.code, Some(3), "{args:?}: {out:?}");
        assert!(
            out.stderr
                .contains(&format!("no consumer group \"typo\"; groups: {groups}")),
            "{args:?}: {out:?}"
        );
    }
}

#[test]
fn sqlite_inspection_is_read_only_and_works_on_a_read_only_file() {
    let dir = temp_dir("least-privilege");
    let path = dir.join("events.db");
    runtime().block_on(async {
        let store = soiree_sql::SqliteStore::open(&path)
            .await
            .expect("a sqlite store");
        produce(Arc::new(store)).await;
    });
    let url = format!("sqlite:{}", path.display());
    let read_only_url = format!("{url}?mode=ro");
    runtime().block_on(async {
        // A file only readable (a root test process may still write it:
        // `mode=ro` below is what makes the repairs fail everywhere).
        let mut permissions = std::fs::metadata(&path).unwrap().permissions();
        permissions.set_readonly(true);
        std::fs::set_permissions(&path, permissions).unwrap();
        inspections_succeed(&url, &[]).await;
        inspections_succeed(&read_only_url, &[]).await;
        repairs_fail(&read_only_url, &[], &["read-only"]).await;
        unknown_group_is_named(&url, &[], "\"soiree\"").await;
    });
    // No cursor was created for the unknown group.
    let groups = runtime().block_on(async {
        let pool = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .read_only(true),
        )
        .await
        .unwrap();
        sqlx::query_scalar::<_, String>("SELECT group_name FROM soiree_cursors")
            .fetch_all(&pool)
            .await
            .unwrap()
    });
    assert_eq!(groups, ["soiree"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sqlite_file_that_is_not_a_store_is_left_untouched() {
    let dir = temp_dir("not-a-store");
    let path = dir.join("orders.db");
    runtime().block_on(async {
        let pool = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::query("CREATE TABLE orders (id integer PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let before = std::fs::read(&path).unwrap();
    let files_before = std::fs::read_dir(&dir).unwrap().count();
    let url = format!("sqlite:{}", path.display());
    runtime().block_on(async {
        for command in INSPECTIONS {
            let out = soiree(&url, command).await;
            assert_eq!(out.code, Some(3), "{command:?}: {out:?}");
            assert!(out.stderr.contains("holds no soiree store"), "{out:?}");
        }
    });
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file changed");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        files_before,
        "files appeared beside it (-wal, -shm)"
    );
    // A bare path suggests the sqlite: URL.
    let out = support::soiree_within(&["--store", "orders.db", "stats"], DEADLINE);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("sqlite:orders.db"), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn postgres_select_only_role_inspects_and_cannot_repair() {
    let Some(server) = PostgresServer::start_or_skip() else {
        return;
    };
    let admin = server.url();
    runtime().block_on(async {
        let store = soiree_sql::PostgresStore::connect(&admin)
            .await
            .expect("a postgres store");
        let pool = store.pool().clone();
        produce(Arc::new(store)).await;
        for statement in [
            "CREATE ROLE inspector LOGIN",
            "GRANT USAGE ON SCHEMA public TO inspector",
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO inspector",
        ] {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        let url = format!("postgres://inspector@127.0.0.1:{}/postgres", server.port());
        inspections_succeed(&url, &[]).await;
        repairs_fail(
            &url,
            &[],
            &["role \"inspector\" lacks", "on public.soiree_"],
        )
        .await;
        unknown_group_is_named(&url, &[], "\"soiree\"").await;
        // An unknown schema names the schemas that hold a store.
        let out = soiree(&url, &["--schema", "nope", "stats"]).await;
        assert_eq!(out.code, Some(3), "{out:?}");
        assert!(
            out.stderr.contains("schemas with a store: \"public\""),
            "{out:?}"
        );
        // Inspection as the owner creates nothing either.
        let out = soiree(&admin, &["--group", "typo", "stats"]).await;
        assert_eq!(out.code, Some(3), "{out:?}");
        let groups: Vec<String> = sqlx::query_scalar("SELECT group_name FROM soiree_cursors")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(groups, ["soiree"]);
        let schemas: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'nope'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(schemas, 0);
        // The grants the README states for repairs are enough.
        sqlx::query("GRANT INSERT ON soiree_retries TO inspector")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("GRANT DELETE ON soiree_dead_letters TO inspector")
            .execute(&pool)
            .await
            .unwrap();
        repairs_succeed(&url, &[]).await;
    });
}

#[test]
fn redis_read_acl_user_inspects_and_cannot_repair() {
    let Some(server) = RedisServer::start_or_skip() else {
        return;
    };
    runtime().block_on(async {
        let store = soiree_redis::RedisStore::builder(&server.url())
            .prefix("shop")
            .build()
            .await
            .expect("a redis store");
        produce(Arc::new(store)).await;
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let () = redis::cmd("ACL")
            .arg(&[
                "SETUSER",
                "inspector",
                "on",
                ">s3cret-pw",
                "~{shop}:*",
                "+@read",
            ])
            .query_async(&mut conn)
            .await
            .unwrap();
        let url = format!("redis://inspector:s3cret-pw@127.0.0.1:{}/0", server.port());
        let opts = ["--prefix", "shop"];
        inspections_succeed(&url, &opts).await;
        repairs_fail(
            &url,
            &opts,
            &["redis refused: this user has no permissions to run the '"],
        )
        .await;
        unknown_group_is_named(&url, &opts, "\"soiree\"").await;
        // An unknown prefix names the prefixes that hold a store, and
        // creates no stream.
        let admin = server.url();
        let out = soiree(&admin, &["--prefix", "typo", "stats"]).await;
        assert_eq!(out.code, Some(3), "{out:?}");
        assert!(
            out.stderr.contains(
                "no soiree store under prefix \"typo\": its events stream does not exist \
                 ({typo}:events); prefixes with a store: \"shop\""
            ),
            "{out:?}"
        );
        // The ACL user may not read other prefixes: it is told so.
        let out = soiree(&url, &["--prefix", "typo", "stats"]).await;
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stderr.contains("(ACL: ~{typo}:* +@read)"), "{out:?}");
        assert!(!out.stderr.contains("s3cret-pw"), "{out:?}");
        let out = soiree(&admin, &["stats"]).await;
        assert_eq!(
            out.code,
            Some(3),
            "a store under the default prefix: {out:?}"
        );
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            keys.iter().all(|key| key.starts_with("{shop}:")),
            "keys created by inspection: {keys:?}"
        );
        let groups: redis::Value = redis::cmd("XINFO")
            .arg(&["GROUPS", "{shop}:events"])
            .query_async(&mut conn)
            .await
            .unwrap();
        let groups: redis::streams::StreamInfoGroupsReply =
            redis::from_redis_value(groups).unwrap();
        assert_eq!(groups.groups.len(), 1);
        // The commands the README states for repairs are enough.
        let () = redis::cmd("ACL")
            .arg(&["SETUSER", "inspector", "+xadd", "+xdel"])
            .query_async(&mut conn)
            .await
            .unwrap();
        repairs_succeed(&url, &opts).await;
    });
}
