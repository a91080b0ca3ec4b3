//! Every command against stored strings made to attack a terminal: no
//! control character, DEL or bidi control reaches the output, in tables
//! and in `--json`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use soiree::{
    ConsumerInfo, DeadLetter, DeadLetterSelection, Event, EventBus, EventDetail, Inspect,
    MemoryStore, PROPERTY_EVENT_ID, Page, PendingDelivery, Query, Record, ScheduledEvent,
    StoreInfo, StoreStats, StoredEvent, StoredResult,
};

use super::tests::soiree;
use crate::escape::is_unsafe;

/// Changes the window title, clears the screen, writes the clipboard
/// (OSC 52), a C1 CSI, DEL, bidi override and isolate, a right-to-left
/// mark and a carriage return. (No NUL: event ids and topics refuse it at
/// emit; payloads carry one, [`NUL`].)
const HOSTILE: &str =
    "\x1b]0;pwned\x07\x1b[2J\x1b]52;c;aGk=\x07\u{9b}31m\x7f\u{202e}\u{2066}\u{200f}\r\n\tend";

/// A NUL, in payloads and property values (which may hold one).
const NUL: &str = "nul\0end";

/// A topic may hold none of `.`, `[`, `?`, `*`, nor surrounding spaces.
const HOSTILE_TOPIC: &str = "evil\x1b]0;pwned\x07\u{9b}2J\x7f\u{202e}\u{2067}\u{200e}\x08.x";

/// A memory store that also reports hostile consumers, pending deliveries
/// and store description (the memory queue has none of its own).
#[derive(Debug)]
struct Hostile(Arc<MemoryStore>);

fn hostile_event() -> StoredEvent {
    let mut properties = serde_json::Map::new();
    properties.insert(PROPERTY_EVENT_ID.to_owned(), json!(HOSTILE));
    StoredEvent {
        topic: HOSTILE_TOPIC.to_owned(),
        payload: json!({ HOSTILE: HOSTILE, "nul": NUL }),
        properties,
    }
}

#[soiree::async_trait]
impl Inspect for Hostile {
    fn info(&self) -> StoreInfo {
        StoreInfo::new("memory", HOSTILE, Some(HOSTILE.to_owned()))
    }
    async fn stats(&self) -> soiree::Result<StoreStats> {
        Inspect::stats(&*self.0).await
    }
    async fn events(&self, query: &Query) -> soiree::Result<Page<Record<StoredEvent>>> {
        Inspect::events(&*self.0, query).await
    }
    async fn results(&self, query: &Query) -> soiree::Result<Page<Record<StoredResult>>> {
        Inspect::results(&*self.0, query).await
    }
    async fn event(&self, event_id: &str) -> soiree::Result<Option<EventDetail>> {
        Inspect::event(&*self.0, event_id).await
    }
    async fn pending(&self, _query: &Query) -> soiree::Result<Page<PendingDelivery>> {
        let pending = PendingDelivery::new(HOSTILE, HOSTILE, Duration::from_secs(3), 2)
            .event(Some(hostile_event()));
        Ok(Page {
            items: vec![pending],
            next: Some(HOSTILE.to_owned()),
        })
    }
    async fn scheduled(&self, _query: &Query) -> soiree::Result<Page<ScheduledEvent>> {
        Ok(Page {
            items: vec![ScheduledEvent::new(
                HOSTILE,
                std::time::SystemTime::UNIX_EPOCH,
                hostile_event(),
            )],
            next: Some(HOSTILE.to_owned()),
        })
    }
    async fn consumers(&self) -> soiree::Result<Vec<ConsumerInfo>> {
        Ok(vec![ConsumerInfo::new(HOSTILE, 1, None)])
    }
    async fn leader_leases(&self, limit: usize) -> soiree::Result<Vec<soiree::LeaseInfo>> {
        Inspect::leader_leases(&*self.0, limit).await
    }
    async fn limit_slots(&self, limit: usize) -> soiree::Result<Vec<soiree::LimitSlot>> {
        Inspect::limit_slots(&*self.0, limit).await
    }
    async fn dead_letters(&self, query: &Query) -> soiree::Result<Page<DeadLetter>> {
        Inspect::dead_letters(&*self.0, query).await
    }
    async fn replay_dead_letters(&self, selection: &DeadLetterSelection) -> soiree::Result<u64> {
        Inspect::replay_dead_letters(&*self.0, selection).await
    }
    async fn purge_dead_letters(&self, selection: &DeadLetterSelection) -> soiree::Result<u64> {
        Inspect::purge_dead_letters(&*self.0, selection).await
    }
    async fn replay(&self, event_id: &str) -> soiree::Result<()> {
        Inspect::replay(&*self.0, event_id).await
    }
}

/// Emits one hostile event: hostile topic, event id, payload and
/// properties; its hostile listener fails with a hostile error.
async fn emit_hostile(bus: &EventBus) {
    let event = Event::new(HOSTILE_TOPIC, json!({ HOSTILE: HOSTILE, "nul": NUL }));
    event.properties().set(PROPERTY_EVENT_ID, HOSTILE);
    event.properties().set(HOSTILE, HOSTILE);
    bus.emit(HOSTILE_TOPIC, event).persisted().await.unwrap();
    bus.wait_for_idle().await;
}

/// The unsafe characters in `out` other than the newlines of its layout.
fn unsafe_chars(out: &str) -> Vec<char> {
    out.chars().filter(|&c| c != '\n' && is_unsafe(c)).collect()
}

/// Reports whether `text` is a string (or key) somewhere in `value`.
fn holds(value: &Value, text: &str) -> bool {
    match value {
        Value::String(s) => s == text,
        Value::Array(items) => items.iter().any(|item| holds(item, text)),
        Value::Object(map) => map.iter().any(|(k, v)| k == text || holds(v, text)),
        _ => false,
    }
}

fn assert_safe(args: &[&str], out: &str) {
    let found = unsafe_chars(out);
    assert!(found.is_empty(), "{args:?} printed {found:?} in\n{out}");
}

#[tokio::test]
async fn stored_strings_reach_the_terminal_escaped() {
    let store = Arc::new(MemoryStore::queue());
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .build()
        .unwrap();
    bus.on_named(HOSTILE, "**", |_ctx| async { Err(HOSTILE.into()) })
        .unwrap();
    bus.start().unwrap();
    emit_hostile(&bus).await;
    // A lease and a limit slot named and held by hostile strings (a lease
    // name or holder may hold any character but NUL).
    let ttl = Duration::from_secs(60);
    soiree::EventStore::leases(&*store)
        .unwrap()
        .acquire(HOSTILE, HOSTILE, ttl)
        .await
        .unwrap()
        .expect("free");
    assert!(
        soiree::EventStore::limits(&*store)
            .unwrap()
            .acquire_slot(HOSTILE, 1, HOSTILE, ttl)
            .await
            .unwrap()
    );
    let inspect: Arc<dyn Inspect> = Arc::new(Hostile(store.clone()));
    // The store holds the hostile strings as they are.
    let letters = soiree(inspect.clone(), &["dead-letters", "list", "--json"], None)
        .await
        .json();
    let letter = &letters["items"][0];
    assert_eq!(letter["event_id"], HOSTILE, "{letters}");
    assert!(
        letter["error"].as_str().unwrap().contains(HOSTILE),
        "{letters}"
    );
    let letter_id = letter["id"].as_str().unwrap().to_owned();

    let commands: Vec<Vec<&str>> = vec![
        vec!["events"],
        vec!["events", "--limit", "1"],
        vec!["event", HOSTILE],
        vec!["results"],
        vec!["dead-letters", "list"],
        vec!["dead-letters", "show", &letter_id],
        vec!["pending"],
        vec!["scheduled", "list"],
        vec!["consumers"],
        vec!["leases", "list"],
        vec!["limits", "list"],
        vec!["stats", "--interval", "0s"],
        vec!["dead-letters", "replay", "--all", "--dry-run"],
        vec!["replay", HOSTILE, "--dry-run"],
    ];
    for args in &commands {
        let out = soiree(inspect.clone(), args, None).await.ok();
        assert!(out.contains("\\u{1b}]0;pwned"), "{args:?}: {out}");
        assert_safe(args, &out);
        let mut json_args = args.clone();
        json_args.push("--json");
        let run = soiree(inspect.clone(), &json_args, None).await;
        let out = run.out.clone();
        let document = run.json();
        assert_safe(&json_args, &out);
        // Escaped JSON holds the same strings once parsed.
        assert!(
            holds(&document, HOSTILE) || holds(&document, HOSTILE_TOPIC),
            "{json_args:?}: {document}"
        );
    }

    // The hostile topic in a table is shown, escaped, in full.
    let table = soiree(inspect.clone(), &["events"], None).await.ok();
    assert!(
        table.contains(
            "evil\\u{1b}]0;pwned\\u{7}\\u{9b}2J\\u{7f}\\u{202e}\\u{2067}\\u{200e}\\u{8}.x"
        ),
        "{table}"
    );

    // tail: human and JSON lines of a hostile event stored meanwhile.
    for json in [false, true] {
        let emitter = {
            let bus = bus.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                emit_hostile(&bus).await;
            })
        };
        let mut args = vec!["tail", "--every", "20ms", "--count", "1"];
        if json {
            args.push("--json");
        }
        let out = soiree(inspect.clone(), &args, None).await.ok();
        emitter.await.unwrap();
        assert!(out.contains("pwned"), "{args:?}: {out}");
        assert_safe(&args, &out);
        if json {
            let line: Value = serde_json::from_str(out.trim()).unwrap();
            assert_eq!(line["event_id"], HOSTILE);
        }
    }
    bus.close().await.unwrap();
}

#[tokio::test]
async fn prompts_and_errors_quoting_stored_text_are_escaped() {
    let store = Arc::new(MemoryStore::queue());
    let inspect: Arc<dyn Inspect> = store.clone();
    let run = soiree(inspect.clone(), &["event", HOSTILE], None).await;
    let err = run.err().to_string();
    let shown = crate::escape::escape(&err);
    assert!(unsafe_chars(&shown).is_empty(), "{shown}");

    // The preview and the prompt of a replay of a hostile event.
    let bus = EventBus::builder()
        .shared_store(store.clone())
        .build()
        .unwrap();
    bus.on_named(HOSTILE, "**", |_ctx| async { Err(HOSTILE.into()) })
        .unwrap();
    bus.start().unwrap();
    emit_hostile(&bus).await;
    let run = soiree(inspect, &["replay", HOSTILE], Some("n\n")).await;
    assert_safe(&["replay"], &run.err);
    assert!(run.err.contains("? [y/N]"), "{}", run.err);
    assert!(run.err.contains("\\u{1b}]0;pwned"), "{}", run.err);
    bus.close().await.unwrap();
}
