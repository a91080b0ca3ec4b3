//! Runs the built `soiree` binary against real stores: a throwaway Redis,
//! a SQLite file, a throwaway PostgreSQL. A bus in the test produces events
//! (one listener always fails: dead letters); the binary inspects and
//! repairs them. Every wait is bounded.
//!
//! A server that cannot start skips its test, except under `CI=true`,
//! where it fails (`start_or_skip`).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use soiree::{EventBus, EventStore};
use soiree_test::postgres::PostgresServer;
use soiree_test::redis::RedisServer;
use support::{Output, temp_dir};

/// Generous for a debug build on a loaded machine; a hang fails the test.
const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `soiree ARGS`, failing the test after [`DEADLINE`].
fn soiree(args: &[&str]) -> Output {
    support::soiree_within(args, DEADLINE)
}

/// `soiree` from async code (the bus keeps running meanwhile).
async fn run(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        soiree(&args)
    })
    .await
    .expect("the runner thread")
}

/// Polls `check` every 50 ms for up to 20 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A bus on `store`: `welcome` succeeds on `user.created`, `mailer` always
/// fails on `invoice.sent`. Returns the bus and the count of mailer runs.
async fn produce(store: Arc<dyn EventStore>) -> (EventBus, Arc<AtomicUsize>) {
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
        ("user.created", json!({"name": "bob"})),
        ("invoice.sent", json!({"invoice": 7})),
    ] {
        bus.emit(topic, payload).persisted().await.expect("emitted");
    }
    (bus, failures)
}

/// The operating commands against the store at `url` (with the store
/// options in `opts`), whose bus is `bus`.
async fn operate(url: &str, opts: &[&str], bus: &EventBus, failures: &AtomicUsize) {
    let with = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--store".to_owned(), url.to_owned()];
        all.extend(opts.iter().map(|opt| (*opt).to_owned()));
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        all
    };
    let cli = async |args: &[&str]| {
        let args = with(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args).await
    };

    eventually("the failing listener to run", async || {
        failures.load(Ordering::SeqCst) >= 1
    })
    .await;
    eventually("one dead letter", async || {
        let stats = cli(&["stats", "--json", "--interval", "0s"]).await.json();
        stats["dead_letters"] == 1 && stats["backlog"] == 0
    })
    .await;

    let stats = cli(&["stats", "--json", "--interval", "200ms"])
        .await
        .json();
    assert_eq!(stats["events"], 3, "{stats}");
    assert_eq!(stats["dead_letters"], 1, "{stats}");
    assert!(stats["rates"]["emitted_per_sec"].is_number(), "{stats}");
    assert!(stats["store"]["kind"].is_string(), "{stats}");

    let users = cli(&["events", "--json", "--topic", "user.*"]).await.json();
    let items = users["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{users}");
    assert!(items.iter().all(|event| event["topic"] == "user.created"));
    assert_eq!(items[0]["payload"], json!({"name": "ada"}));
    assert_eq!(users["next"], Value::Null);

    let human = cli(&["events", "--topic", "user.*"]).await;
    assert_eq!(human.code, Some(0), "{human:?}");
    assert!(human.stdout.contains("user.created"), "{human:?}");

    let letters = cli(&["dead-letters", "list", "--json"]).await.json();
    let letter = &letters["items"][0];
    assert_eq!(letters["items"].as_array().unwrap().len(), 1, "{letters}");
    assert_eq!(letter["topic"], "invoice.sent", "{letters}");
    assert!(
        letter["error"].as_str().unwrap().contains("smtp down"),
        "{letters}"
    );
    let id = letter["id"].as_str().unwrap().to_owned();
    let event_id = letter["event_id"].as_str().unwrap().to_owned();

    let shown = cli(&["dead-letters", "show", &id, "--json"]).await.json();
    assert_eq!(shown["event"]["payload"], json!({"invoice": 7}));

    // Not confirmed: stdin is not a terminal.
    let refused = cli(&["replay", &event_id]).await;
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(refused.stderr.contains("--yes"), "{refused:?}");
    let refused = cli(&["dead-letters", "purge", "--all"]).await;
    assert_eq!(refused.code, Some(2), "{refused:?}");
    let refused = cli(&["dead-letters", "purge", "--yes"]).await;
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(
        refused.stderr.contains("no dead letters selected"),
        "{refused:?}"
    );

    // Replay the dead letter: the event runs again (and fails again).
    let attempts = |results: &Value| {
        results["items"].as_array().map_or(0, |items| {
            items.iter().filter(|r| r["listener"] == "mailer").count()
        })
    };
    let before = attempts(
        &cli(&["results", "--json", "--event-id", &event_id])
            .await
            .json(),
    );
    assert!(before >= 1);
    let replayed = cli(&["dead-letters", "replay", "--id", &id, "--yes", "--json"])
        .await
        .json();
    assert_eq!(replayed["done"], 1, "{replayed}");
    eventually("the replayed event to run", async || {
        failures.load(Ordering::SeqCst) >= 2
    })
    .await;
    eventually("the replay's result in the store", async || {
        let results = cli(&["results", "--json", "--event-id", &event_id])
            .await
            .json();
        attempts(&results) > before
    })
    .await;
    eventually("the replayed event's new dead letter", async || {
        let letters = cli(&["dead-letters", "list", "--json", "--event-id", &event_id])
            .await
            .json();
        letters["items"]
            .as_array()
            .is_some_and(|items| items.len() == 1)
    })
    .await;

    // Replay by event id.
    let out = cli(&["replay", &event_id, "--yes"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    eventually("the event replayed by id to run", async || {
        failures.load(Ordering::SeqCst) >= 3
    })
    .await;
    bus.wait_for_idle().await;
    let missing = cli(&["replay", "no-such-event", "--yes"]).await;
    assert_eq!(missing.code, Some(3), "{missing:?}");

    // Purge everything.
    eventually("the dead letters to settle", async || {
        let stats = cli(&["stats", "--json", "--interval", "0s"]).await.json();
        stats["backlog"] == 0 && stats["dead_letters"].as_u64() >= Some(1)
    })
    .await;
    let purged = cli(&["dead-letters", "purge", "--all", "--yes", "--json"])
        .await
        .json();
    assert!(purged["done"].as_u64() >= Some(1), "{purged}");
    let stats = cli(&["stats", "--json", "--interval", "0s"]).await.json();
    assert_eq!(stats["dead_letters"], 0, "{stats}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn redis_store() {
    let Some(server) = RedisServer::start_or_skip() else {
        return;
    };
    runtime().block_on(async {
        let store = soiree_redis::RedisStore::builder(&server.url())
            .prefix("cli-test")
            .build()
            .await
            .expect("a redis store");
        let (bus, failures) = produce(Arc::new(store)).await;
        operate(&server.url(), &["--prefix", "cli-test"], &bus, &failures).await;
        bus.close().await.unwrap();
    });
}

#[test]
fn nats_store() {
    let Some(server) = soiree_test::nats::NatsServer::start_or_skip() else {
        return;
    };
    runtime().block_on(async {
        let store = soiree_nats::NatsStore::builder(&server.url())
            .prefix("cli-test")
            .build()
            .await
            .expect("a nats store");
        let (bus, failures) = produce(Arc::new(store)).await;
        operate(&server.url(), &["--prefix", "cli-test"], &bus, &failures).await;
        bus.close().await.unwrap();
    });
}

#[test]
fn a_missing_nats_stream_is_not_found_and_is_not_created() {
    let Some(server) = soiree_test::nats::NatsServer::start_or_skip() else {
        return;
    };
    let out = soiree(&["--store", &server.url(), "--prefix", "nobody", "stats"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("SOIREE_nobody_EVENTS"), "{out:?}");
    let again = soiree(&["--store", &server.url(), "--prefix", "nobody", "stats"]);
    assert_eq!(again.code, Some(3), "still missing: {again:?}");
}

#[test]
fn redis_unreachable_names_the_address_not_the_password() {
    // A port nobody listens on: bind one, then free it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    // rediss:// too: this build speaks TLS.
    for scheme in ["redis", "rediss"] {
        let url = format!("{scheme}://app:hunter2secret@127.0.0.1:{port}/0");
        let out = soiree(&["--store", &url, "stats"]);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stderr.contains(&format!("127.0.0.1:{port}")), "{out:?}");
        assert!(!out.stderr.contains("hunter2secret"), "{out:?}");
    }
}

#[test]
fn sqlite_store() {
    let dir = temp_dir("sqlite");
    let path = dir.join("events.db");
    runtime().block_on(async {
        let store = soiree_sql::SqliteStore::open(&path)
            .await
            .expect("a sqlite store");
        let (bus, failures) = produce(Arc::new(store)).await;
        let url = format!("sqlite://{}", path.display());
        operate(&url, &[], &bus, &failures).await;
        bus.close().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn postgres_store() {
    let Some(server) = PostgresServer::start_or_skip() else {
        return;
    };
    runtime().block_on(async {
        let store = soiree_sql::PostgresStore::connect(&server.url())
            .await
            .expect("a postgres store");
        let (bus, failures) = produce(Arc::new(store)).await;
        operate(&server.url(), &[], &bus, &failures).await;
        bus.close().await.unwrap();
    });
}

#[test]
fn postgres_unreachable_names_the_address_not_the_password() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("postgres://app:hunter2secret@127.0.0.1:{port}/db");
    let out = soiree(&["--store", &url, "events"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains(&format!("127.0.0.1:{port}")), "{out:?}");
    assert!(!out.stderr.contains("hunter2secret"), "{out:?}");
}

#[test]
fn bad_urls_are_usage_errors_naming_the_scheme() {
    let out = soiree(&["--store", "mysql://root:hunter2secret@db/app", "stats"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("\"mysql\""), "{out:?}");
    assert!(!out.stderr.contains("hunter2secret"), "{out:?}");

    let out = soiree(&["--store", "redis://:hunter2secret@[::1", "stats"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("redis"), "{out:?}");
    assert!(!out.stderr.contains("hunter2secret"), "{out:?}");

    let out = soiree(&["stats"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("--store"), "{out:?}");

    let out = soiree(&[
        "events",
        "--since",
        "last tuesday",
        "--store",
        "sqlite:x.db",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
}

#[test]
fn a_missing_sqlite_file_is_an_error_and_is_not_created() {
    let dir = temp_dir("missing");
    let path = dir.join("nope.db");
    let out = soiree(&["--store", &format!("sqlite:{}", path.display()), "stats"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("does not exist"), "{out:?}");
    assert!(!path.exists(), "the file was created");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_documents_the_exit_codes() {
    let out = soiree(&["--help"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    for text in ["Exit codes:", "dead-letters", "tail", "bench", "--store"] {
        assert!(out.stdout.contains(text), "{text:?} missing: {out:?}");
    }
}

#[test]
fn sqlite_replays_and_purges_are_audited() {
    let dir = temp_dir("audit");
    let path = dir.join("events.db");
    runtime().block_on(async {
        let store = soiree_sql::SqliteStore::open(&path)
            .await
            .expect("a sqlite store");
        let (bus, failures) = produce(Arc::new(store)).await;
        let url = format!("sqlite://{}", path.display());
        eventually("one dead letter", async || {
            let stats = run(&["--store", &url, "stats", "--json", "--interval", "0s"])
                .await
                .json();
            failures.load(Ordering::SeqCst) >= 1 && stats["dead_letters"] == 1
        })
        .await;
        let pid_of = |stderr: &str| -> Option<String> {
            let at = stderr.find(" pid=")? + 5;
            Some(stderr[at..].split(' ').next()?.to_owned())
        };

        // A dry run changes nothing and leaves no audit line.
        let dry = run(&[
            "--store",
            &url,
            "dead-letters",
            "replay",
            "--all",
            "--dry-run",
        ])
        .await;
        assert_eq!(dry.code, Some(0), "{dry:?}");
        assert!(
            dry.stdout
                .contains("dry run: would replay 1 dead letter; nothing was changed"),
            "{dry:?}"
        );
        assert!(!dry.stderr.contains("soiree::audit"), "{dry:?}");
        assert_eq!(failures.load(Ordering::SeqCst), 1, "nothing was replayed");

        let replayed = run(&[
            "--store",
            &url,
            "dead-letters",
            "replay",
            "--topic",
            "invoice.*",
            "--yes",
        ])
        .await;
        assert_eq!(replayed.code, Some(0), "{replayed:?}");
        let line = replayed.stderr.trim();
        assert_eq!(line.lines().count(), 1, "{replayed:?}");
        for text in [
            "soiree::audit",
            "action=\"replay\"",
            "selection=--topic \"invoice.*\"",
            "selected=1",
            "done=1",
            "user=",
            "host=",
        ] {
            assert!(line.contains(text), "{text:?} missing in {line}");
        }
        assert!(
            pid_of(line).is_some_and(|pid| pid.parse::<u32>().is_ok()),
            "{line}"
        );

        eventually("the replayed event's dead letter", async || {
            let stats = run(&["--store", &url, "stats", "--json", "--interval", "0s"])
                .await
                .json();
            failures.load(Ordering::SeqCst) >= 2 && stats["dead_letters"] == 1
        })
        .await;
        let purged = run(&["--store", &url, "dead-letters", "purge", "--all", "--yes"]).await;
        assert_eq!(purged.code, Some(0), "{purged:?}");
        for text in [
            "soiree::audit",
            "action=\"purge\"",
            "selection=--all",
            "done=1",
        ] {
            assert!(
                purged.stderr.contains(text),
                "{text:?} missing in {purged:?}"
            );
        }

        // A read leaves no audit line; RUST_LOG decides what is logged.
        let listed = run(&["--store", &url, "dead-letters", "list"]).await;
        assert!(!listed.stderr.contains("soiree::audit"), "{listed:?}");
        bus.close().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_patterns_cursors_and_listen_addresses_are_usage_errors() {
    let dir = temp_dir("usage");
    let path = dir.join("events.db");
    runtime().block_on(async {
        let store = soiree_sql::SqliteStore::open(&path)
            .await
            .expect("a sqlite store");
        let (bus, _failures) = produce(Arc::new(store)).await;
        bus.close().await.unwrap();
    });
    let url = format!("sqlite://{}", path.display());
    for (args, says) in [
        (&["events", "--topic", "order.[x"][..], "`[` are reserved"),
        (&["tail", "bad["], "`[` are reserved"),
        (
            &["dead-letters", "list", "--topic", "a..b"],
            "empty segment",
        ),
        (&["events", "--after", "abc"], "bad --after cursor \"abc\""),
        (&["results", "--after", "abc"], "bad --after cursor \"abc\""),
        (
            &["dead-letters", "list", "--after", "abc"],
            "bad --after cursor \"abc\"",
        ),
        (&["dashboard", "--listen", "localhost"], "HOST:PORT"),
        (
            &["dead-letters", "purge", "--all", "--limit", "0"],
            "--limit",
        ),
    ] {
        let mut all = vec!["--store", url.as_str()];
        all.extend_from_slice(args);
        let out = soiree(&all);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(says),
            "{args:?}: {says:?} missing in {out:?}"
        );
        assert_eq!(out.stdout, "", "{args:?}");
        // Said once, with no repeated prefix.
        assert_eq!(out.stderr.matches("error:").count(), 1, "{out:?}");
    }
    // An error quoting what was given (or stored) is escaped.
    let out = soiree(&["--store", &url, "event", "\x1b]0;pwned\x07\u{9b}2J"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("pwned"), "{out:?}");
    assert!(!out.stderr.contains(['\x1b', '\x07', '\u{9b}']), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
