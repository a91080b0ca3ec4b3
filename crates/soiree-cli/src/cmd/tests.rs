//! In-process tests of the commands against a `MemoryStore` queue: output
//! formats, JSON shapes, selections and confirmations.

use std::io::{Cursor, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use soiree::{
    ConsumerInfo, DeadLetter, DeadLetterSelection, EventBus, EventDetail, Inspect, MemoryStore,
    Page, PendingDelivery, Query, Record, StoreInfo, StoreStats, StoredEvent, StoredResult,
};

use super::{Console, execute};
use crate::error::Error;
use crate::opt::Opt;

/// A shared byte buffer the console writes to.
#[derive(Clone, Default)]
pub(super) struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    pub(super) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// What a command printed, and how it ended.
pub(super) struct Run {
    pub(super) result: Result<(), Error>,
    pub(super) out: String,
    pub(super) err: String,
}

impl Run {
    pub(super) fn ok(self) -> String {
        if let Err(err) = &self.result {
            panic!("command failed: {err} (stderr: {})", self.err);
        }
        self.out
    }

    pub(super) fn json(self) -> Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|err| panic!("{err}: {out}"))
    }

    pub(super) fn err(self) -> Error {
        match self.result {
            Ok(()) => panic!("command succeeded: {}", self.out),
            Err(err) => err,
        }
    }
}

/// Runs `soiree ARGS` on `store`; `answer` is typed on a terminal when
/// given, else stdin is not a terminal.
pub(super) async fn soiree(store: Arc<dyn Inspect>, args: &[&str], answer: Option<&str>) -> Run {
    let opt = Opt::try_parse_from(std::iter::once("soiree").chain(args.iter().copied()))
        .unwrap_or_else(|err| panic!("{args:?}: {err}"));
    let out = Buf::default();
    let err = Buf::default();
    let mut console = Console {
        out: Box::new(out.clone()),
        err: Box::new(err.clone()),
        input: Box::new(Cursor::new(answer.unwrap_or_default().as_bytes().to_vec())),
        interactive: answer.is_some(),
        progress: false,
    };
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        execute(
            opt.command,
            store,
            &mut console,
            tokio::time::sleep(Duration::from_secs(20)),
        ),
    )
    .await
    .expect("the command finishes");
    Run {
        result,
        out: out.text(),
        err: err.text(),
    }
}

/// A bus on a memory queue: `user.created` succeeds, `invoice.sent` always
/// fails (a dead letter each). Counts the runs of the failing listener.
pub(super) struct Fixture {
    pub(super) store: Arc<MemoryStore>,
    pub(super) bus: EventBus,
    pub(super) failures: Arc<AtomicUsize>,
}

impl Fixture {
    pub(super) async fn new() -> Self {
        let store = Arc::new(MemoryStore::queue());
        let bus = EventBus::builder()
            .shared_store(store.clone())
            .build()
            .unwrap();
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
        Self {
            store,
            bus,
            failures,
        }
    }

    pub(super) async fn emit(&self, topic: &str, payload: Value) {
        self.bus.emit(topic, payload).persisted().await.unwrap();
        self.bus.wait_for_idle().await;
    }

    pub(super) fn inspect(&self) -> Arc<dyn Inspect> {
        self.store.clone()
    }

    pub(super) async fn stats(&self) -> StoreStats {
        self.store.stats().await.unwrap()
    }

    /// Waits (bounded) until the failing listener ran `n` times in all.
    pub(super) async fn failures_reach(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while self.failures.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the listener ran {:?} times", self.failures));
        self.bus.wait_for_idle().await;
    }

    pub(super) async fn standard() -> Self {
        let fixture = Self::new().await;
        fixture.emit("user.created", json!({"name": "ada"})).await;
        fixture.emit("user.created", json!({"name": "bob"})).await;
        fixture.emit("invoice.sent", json!({"invoice": 7})).await;
        fixture.failures_reach(1).await;
        fixture
    }
}

#[tokio::test]
async fn events_list_as_json_pages() {
    let fx = Fixture::standard().await;
    let all = soiree(fx.inspect(), &["events", "--json"], None)
        .await
        .json();
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(all["next"], Value::Null);
    let first = &items[0];
    for key in ["id", "at", "topic", "event_id", "payload", "properties"] {
        assert!(first.get(key).is_some(), "{key} missing in {first}");
    }
    assert_eq!(first["topic"], "user.created");
    assert_eq!(first["payload"], json!({"name": "ada"}));
    assert!(first["at"].as_str().unwrap().ends_with('Z'), "{first}");

    let users = soiree(
        fx.inspect(),
        &["events", "--json", "--topic", "user.*"],
        None,
    )
    .await
    .json();
    assert_eq!(users["items"].as_array().unwrap().len(), 2);

    let event_id = items[2]["event_id"].as_str().unwrap();
    let one = soiree(
        fx.inspect(),
        &["events", "--json", "--event-id", event_id],
        None,
    )
    .await
    .json();
    assert_eq!(one["items"][0]["topic"], "invoice.sent");

    // Paging: one at a time, newest first.
    let page = soiree(
        fx.inspect(),
        &["events", "--json", "--limit", "1", "--newest"],
        None,
    )
    .await
    .json();
    assert_eq!(page["items"][0]["topic"], "invoice.sent");
    let next = page["next"].as_str().expect("a next cursor").to_owned();
    let page = soiree(
        fx.inspect(),
        &[
            "events", "--json", "--limit", "1", "--newest", "--after", &next,
        ],
        None,
    )
    .await
    .json();
    assert_eq!(page["items"][0]["payload"], json!({"name": "bob"}));

    // Time range: everything is younger than an hour, nothing older.
    let recent = soiree(fx.inspect(), &["events", "--json", "--since", "1h"], None)
        .await
        .json();
    assert_eq!(recent["items"].as_array().unwrap().len(), 3);
    let old = soiree(fx.inspect(), &["events", "--json", "--until", "1h"], None)
        .await
        .json();
    assert!(old["items"].as_array().unwrap().is_empty());
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn events_print_a_table_and_the_next_cursor() {
    let fx = Fixture::standard().await;
    let out = soiree(fx.inspect(), &["events", "--limit", "2"], None)
        .await
        .ok();
    for text in [
        "ID",
        "TOPIC",
        "EVENT ID",
        "PAYLOAD",
        "user.created",
        r#"{"name":"ada"}"#,
    ] {
        assert!(out.contains(text), "{text:?} missing in\n{out}");
    }
    assert!(!out.contains("invoice.sent"), "{out}");
    assert!(out.contains("more follow: pass --after 1"), "{out}");

    let none = soiree(fx.inspect(), &["events", "--topic", "nothing.here"], None)
        .await
        .ok();
    assert_eq!(none.trim(), "no events");
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn results_show_outcomes() {
    let fx = Fixture::standard().await;
    let results = soiree(fx.inspect(), &["results", "--json"], None)
        .await
        .json();
    let items = results["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{results}");
    let failed: Vec<&Value> = items.iter().filter(|r| r["succeeded"] == false).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["listener"], "mailer");
    assert!(failed[0]["error"].as_str().unwrap().contains("smtp down"));

    let table = soiree(fx.inspect(), &["results"], None).await.ok();
    assert!(table.contains("failed: "), "{table}");
    assert!(table.contains("welcome"), "{table}");
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn results_show_a_snooze_as_snoozed_escaped() {
    let fx = Fixture::new().await;
    let snoozed = soiree::StoredResult::new(
        "report.build",
        "evt-snoozed",
        "builder",
        1,
        Some(format!(
            "{}re-run after 5s\x1b]0;pwned\x07",
            soiree::SNOOZED_PREFIX
        )),
    );
    soiree::EventStore::save_handler_result(&*fx.store, &snoozed)
        .await
        .unwrap();
    let results = soiree(fx.inspect(), &["results", "--json"], None)
        .await
        .json();
    let items = results["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{results}");
    assert_eq!(items[0]["outcome"], "snoozed");
    assert_eq!(items[0]["succeeded"], false);

    let table = soiree(fx.inspect(), &["results"], None).await.ok();
    assert!(table.contains("snoozed: re-run after 5s"), "{table}");
    assert!(!table.contains("failed"), "{table}");
    assert!(
        !table.contains('\x1b'),
        "a stored string reached the terminal raw: {table}"
    );
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn stats_count_and_rate() {
    let fx = Fixture::standard().await;
    let stats = soiree(
        fx.inspect(),
        &["stats", "--json", "--interval", "20ms"],
        None,
    )
    .await
    .json();
    assert_eq!(stats["events"], 3);
    assert_eq!(stats["emitted"], 3);
    assert_eq!(stats["dead_letters"], 1);
    assert_eq!(stats["backlog"], 0);
    assert_eq!(stats["store"]["kind"], "memory");
    assert_eq!(stats["rates"]["emitted_per_sec"], 0.0);
    assert!(stats["rates"]["handled_per_sec"].is_number(), "{stats}");

    let no_rates = soiree(fx.inspect(), &["stats", "--json", "--interval", "0s"], None)
        .await
        .json();
    assert_eq!(no_rates["rates"], Value::Null);

    let table = soiree(fx.inspect(), &["stats", "--interval", "10ms"], None)
        .await
        .ok();
    for text in ["dead letters", "emit rate", "0.0/s", "memory this process"] {
        assert!(table.contains(text), "{text:?} missing in\n{table}");
    }
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn scheduled_lists_delayed_events_soonest_first() {
    use soiree::EventQueue;
    let store = Arc::new(MemoryStore::queue());
    let now = std::time::SystemTime::now();
    for (id, secs) in [("later", 7200), ("sooner", 3600)] {
        let event = soiree::Event::new("invoice.remind", json!({ "id": id }))
            .deliver_at(now + Duration::from_secs(secs));
        event.properties().set(soiree::PROPERTY_EVENT_ID, id);
        store
            .enqueue(&StoredEvent::from_event(&event).unwrap())
            .await
            .unwrap();
    }
    let inspect: Arc<dyn Inspect> = store;
    let page = soiree(inspect.clone(), &["scheduled", "list", "--json"], None)
        .await
        .json();
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["sooner", "later"], "{page}");
    assert!(page["items"][0]["due_at"].is_string(), "{page}");
    let table = soiree(inspect, &["scheduled", "list"], None).await.ok();
    assert!(table.contains("sooner") && table.contains("DUE"), "{table}");
}

#[tokio::test]
async fn leases_and_limits_list_holders_and_expiries() {
    use soiree::EventStore;
    let store = Arc::new(MemoryStore::queue());
    let inspect: Arc<dyn Inspect> = store.clone();
    let empty = soiree(inspect.clone(), &["leases", "list"], None)
        .await
        .ok();
    assert_eq!(empty.trim(), "no leader leases");
    let empty = soiree(inspect.clone(), &["limits", "list"], None)
        .await
        .ok();
    assert_eq!(empty.trim(), "no limit slots in use");

    let ttl = Duration::from_secs(60);
    let leases = store.leases().unwrap();
    let held = leases
        .acquire("nightly-report", "host-a", ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(
        leases
            .renew(&held, ttl, Some(1_700_000_000_000))
            .await
            .unwrap()
    );
    assert!(
        store
            .limits()
            .unwrap()
            .acquire_slot("mailer", 2, "run-1", ttl)
            .await
            .unwrap()
    );
    let listed = soiree(inspect.clone(), &["leases", "list", "--json"], None)
        .await
        .json();
    let lease = &listed["items"][0];
    assert_eq!(lease["name"], "nightly-report", "{listed}");
    assert_eq!(lease["holder"], "host-a", "{listed}");
    assert_eq!(lease["held"], true, "{listed}");
    assert_eq!(lease["token"], held.token, "{listed}");
    assert_eq!(lease["progress"], 1_700_000_000_000_i64, "{listed}");
    assert_eq!(lease["progress_at"], "2023-11-14T22:13:20.000Z", "{listed}");
    assert!(lease["expires_at"].is_string(), "{listed}");
    let table = soiree(inspect.clone(), &["leases", "list"], None)
        .await
        .ok();
    for text in [
        "NAME",
        "nightly-report",
        "host-a",
        "held",
        "in ",
        "2023-11-14T22:13:20",
    ] {
        assert!(table.contains(text), "{text:?} missing in\n{table}");
    }

    let slots = soiree(inspect.clone(), &["limits", "list", "--json"], None)
        .await
        .json();
    assert_eq!(slots["items"][0]["key"], "mailer", "{slots}");
    assert_eq!(slots["items"][0]["holder"], "run-1", "{slots}");
    assert!(slots["items"][0]["expires_at"].is_string(), "{slots}");
    let table = soiree(inspect, &["limits", "list"], None).await.ok();
    assert!(table.contains("KEY") && table.contains("run-1"), "{table}");
}

#[tokio::test]
async fn consumers_and_pending() {
    let fx = Fixture::standard().await;
    let consumers = soiree(fx.inspect(), &["consumers", "--json"], None)
        .await
        .json();
    assert_eq!(consumers["group"], "default");
    assert_eq!(consumers["consumers"][0]["name"], "this-process");
    assert_eq!(consumers["consumers"][0]["pending"], 0);

    let pending = soiree(fx.inspect(), &["pending", "--json"], None)
        .await
        .json();
    assert_eq!(pending, json!({"items": [], "next": null}));
    let table = soiree(fx.inspect(), &["pending"], None).await.ok();
    assert_eq!(table.trim(), "nothing pending");
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn event_detail_and_not_found() {
    let fx = Fixture::standard().await;
    let letters = soiree(fx.inspect(), &["dead-letters", "list", "--json"], None)
        .await
        .json();
    let event_id = letters["items"][0]["event_id"].as_str().unwrap().to_owned();
    let detail = soiree(fx.inspect(), &["event", &event_id, "--json"], None)
        .await
        .json();
    assert_eq!(detail["event"]["topic"], "invoice.sent");
    assert_eq!(detail["results"][0]["listener"], "mailer");
    assert_eq!(detail["dead_letters"].as_array().unwrap().len(), 1);
    let human = soiree(fx.inspect(), &["event", &event_id], None).await.ok();
    assert!(
        human.contains("payload:") && human.contains("\"invoice\": 7"),
        "{human}"
    );

    let err = soiree(fx.inspect(), &["event", "no-such-event"], None)
        .await
        .err();
    assert_eq!(err.exit_code(), 3);
    assert_eq!(err.to_string(), r#"no event with id "no-such-event""#);
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn dead_letters_list_and_show() {
    let fx = Fixture::standard().await;
    let letters = soiree(fx.inspect(), &["dead-letters", "list", "--json"], None)
        .await
        .json();
    let letter = &letters["items"][0];
    for key in [
        "id",
        "at",
        "topic",
        "event_id",
        "error",
        "deliveries",
        "event",
        "raw",
    ] {
        assert!(letter.get(key).is_some(), "{key} missing in {letter}");
    }
    assert_eq!(letter["topic"], "invoice.sent");
    assert_eq!(letter["event"]["payload"], json!({"invoice": 7}));
    assert!(letter["error"].as_str().unwrap().contains("smtp down"));
    let id = letter["id"].as_str().unwrap().to_owned();

    let table = soiree(fx.inspect(), &["dead-letters", "list"], None)
        .await
        .ok();
    assert!(
        table.contains("SET ASIDE") && table.contains("smtp down"),
        "{table}"
    );

    let shown = soiree(fx.inspect(), &["dead-letters", "show", &id], None)
        .await
        .ok();
    assert!(
        shown.contains("smtp down") && shown.contains("\"invoice\": 7"),
        "{shown}"
    );
    let shown = soiree(fx.inspect(), &["dead-letters", "show", &id, "--json"], None)
        .await
        .json();
    assert_eq!(shown["id"], id.as_str());

    let err = soiree(fx.inspect(), &["dead-letters", "show", "999"], None)
        .await
        .err();
    assert_eq!(err.exit_code(), 3);
    assert_eq!(err.to_string(), r#"no dead letter with id "999""#);
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn destructive_commands_refuse_without_a_terminal_or_yes() {
    let fx = Fixture::standard().await;
    let letters = soiree(fx.inspect(), &["dead-letters", "list", "--json"], None)
        .await
        .json();
    let id = letters["items"][0]["id"].as_str().unwrap().to_owned();
    for args in [
        &["dead-letters", "replay", "--all"][..],
        &["dead-letters", "purge", "--topic", "invoice.*"],
        &["dead-letters", "purge", "--id", &id],
    ] {
        let run = soiree(fx.inspect(), args, None).await;
        let err = run.err();
        assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        let text = err.to_string();
        assert!(
            text.contains("stdin is not a terminal") && text.contains("--yes"),
            "{text}"
        );
    }
    let letters = soiree(fx.inspect(), &["dead-letters", "list", "--json"], None)
        .await
        .json();
    let event_id = letters["items"][0]["event_id"].as_str().unwrap().to_owned();
    let err = soiree(fx.inspect(), &["replay", &event_id], None)
        .await
        .err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(
        err.to_string().starts_with("refusing to replay event"),
        "{err}"
    );

    // Answered no on a terminal.
    let run = soiree(
        fx.inspect(),
        &["dead-letters", "purge", "--all"],
        Some("n\n"),
    )
    .await;
    assert!(
        run.err.contains("purge 1 dead letter? [y/N]"),
        "{}",
        run.err
    );
    assert_eq!(run.err().exit_code(), 2);

    assert_eq!(fx.stats().await.dead_letters, 1, "nothing was changed");
    assert_eq!(
        fx.failures.load(Ordering::SeqCst),
        1,
        "nothing was replayed"
    );
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn an_empty_selection_is_refused() {
    let fx = Fixture::standard().await;
    for action in ["replay", "purge"] {
        let err = soiree(fx.inspect(), &["dead-letters", action, "--yes"], None)
            .await
            .err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .starts_with("no dead letters selected: pass --id ID"),
            "{err}"
        );
    }
    let err = soiree(
        fx.inspect(),
        &["dead-letters", "replay", "--id", "42", "--yes"],
        None,
    )
    .await
    .err();
    assert_eq!(err.exit_code(), 3, "{err}");

    // A filter that matches nothing: nothing to do, not an error.
    let out = soiree(
        fx.inspect(),
        &["dead-letters", "purge", "--topic", "user.*", "--yes"],
        None,
    )
    .await
    .ok();
    assert_eq!(out.trim(), "no dead letters selected: nothing to purge");
    assert_eq!(fx.stats().await.dead_letters, 1);
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn replaying_a_dead_letter_runs_its_event_again() {
    let fx = Fixture::standard().await;
    let letters = soiree(fx.inspect(), &["dead-letters", "list", "--json"], None)
        .await
        .json();
    let id = letters["items"][0]["id"].as_str().unwrap().to_owned();
    let replayed = soiree(
        fx.inspect(),
        &["dead-letters", "replay", "--id", &id, "--yes", "--json"],
        None,
    )
    .await
    .json();
    assert_eq!(
        replayed,
        json!({"action": "replay", "selected": 1, "done": 1})
    );
    fx.failures_reach(2).await;
    // It failed again: a new dead letter.
    assert_eq!(fx.stats().await.dead_letters, 1);

    // Confirmed on a terminal.
    let run = soiree(
        fx.inspect(),
        &["dead-letters", "replay", "--all"],
        Some("y\n"),
    )
    .await;
    assert!(
        run.err.contains("replay 1 dead letter? [y/N]"),
        "{}",
        run.err
    );
    assert_eq!(run.ok().trim(), "replayed 1 dead letter(s)");
    fx.failures_reach(3).await;

    // Replay by event id.
    let letters = soiree(fx.inspect(), &["dead-letters", "list", "--json"], None)
        .await
        .json();
    let event_id = letters["items"][0]["event_id"].as_str().unwrap().to_owned();
    let out = soiree(fx.inspect(), &["replay", &event_id, "--yes"], None)
        .await
        .ok();
    assert_eq!(out.trim(), format!("replayed event {event_id:?}"));
    fx.failures_reach(4).await;

    let err = soiree(fx.inspect(), &["replay", "nope", "--yes"], None)
        .await
        .err();
    assert_eq!(err.exit_code(), 3);
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn purge_all_empties_the_dead_letters() {
    let fx = Fixture::standard().await;
    fx.emit("invoice.sent", json!({"invoice": 8})).await;
    fx.failures_reach(2).await;
    assert_eq!(fx.stats().await.dead_letters, 2);
    let out = soiree(
        fx.inspect(),
        &["dead-letters", "purge", "--all", "--yes"],
        None,
    )
    .await
    .ok();
    assert_eq!(out.trim(), "purged 2 dead letter(s)");
    assert_eq!(fx.stats().await.dead_letters, 0);
    assert_eq!(
        fx.failures.load(Ordering::SeqCst),
        2,
        "purge replays nothing"
    );
    fx.bus.close().await.unwrap();
}

/// Counts the calls of `replay_dead_letters` and their sizes.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn Inspect>,
    replay_calls: AtomicU64,
    largest: AtomicU64,
}

#[soiree::async_trait]
impl Inspect for Counting {
    fn info(&self) -> StoreInfo {
        self.inner.info()
    }
    async fn stats(&self) -> soiree::Result<StoreStats> {
        self.inner.stats().await
    }
    async fn events(&self, query: &Query) -> soiree::Result<Page<Record<StoredEvent>>> {
        self.inner.events(query).await
    }
    async fn results(&self, query: &Query) -> soiree::Result<Page<Record<StoredResult>>> {
        self.inner.results(query).await
    }
    async fn event(&self, event_id: &str) -> soiree::Result<Option<EventDetail>> {
        self.inner.event(event_id).await
    }
    async fn pending(&self, query: &Query) -> soiree::Result<Page<PendingDelivery>> {
        self.inner.pending(query).await
    }
    async fn consumers(&self) -> soiree::Result<Vec<ConsumerInfo>> {
        self.inner.consumers().await
    }
    async fn dead_letters(&self, query: &Query) -> soiree::Result<Page<DeadLetter>> {
        self.inner.dead_letters(query).await
    }
    async fn replay_dead_letters(&self, selection: &DeadLetterSelection) -> soiree::Result<u64> {
        self.replay_calls.fetch_add(1, Ordering::SeqCst);
        if let DeadLetterSelection::Ids(ids) = selection {
            self.largest.fetch_max(ids.len() as u64, Ordering::SeqCst);
        }
        self.inner.replay_dead_letters(selection).await
    }
    async fn purge_dead_letters(&self, selection: &DeadLetterSelection) -> soiree::Result<u64> {
        self.inner.purge_dead_letters(selection).await
    }
    async fn replay(&self, event_id: &str) -> soiree::Result<()> {
        self.inner.replay(event_id).await
    }
}

#[tokio::test]
async fn long_replays_go_in_chunks() {
    let fx = Fixture::new().await;
    for invoice in 0..250 {
        fx.bus
            .emit("invoice.sent", json!({ "invoice": invoice }))
            .persisted()
            .await
            .unwrap();
    }
    fx.failures_reach(250).await;
    assert_eq!(fx.stats().await.dead_letters, 250);
    let counting = Arc::new(Counting {
        inner: fx.store.clone(),
        replay_calls: AtomicU64::new(0),
        largest: AtomicU64::new(0),
    });
    let out = soiree(
        counting.clone(),
        &["dead-letters", "replay", "--topic", "invoice.**", "--yes"],
        None,
    )
    .await
    .ok();
    assert_eq!(out.trim(), "replayed 250 dead letter(s)");
    assert_eq!(counting.replay_calls.load(Ordering::SeqCst), 3);
    assert_eq!(counting.largest.load(Ordering::SeqCst), 100);
    fx.failures_reach(500).await;
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn tail_prints_new_events() {
    let fx = Arc::new(Fixture::standard().await);
    let emitter = {
        let fx = fx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            fx.emit("user.created", json!({"name": "cy"})).await;
            fx.emit("invoice.sent", json!({"invoice": 9})).await;
            fx.emit("user.created", json!({"name": "dee"})).await;
        })
    };
    let out = soiree(
        fx.inspect(),
        &[
            "tail", "user.*", "--json", "--every", "20ms", "--count", "2",
        ],
        None,
    )
    .await
    .ok();
    emitter.await.unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["payload"], json!({"name": "cy"}));
    assert_eq!(lines[1]["payload"], json!({"name": "dee"}));

    // Human lines, stopped by the stop signal (ctrl-c) with nothing new.
    let human = soiree(
        fx.inspect(),
        &["tail", "--every", "20ms", "--count", "0"],
        None,
    )
    .await
    .ok();
    assert!(human.is_empty());
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn tail_stops_on_the_signal() {
    let fx = Fixture::standard().await;
    let opt = Opt::try_parse_from(["soiree", "tail", "--every", "20ms"]).unwrap();
    let out = Buf::default();
    let mut console = Console {
        out: Box::new(out.clone()),
        err: Box::new(Buf::default()),
        input: Box::new(Cursor::new(Vec::new())),
        interactive: false,
        progress: false,
    };
    tokio::time::timeout(
        Duration::from_secs(10),
        execute(
            opt.command,
            fx.inspect(),
            &mut console,
            tokio::time::sleep(Duration::from_millis(100)),
        ),
    )
    .await
    .expect("tail stops")
    .unwrap();
    assert_eq!(out.text(), "", "only new events are printed");
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn a_cursor_the_store_did_not_issue_is_a_usage_error() {
    let fx = Fixture::standard().await;
    for args in [
        &["events", "--after", "abc"][..],
        &["results", "--after", "abc", "--json"],
        &["dead-letters", "list", "--after", "abc"],
    ] {
        let run = soiree(fx.inspect(), args, None).await;
        assert_eq!(run.out, "", "{args:?}");
        let err = run.err();
        assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        assert!(
            err.to_string().starts_with(r#"bad --after cursor "abc""#),
            "{err}"
        );
    }
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn dead_letter_listings_show_the_useful_end_of_the_error() {
    let store = Arc::new(MemoryStore::queue());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .build()
        .unwrap();
    let cause = format!(
        "payment gateway returned 402 after {} card declined",
        "retrying ".repeat(20)
    );
    let error = cause.clone();
    bus.on_named("charge-card", "order.created", move |_ctx| {
        let error = error.clone();
        async move { Err(error.into()) }
    })
    .unwrap();
    bus.start().unwrap();
    bus.emit("order.created", json!({"order": 1}))
        .persisted()
        .await
        .unwrap();
    bus.wait_for_idle().await;
    let inspect: Arc<dyn Inspect> = store.clone();
    let letters = soiree(inspect.clone(), &["dead-letters", "list", "--json"], None)
        .await
        .json();
    let stored = letters["items"][0]["error"].as_str().unwrap().to_owned();
    assert_eq!(
        stored,
        format!("listener charge-card failed on \"order.created\": {cause}"),
        "JSON keeps the error whole"
    );
    let id = letters["items"][0]["id"].as_str().unwrap().to_owned();
    let event_id = letters["items"][0]["event_id"].as_str().unwrap().to_owned();

    for args in [&["dead-letters", "list"][..], &["event", &event_id]] {
        let table = soiree(inspect.clone(), args, None).await.ok();
        assert!(table.contains("LISTENER"), "{args:?}: {table}");
        assert!(table.contains("charge-card"), "{args:?}: {table}");
        assert!(table.contains("card declined"), "{args:?}: {table}");
        assert!(table.contains("payment gateway"), "{args:?}: {table}");
        assert!(!table.contains("failed on"), "{args:?}: {table}");
    }
    let shown = soiree(inspect, &["dead-letters", "show", &id], None)
        .await
        .ok();
    assert!(shown.contains(&stored), "show prints it whole: {shown}");
    bus.close().await.unwrap();
}
