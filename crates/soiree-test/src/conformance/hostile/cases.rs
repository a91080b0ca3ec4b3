//! The hostile checks: one public function per kind of hostile row.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use soiree::limits::{
    MAX_EVENT_ID_LEN, MAX_JSON_DEPTH, MAX_PAYLOAD_LEN, MAX_PROPERTIES_LEN, MAX_PROPERTY_KEY_LEN,
    MAX_TOPIC_LEN, MAX_TOPIC_SEGMENTS, WHAT_EVENT_ID_LEN, WHAT_PAYLOAD_DEPTH, WHAT_PAYLOAD_LEN,
    WHAT_PROPERTIES_LEN, WHAT_PROPERTY_DEPTH, WHAT_PROPERTY_KEY_LEN,
};
use soiree::{EventStore, PROPERTY_EVENT_ID, Payload, StoredEvent};

use super::super::support::unique_id;
use super::super::{Conformance, Outcome};
use super::harness::{Case, Expect, Refusal, assert_store_refuses, run_cases};

/// Bidirectional overrides, C1 controls, DEL and an escape sequence: what
/// a terminal or a page showing the string could be fooled by.
const TERMINAL_HOSTILE: &str = "\u{202e}txt.exe\u{2066}\u{85}\u{9b}31m\u{7f}\u{1b}[2J";

/// [`TERMINAL_HOSTILE`] as a topic segment (no `.`, `[`).
const TERMINAL_HOSTILE_SEGMENT: &str =
    "\u{202e}txt\u{2066}\u{85}\u{9b}31m\u{7f}\u{1b}]0;title\u{7}";

/// `[[…["leaf"]…]]`, `depth` arrays deep.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("leaf"), |value, _| Value::Array(vec![value]))
}

/// A JSON string whose encoding is exactly `len` bytes (quotes included).
fn json_string_of_len(len: usize) -> Value {
    Value::String("a".repeat(len - 2))
}

/// Payloads and property values nested exactly [`MAX_JSON_DEPTH`] deep are
/// stored and delivered intact; one level more, and 200 levels (past
/// `serde_json`'s parser, which every consumer uses), are refused at emit
/// with [`soiree::Error::LimitExceeded`], and the ordinary events emitted
/// just before and after are delivered.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn hostile_nesting_depth(store: Arc<dyn EventStore>, config: &Conformance) -> Outcome {
    let limit = |what| Expect::Refused(Refusal::Limit(what));
    let cases = vec![
        Case::json(
            "payload at the depth limit",
            nested(MAX_JSON_DEPTH),
            Expect::Delivered,
        ),
        Case::json("property at the depth limit", json!(1), Expect::Delivered)
            .property("deep", nested(MAX_JSON_DEPTH)),
        Case::json(
            "payload one past the depth limit",
            nested(MAX_JSON_DEPTH + 1),
            limit(WHAT_PAYLOAD_DEPTH),
        ),
        Case::json("payload 200 deep", nested(200), limit(WHAT_PAYLOAD_DEPTH)),
        Case::json("property 200 deep", json!(1), limit(WHAT_PROPERTY_DEPTH))
            .property("deep", nested(200)),
    ];
    run_cases(Arc::clone(&store), config, cases).await;
    let mut deep = StoredEvent {
        topic: "hostile.deep".into(),
        payload: nested(200),
        properties: Map::new(),
    };
    deep.properties
        .insert(PROPERTY_EVENT_ID.into(), unique_id("deep").into());
    assert_store_refuses(
        &store,
        config,
        "payload 200 deep, given to the store",
        deep,
        Refusal::Limit(WHAT_PAYLOAD_DEPTH),
    )
    .await;
    Outcome::Passed
}

/// NUL in payload strings, property values and property keys, the text of
/// a lone surrogate's JSON escape (`\ud800`), and bidi, C1, DEL and escape
/// sequences in topics, event ids and values are stored and delivered
/// intact; NUL in a topic or an event id (which databases refuse in text) is
/// refused at emit with [`soiree::Error::InvalidTopicName`] or
/// [`soiree::Error::InvalidEventId`]. Neighbours are delivered.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn hostile_odd_encodings(store: Arc<dyn EventStore>, config: &Conformance) -> Outcome {
    let odd = json!({
        "nul": "a\u{0}b",
        "surrogate_escape_text": "\\ud800 \\udfff",
        "hostile": TERMINAL_HOSTILE,
        "quotes": "'\"; DROP TABLE soiree_events; --",
        "html": "<script>alert(1)</script>",
        "astral": "\u{1F600}\u{10FFFF}",
    });
    let cases = vec![
        Case::json("odd strings in the payload", odd.clone(), Expect::Delivered)
            .property("odd", odd.clone())
            .property("key\u{0}with nul", json!("v\u{0}")),
        Case::json(
            "bidi and C1 in the topic and id",
            json!(1),
            Expect::Delivered,
        )
        .topic(format!("hostile.{TERMINAL_HOSTILE_SEGMENT}"))
        .event_id(format!("{}{TERMINAL_HOSTILE}", unique_id("odd"))),
        Case::json(
            "NUL in the topic",
            json!(1),
            Expect::Refused(Refusal::Topic),
        )
        .topic("hostile.a\u{0}b"),
        Case::json(
            "NUL in the event id",
            json!(1),
            Expect::Refused(Refusal::EventId),
        )
        .event_id(format!("{}\u{0}", unique_id("nul"))),
    ];
    run_cases(store, config, cases).await
}

/// Event ids, topics and property keys at their limits are stored and
/// delivered intact; one byte (or segment) past, they are refused at emit
/// with [`soiree::Error::LimitExceeded`] or
/// [`soiree::Error::InvalidTopicName`], and by the store itself when given
/// to it directly. Neighbours are delivered.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn hostile_oversized_names(store: Arc<dyn EventStore>, config: &Conformance) -> Outcome {
    let id_at = |label| {
        let id = unique_id(label);
        format!("{id}{}", "i".repeat(MAX_EVENT_ID_LEN - id.len()))
    };
    let segments = |count| vec!["s"; count].join(".");
    let cases = vec![
        Case::json("event id at its limit", json!(1), Expect::Delivered).event_id(id_at("id-at")),
        Case::json(
            "event id one byte past its limit",
            json!(1),
            Expect::Refused(Refusal::Limit(WHAT_EVENT_ID_LEN)),
        )
        .event_id(format!("{}x", id_at("id-past"))),
        Case::json(
            "event id of 3 KB",
            json!(1),
            Expect::Refused(Refusal::Limit(WHAT_EVENT_ID_LEN)),
        )
        .event_id("x".repeat(3000)),
        Case::json("topic at the segment limit", json!(1), Expect::Delivered)
            .topic(segments(MAX_TOPIC_SEGMENTS)),
        Case::json(
            "topic one segment past",
            json!(1),
            Expect::Refused(Refusal::Topic),
        )
        .topic(segments(MAX_TOPIC_SEGMENTS + 1)),
        Case::json("topic at the length limit", json!(1), Expect::Delivered)
            .topic("t".repeat(MAX_TOPIC_LEN)),
        Case::json(
            "topic one byte past",
            json!(1),
            Expect::Refused(Refusal::Topic),
        )
        .topic("t".repeat(MAX_TOPIC_LEN + 1)),
        Case::json("property key at its limit", json!(1), Expect::Delivered)
            .property("k".repeat(MAX_PROPERTY_KEY_LEN), json!(1)),
        Case::json(
            "property key one byte past",
            json!(1),
            Expect::Refused(Refusal::Limit(WHAT_PROPERTY_KEY_LEN)),
        )
        .property("k".repeat(MAX_PROPERTY_KEY_LEN + 1), json!(1)),
    ];
    run_cases(Arc::clone(&store), config, cases).await;

    let mut long_id = StoredEvent {
        topic: "hostile.long_id".into(),
        payload: json!(1),
        properties: Map::new(),
    };
    long_id.properties.insert(
        PROPERTY_EVENT_ID.into(),
        "x".repeat(MAX_EVENT_ID_LEN + 1).into(),
    );
    assert_store_refuses(
        &store,
        config,
        "long id, given to the store",
        long_id,
        Refusal::Limit(WHAT_EVENT_ID_LEN),
    )
    .await;
    let long_topic = StoredEvent {
        topic: segments(MAX_TOPIC_SEGMENTS + 1),
        payload: json!(1),
        properties: Map::new(),
    };
    assert_store_refuses(
        &store,
        config,
        "long topic, given to the store",
        long_topic,
        Refusal::Topic,
    )
    .await;
    Outcome::Passed
}

/// Numbers at the edges of what JSON holds (`u64::MAX`, `i64::MIN`,
/// `f64::MAX`, the smallest subnormal, `-0.0`) are stored and delivered
/// exactly; numbers it cannot hold (NaN, infinity — `1e400` read back is
/// one —, integers past 64 bits) are refused at emit with
/// [`soiree::Error::Serialization`]. Neighbours are delivered.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn hostile_numbers(store: Arc<dyn EventStore>, config: &Conformance) -> Outcome {
    let edges = json!({
        "u64_max": u64::MAX,
        "i64_min": i64::MIN,
        "f64_max": f64::MAX,
        "f64_min": f64::MIN,
        "subnormal": 5e-324,
        "negative_zero": -0.0,
        "precise": 0.1,
    });
    let refused = Expect::Refused(Refusal::Serialization);
    let cases = vec![
        Case::json("numbers at JSON's edges", edges.clone(), Expect::Delivered)
            .property("edges", edges),
        Case::value("infinity", Payload::new(f64::INFINITY), refused),
        Case::value("NaN", Payload::new(vec![1.0, f64::NAN]), refused),
        Case::value("an integer past 64 bits", Payload::new(u128::MAX), refused),
        Case::value(
            "a negative integer past 64 bits",
            Payload::new(i128::MIN),
            refused,
        ),
    ];
    run_cases(store, config, cases).await
}

/// Empty payloads (none, `""`, `{}`, `[]`) and a payload of exactly
/// [`MAX_PAYLOAD_LEN`] bytes are stored and delivered intact; one byte more
/// is refused at emit with [`soiree::Error::LimitExceeded`], as are
/// properties over [`MAX_PROPERTIES_LEN`] bytes, and by the store itself
/// when given to it directly. Neighbours are delivered.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn hostile_payload_sizes(store: Arc<dyn EventStore>, config: &Conformance) -> Outcome {
    let too_big = Expect::Refused(Refusal::Limit(WHAT_PAYLOAD_LEN));
    let cases = vec![
        Case::json("no payload", Value::Null, Expect::Delivered).empty_payload(),
        Case::json("an empty string", json!(""), Expect::Delivered),
        Case::json("an empty object", json!({}), Expect::Delivered),
        Case::json("an empty array", json!([]), Expect::Delivered),
        Case::json(
            "a payload at the size limit",
            json_string_of_len(MAX_PAYLOAD_LEN),
            Expect::Delivered,
        ),
        Case::json(
            "a payload one byte past the size limit",
            json_string_of_len(MAX_PAYLOAD_LEN + 1),
            too_big,
        ),
        Case::json("a payload of 8 MiB", json_string_of_len(8 << 20), too_big),
        Case::json(
            "properties past their size limit",
            json!(1),
            Expect::Refused(Refusal::Limit(WHAT_PROPERTIES_LEN)),
        )
        .property("big", json_string_of_len(MAX_PROPERTIES_LEN)),
    ];
    run_cases(Arc::clone(&store), config, cases).await;
    let mut big = StoredEvent {
        topic: "hostile.big".into(),
        payload: json_string_of_len(MAX_PAYLOAD_LEN + 1),
        properties: Map::new(),
    };
    big.properties
        .insert(PROPERTY_EVENT_ID.into(), unique_id("big").into());
    assert_store_refuses(
        &store,
        config,
        "big payload, given to the store",
        big,
        Refusal::Limit(WHAT_PAYLOAD_LEN),
    )
    .await;
    Outcome::Passed
}
