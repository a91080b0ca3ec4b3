//! Typed topics: default and custom wrap/unwrap, typed listeners, payload
//! type mismatches, the JSON fallback and its cache, `payload_as`, and the
//! observability spec (span and duration histogram).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures::StreamExt;
use serde::{Deserialize, Deserializer, Serialize};
use soiree::{
    Error, Event, EventBus, MetricsRegistry, ObservabilitySpec, Payload, TypedTopic, bind_listener,
    unwrap_payload,
};
use tracing::span;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserEvent {
    id: String,
    plan: String,
}

fn user(id: &str) -> UserEvent {
    UserEvent {
        id: id.to_owned(),
        plan: "pro".to_owned(),
    }
}

/// Registers a typed listener that records the payloads it receives.
fn collect_payloads<T>(bus: &EventBus, topic: &TypedTopic<T>) -> Arc<Mutex<Vec<T>>>
where
    T: Clone + Send + Sync + 'static,
{
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    bind_listener(topic, move |_ctx, payload: T| {
        log.lock().unwrap().push(payload);
        async { Ok(()) }
    })
    .register(bus)
    .unwrap();
    seen
}

#[tokio::test]
async fn default_wrap_and_unwrap_round_trip() {
    observed();
    let topic = TypedTopic::<UserEvent>::new(" user.created ");
    assert_eq!(topic.name(), "user.created", "the name is trimmed");
    let bus = EventBus::new();
    let seen = collect_payloads(&bus, &topic);

    let event = topic.wrap(user("u1")).unwrap();
    assert_eq!(event.topic(), "user.created");
    assert_eq!(
        event.payload().downcast_ref::<UserEvent>(),
        Some(&user("u1"))
    );
    assert_eq!(topic.unwrap(&event).unwrap(), user("u1"));

    let errors: Vec<Error> = bus.emit(topic.name(), event).collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    // A plain value of the type works as well.
    let errors: Vec<Error> = bus.emit(topic.name(), user("u2")).collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(*seen.lock().unwrap(), [user("u1"), user("u2")]);
}

#[test]
fn wrap_checks_the_topic() {
    observed();
    let bad = TypedTopic::<UserEvent>::new("user..created");
    assert!(matches!(
        bad.wrap(user("u1")),
        Err(Error::InvalidTopicName { .. })
    ));
    let wildcard = TypedTopic::<UserEvent>::new("user.*");
    assert!(matches!(
        wildcard.wrap(user("u1")),
        Err(Error::InvalidTopicName { .. })
    ));
    let elsewhere = TypedTopic::<UserEvent>::new("user.created")
        .with_wrap(|payload| Event::new("user.deleted", payload));
    match elsewhere.wrap(user("u1")) {
        Err(Error::EventTopicMismatch { emitted, event }) => {
            assert_eq!(emitted, "user.created");
            assert_eq!(event, "user.deleted");
        }
        other => panic!("expected EventTopicMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn custom_wrap_and_unwrap_are_used() {
    observed();
    // The wrap keeps the id in a property; the unwrap reads it back from there.
    let topic = TypedTopic::<UserEvent>::new("user.created")
        .with_wrap(|user: UserEvent| {
            let event = Event::new("user.created", ());
            event
                .properties()
                .set("user_id", user.id)
                .set("plan", user.plan);
            event
        })
        .with_unwrap(|event: &Event| {
            let props = event.properties();
            match (props.get_str("user_id"), props.get_str("plan")) {
                (Some(id), Some(plan)) => Ok(UserEvent { id, plan }),
                _ => Err(Error::NilPayload),
            }
        });
    let bus = EventBus::new();
    let seen = collect_payloads(&bus, &topic);

    let event = topic.wrap(user("u7")).unwrap();
    assert!(event.payload().downcast_ref::<UserEvent>().is_none());
    assert_eq!(event.properties().get_str("user_id").as_deref(), Some("u7"));
    let errors: Vec<Error> = bus.emit(topic.name(), event).collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(*seen.lock().unwrap(), [user("u7")]);

    // The custom unwrap's error fails the listener.
    let errors: Vec<Error> = bus.emit(topic.name(), user("u8")).collect().await;
    match errors.as_slice() {
        [Error::Listener { source, .. }] => assert!(matches!(
            source.downcast_ref::<Error>(),
            Some(Error::NilPayload)
        )),
        other => panic!("expected the unwrap's error, got {other:?}"),
    }
    assert_eq!(seen.lock().unwrap().len(), 1, "the listener did not run");
}

#[tokio::test]
async fn a_payload_of_the_wrong_type_fails_with_payload_type_mismatch() {
    observed();
    let topic = TypedTopic::<UserEvent>::new("user.created");
    let bus = EventBus::new();
    let seen = collect_payloads(&bus, &topic);
    let wrong = [
        Payload::new(5_u32),
        Payload::new("a string"),
        Payload::from_json(serde_json::json!({ "id": 1 })),
        Payload::opaque(std::time::Instant::now()),
    ];
    for payload in wrong {
        let described = format!("{payload:?}");
        let errors: Vec<Error> = bus.emit(topic.name(), payload).collect().await;
        match errors.as_slice() {
            [Error::Listener { source, topic, .. }] => {
                assert_eq!(topic, "user.created");
                match source.downcast_ref::<Error>() {
                    Some(Error::PayloadTypeMismatch { expected, .. }) => {
                        assert!(expected.ends_with("UserEvent"), "{expected}")
                    }
                    other => panic!("{described}: expected PayloadTypeMismatch, got {other:?}"),
                }
            }
            other => panic!("{described}: expected one listener error, got {other:?}"),
        }
    }
    let errors: Vec<Error> = bus.emit(topic.name(), Payload::empty()).collect().await;
    assert!(
        matches!(errors.as_slice(), [Error::Listener { source, .. }]
            if matches!(source.downcast_ref::<Error>(), Some(Error::NilPayload))),
        "{errors:?}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "the typed listener never ran"
    );
}

/// Counts how often it is deserialized, to observe the decode cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Counted {
    id: u32,
}

static DECODES: AtomicUsize = AtomicUsize::new(0);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            id: u32,
        }
        let raw = Raw::deserialize(deserializer)?;
        DECODES.fetch_add(1, Ordering::SeqCst);
        Ok(Counted { id: raw.id })
    }
}

#[tokio::test]
async fn json_payloads_are_decoded_once_and_cached() {
    observed();
    let event = Event::with_payload(
        "thing.stored",
        Payload::from_json(serde_json::json!({ "id": 3 })),
    );
    let before = DECODES.load(Ordering::SeqCst);
    assert_eq!(
        unwrap_payload::<Counted>(&event).unwrap(),
        Counted { id: 3 }
    );
    assert_eq!(
        unwrap_payload::<Counted>(&event).unwrap(),
        Counted { id: 3 }
    );
    assert_eq!(
        DECODES.load(Ordering::SeqCst) - before,
        1,
        "the second unwrap used the cache"
    );
    // Clones of the payload share the cache.
    let copy = event.clone();
    assert_eq!(unwrap_payload::<Counted>(&copy).unwrap(), Counted { id: 3 });
    assert_eq!(DECODES.load(Ordering::SeqCst) - before, 1);
    // Decoding into another type still works (and is not confused by the cache).
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    struct Other {
        id: u64,
    }
    assert_eq!(unwrap_payload::<Other>(&event).unwrap(), Other { id: 3 });
    assert!(matches!(
        unwrap_payload::<String>(&event),
        Err(Error::PayloadTypeMismatch { .. })
    ));

    // Through the bus: three typed listeners, one decoding.
    let topic = TypedTopic::<Counted>::new("thing.stored");
    let bus = EventBus::new();
    let seen: Vec<_> = (0..3).map(|_| collect_payloads(&bus, &topic)).collect();
    let before = DECODES.load(Ordering::SeqCst);
    let stored = Payload::from_json(serde_json::json!({ "id": 9 }));
    let errors: Vec<Error> = bus.emit(topic.name(), stored).collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(DECODES.load(Ordering::SeqCst) - before, 1);
    for seen in seen {
        assert_eq!(*seen.lock().unwrap(), [Counted { id: 9 }]);
    }
}

#[tokio::test]
async fn a_payload_that_came_back_from_a_store_reaches_typed_listeners() {
    observed();
    let topic = TypedTopic::<UserEvent>::new("user.created");
    let bus = EventBus::new();
    let seen = collect_payloads(&bus, &topic);
    let original = topic.wrap(user("u5")).unwrap();
    original
        .properties()
        .set(soiree::PROPERTY_EVENT_ID, "evt-5");
    let stored = soiree::StoredEvent::from_event(&original).unwrap();
    let json = serde_json::to_string(&stored).unwrap();
    let back: soiree::StoredEvent = serde_json::from_str(&json).unwrap();
    let errors: Vec<Error> = bus.emit(topic.name(), back.into_event()).collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(*seen.lock().unwrap(), [user("u5")]);
}

#[tokio::test]
async fn payload_as_downcasts_without_decoding() {
    observed();
    let bus = EventBus::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    bus.on("user.created", move |ctx| {
        log.lock().unwrap().push((
            ctx.payload_as::<UserEvent>().cloned(),
            ctx.payload_as::<serde_json::Value>().cloned(),
            ctx.payload_as::<u32>().copied(),
        ));
        async { Ok(()) }
    })
    .unwrap();
    let errors: Vec<Error> = bus.emit("user.created", user("u1")).collect().await;
    assert!(errors.is_empty());
    let json = serde_json::json!({ "id": "u2", "plan": "pro" });
    let errors: Vec<Error> = bus
        .emit("user.created", Payload::from_json(json.clone()))
        .collect()
        .await;
    assert!(errors.is_empty());
    assert_eq!(
        *seen.lock().unwrap(),
        [(Some(user("u1")), None, None), (None, Some(json), None)]
    );
}

#[tokio::test]
async fn bindings_register_through_register_listeners_with_names() {
    observed();
    let topic = TypedTopic::<UserEvent>::new("user.created");
    let bus = EventBus::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let binding = bind_listener(&topic, move |ctx: soiree::EventContext, user: UserEvent| {
        log.lock()
            .unwrap()
            .push((ctx.listener_id().to_string(), user.id));
        async { Ok(()) }
    })
    .named("welcome");
    assert_eq!(binding.pattern(), "user.created");
    let ids = bus.register_listeners([binding]).unwrap();
    assert_eq!(ids, ["welcome"]);
    let errors: Vec<Error> = bus.emit(topic.name(), user("u3")).collect().await;
    assert!(errors.is_empty());
    assert_eq!(
        *seen.lock().unwrap(),
        [("welcome".to_owned(), "u3".to_owned())]
    );
}

/// Records spans named `soiree.observed` with their fields, and the names of
/// their parents.
#[derive(Clone, Default)]
struct Observed {
    spans: Arc<Mutex<Vec<ObservedSpan>>>,
}

/// A span's fields (name, value) and its parent's name.
type ObservedSpan = (Vec<(String, String)>, Option<String>);

struct Fields(Vec<(String, String)>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S> tracing_subscriber::Layer<S> for Observed
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: LayerContext<'_, S>) {
        if attrs.metadata().name() != "soiree.observed" {
            return;
        }
        let mut fields = Fields(Vec::new());
        attrs.record(&mut fields);
        let parent = ctx
            .span(id)
            .and_then(|span| span.parent())
            .map(|parent| parent.name().to_owned());
        self.spans.lock().unwrap().push((fields.0, parent));
    }
}

fn metric_line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|line| line.starts_with(prefix))
}

/// One process-wide subscriber, installed before any test of this binary
/// emits: thread-local subscribers (`set_default`) race with callsites first
/// hit on other test threads, which can leave a callsite disabled.
fn observed() -> &'static Observed {
    static OBSERVED: OnceLock<Observed> = OnceLock::new();
    OBSERVED.get_or_init(|| {
        let observed = Observed::default();
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(observed.clone()),
        )
        .expect("no other global subscriber in this test binary");
        observed
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observability_spec_records_a_span_and_the_duration_histogram() {
    let observed = observed();

    let registry = MetricsRegistry::new();
    let bus = EventBus::builder()
        .metrics_registry(registry.clone())
        .build()
        .unwrap();
    let topic = TypedTopic::<UserEvent>::new("user.signup").with_observability(
        ObservabilitySpec::new("handle_signup", "listeners")
            .with_trigger(|_ctx, user: &UserEvent| format!("plan:{}", user.plan)),
    );
    assert_eq!(topic.observability().unwrap().origin, "listeners");
    bind_listener(&topic, |_ctx, user: UserEvent| async move {
        match user.id.as_str() {
            "bad" => Err("rejected".into()),
            "panic" => panic!("observed panic"),
            _ => Ok(()),
        }
    })
    .register(&bus)
    .unwrap();

    for id in ["ok-1", "ok-2", "bad", "panic"] {
        let errors: Vec<Error> = bus.emit(topic.name(), user(id)).collect().await;
        let expected = usize::from(id == "bad" || id == "panic");
        assert_eq!(errors.len(), expected, "{id}: {errors:?}");
    }
    let errors: Vec<Error> = bus.emit(topic.name(), user("panic")).collect().await;
    assert!(
        matches!(errors.as_slice(), [Error::Panicked { message, .. }] if message == "observed panic")
    );

    let text = registry.encode();
    let series = |outcome: &str| {
        format!(
            r#"soiree_listener_duration_seconds_count{{operation="handle_signup",origin="listeners",outcome="{outcome}"}}"#
        )
    };
    for (outcome, count) in [("success", 2), ("error", 1), ("panic", 2)] {
        let line = metric_line(&text, &series(outcome))
            .unwrap_or_else(|| panic!("no {outcome} series in:\n{text}"));
        assert_eq!(
            line.rsplit(' ').next(),
            Some(count.to_string().as_str()),
            "{line}"
        );
    }
    assert!(
        text.contains("# TYPE soiree_listener_duration_seconds histogram"),
        "{text}"
    );

    // Only this test's spans (the subscriber sees every test's).
    let spans: Vec<ObservedSpan> = observed
        .spans
        .lock()
        .unwrap()
        .iter()
        .filter(|(fields, _)| {
            fields
                .iter()
                .any(|(n, v)| n == "operation" && v == "handle_signup")
        })
        .cloned()
        .collect();
    assert_eq!(spans.len(), 5, "one span per listener run");
    let (fields, parent) = &spans[0];
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("operation"), Some("handle_signup"));
    assert_eq!(field("origin"), Some("listeners"));
    assert_eq!(field("trigger"), Some("plan:pro"));
    assert_eq!(parent.as_deref(), Some("soiree.listener"));
}

#[tokio::test]
async fn typed_topics_without_a_spec_record_no_durations() {
    observed();
    let registry = MetricsRegistry::new();
    let bus = EventBus::builder()
        .metrics_registry(registry.clone())
        .build()
        .unwrap();
    let topic = TypedTopic::<UserEvent>::new("user.quiet");
    collect_payloads(&bus, &topic);
    let errors: Vec<Error> = bus.emit(topic.name(), user("q")).collect().await;
    assert!(errors.is_empty());
    assert!(
        !registry
            .encode()
            .contains("soiree_listener_duration_seconds_count{"),
        "{}",
        registry.encode()
    );
}

mod in_memory {
    use std::sync::Arc;

    use futures::StreamExt;
    use soiree::{Error, EventBus, MemoryStore, TypedTopic, bind_listener};

    /// Not serde: a handle to something live.
    struct Client {
        name: &'static str,
    }

    #[derive(Clone)]
    struct Job {
        id: u32,
        client: Arc<Client>,
    }

    #[tokio::test]
    async fn payloads_without_serde_reach_typed_listeners() {
        let topic = TypedTopic::<Job>::in_memory("job.run");
        let bus = EventBus::new();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        bind_listener(&topic, move |_ctx, job: Job| {
            s.lock().unwrap().push((job.id, job.client.name));
            async { Ok(()) }
        })
        .register(&bus)
        .unwrap();
        let client = Arc::new(Client { name: "billing" });
        let event = topic.wrap(Job { id: 7, client }).unwrap();
        let errors: Vec<_> = bus.emit(topic.name(), event).collect().await;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(*seen.lock().unwrap(), [(7, "billing")]);
    }

    #[tokio::test]
    async fn a_store_refuses_them_with_a_clear_error() {
        let topic = TypedTopic::<Job>::in_memory("job.run");
        let bus = EventBus::builder()
            .store(MemoryStore::new())
            .build()
            .unwrap();
        bind_listener(&topic, |_ctx, _job: Job| async { Ok(()) })
            .register(&bus)
            .unwrap();
        let job = Job {
            id: 1,
            client: Arc::new(Client { name: "x" }),
        };
        let mut emission = bus.emit(topic.name(), topic.wrap(job).unwrap());
        let err = emission.persisted().await.unwrap_err();
        assert!(matches!(err, Error::Serialization(_)), "{err:?}");
        assert!(err.to_string().contains("Job"), "{err}");
    }

    #[tokio::test]
    async fn a_json_payload_is_a_type_mismatch_not_a_panic() {
        let topic = TypedTopic::<Job>::in_memory("job.run");
        let event = soiree::Event::new("job.run", serde_json::json!({ "id": 1 }));
        let err = topic
            .unwrap(&event)
            .err()
            .expect("no Job in a JSON payload");
        assert!(matches!(err, Error::PayloadTypeMismatch { .. }), "{err:?}");
    }
}
