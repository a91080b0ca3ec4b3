//! The request context: cancellation and deadlines skip listeners (reported as
//! `Cancelled`), extensions reach listeners, and the emitter's tracing span is
//! the parent of the listener spans.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use soiree::{Context, Error, EventBus};
use tokio_util::sync::CancellationToken;
use tracing::span;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

type Log = Arc<Mutex<Vec<String>>>;

fn recorder(bus: &EventBus, name: &'static str, pattern: &str, log: &Log) {
    let log = Arc::clone(log);
    bus.on_named(name, pattern, move |_ctx| {
        log.lock().unwrap().push(name.to_owned());
        async { Ok(()) }
    })
    .unwrap();
}

fn cancelled_ids(errors: &[Error]) -> Vec<String> {
    errors
        .iter()
        .map(|err| match err {
            Error::Cancelled { listener_id } => listener_id.to_string(),
            other => panic!("expected Cancelled, got {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_context_cancelled_before_dispatch_skips_every_listener() {
    span_tree();
    let bus = EventBus::new();
    let log = Log::default();
    recorder(&bus, "first", "a.b", &log);
    recorder(&bus, "second", "a.*", &log);
    recorder(&bus, "third", "**", &log);
    let token = CancellationToken::new();
    token.cancel();
    let context = Context::new().with_cancellation(token);
    let errors: Vec<Error> = bus.emit_with_context(context, "a.b", ()).collect().await;
    assert_eq!(cancelled_ids(&errors), ["first", "second", "third"]);
    assert!(log.lock().unwrap().is_empty(), "no listener ran");
}

#[tokio::test]
async fn cancelling_mid_emission_skips_the_listeners_not_yet_started() {
    span_tree();
    let bus = EventBus::new();
    let log = Log::default();
    let token = CancellationToken::new();
    recorder(&bus, "first", "a.b", &log);
    {
        let (log, token) = (Arc::clone(&log), token.clone());
        bus.on_named("canceller", "a.*", move |ctx| {
            log.lock().unwrap().push("canceller".to_owned());
            assert!(!ctx.context().is_done());
            token.cancel();
            assert!(ctx.context().is_done());
            async { Ok(()) }
        })
        .unwrap();
    }
    recorder(&bus, "third", "**", &log);
    recorder(&bus, "fourth", "**", &log);
    let context = Context::new().with_cancellation(token.clone());
    let errors: Vec<Error> = bus.emit_with_context(context, "a.b", ()).collect().await;
    assert_eq!(cancelled_ids(&errors), ["third", "fourth"]);
    assert_eq!(*log.lock().unwrap(), ["first", "canceller"]);
    assert_eq!(
        Context::new()
            .with_cancellation(token)
            .cancellation_token()
            .map(CancellationToken::is_cancelled),
        Some(true)
    );
}

#[tokio::test]
async fn a_passed_deadline_skips_every_listener() {
    span_tree();
    let bus = EventBus::new();
    let log = Log::default();
    recorder(&bus, "first", "job", &log);
    recorder(&bus, "second", "*", &log);
    let deadline = tokio::time::Instant::now();
    let context = Context::new().with_deadline(deadline);
    assert_eq!(context.deadline(), Some(deadline));
    let errors: Vec<Error> = bus.emit_with_context(context, "job", ()).collect().await;
    assert_eq!(cancelled_ids(&errors), ["first", "second"]);
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_deadline_passing_mid_emission_skips_the_rest() {
    span_tree();
    let bus = EventBus::new();
    let log = Log::default();
    {
        let log = Arc::clone(&log);
        bus.on_named("slow", "job", move |_ctx| {
            let log = Arc::clone(&log);
            async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                log.lock().unwrap().push("slow".to_owned());
                Ok(())
            }
        })
        .unwrap();
    }
    recorder(&bus, "late", "*", &log);
    let context = Context::new().with_timeout(Duration::from_secs(1));
    let errors: Vec<Error> = bus.emit_with_context(context, "job", ()).collect().await;
    assert_eq!(cancelled_ids(&errors), ["late"]);
    assert_eq!(*log.lock().unwrap(), ["slow"]);
}

#[tokio::test]
async fn a_live_context_runs_every_listener() {
    span_tree();
    let bus = EventBus::new();
    let log = Log::default();
    recorder(&bus, "first", "job", &log);
    let context = Context::new()
        .with_cancellation(CancellationToken::new())
        .with_timeout(Duration::from_secs(3600));
    let errors: Vec<Error> = bus.emit_with_context(context, "job", ()).collect().await;
    assert!(errors.is_empty());
    assert_eq!(*log.lock().unwrap(), ["first"]);
}

#[derive(Debug, PartialEq)]
struct TenantId(u64);

#[derive(Debug, PartialEq)]
struct RequestId(&'static str);

#[tokio::test]
async fn extensions_reach_every_listener() {
    span_tree();
    let bus = EventBus::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for pattern in ["tenant.created", "tenant.*"] {
        let seen = Arc::clone(&seen);
        bus.on(pattern, move |ctx| {
            let context = ctx.context();
            seen.lock().unwrap().push((
                context.extension::<TenantId>().map(|t| t.0),
                context.extension::<RequestId>().map(|r| r.0),
                context.extension::<String>().cloned(),
            ));
            async { Ok(()) }
        })
        .unwrap();
    }
    let context = Context::new()
        .with_extension(TenantId(1))
        .with_extension(RequestId("req-9"))
        // A second value of a type replaces the first.
        .with_extension(TenantId(42));
    let errors: Vec<Error> = bus
        .emit_with_context(context, "tenant.created", ())
        .collect()
        .await;
    assert!(errors.is_empty());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (Some(42), Some("req-9"), None),
            (Some(42), Some("req-9"), None)
        ]
    );

    // A plain emit has no extensions.
    seen.lock().unwrap().clear();
    let errors: Vec<Error> = bus.emit("tenant.created", ()).collect().await;
    assert!(errors.is_empty());
    assert_eq!(seen.lock().unwrap()[0], (None, None, None));
}

/// Records every new span: its name and id, and its parent's id and name.
#[derive(Clone, Default)]
struct SpanTree {
    spans: Arc<Mutex<Vec<SpanRecord>>>,
}

#[derive(Clone, Debug)]
struct SpanRecord {
    name: &'static str,
    id: span::Id,
    parent: Option<(span::Id, &'static str)>,
}

impl<S> tracing_subscriber::Layer<S> for SpanTree
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: LayerContext<'_, S>) {
        let parent = ctx
            .span(id)
            .and_then(|span| span.parent())
            .map(|p| (p.id(), p.name()));
        self.spans.lock().unwrap().push(SpanRecord {
            name: attrs.metadata().name(),
            id: id.clone(),
            parent,
        });
    }
}

impl SpanTree {
    /// The listener spans whose parent is named `parent` (each test names its
    /// root span uniquely), in creation order.
    fn listeners_under(&self, parent: &str) -> Vec<SpanRecord> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|r| {
                r.name == "soiree.listener" && r.parent.as_ref().is_some_and(|p| p.1 == parent)
            })
            .cloned()
            .collect()
    }
}

/// One process-wide subscriber, installed before any test of this binary
/// emits: thread-local subscribers (`set_default`) race with callsites first
/// hit on other test threads, which can leave a callsite disabled.
fn span_tree() -> &'static SpanTree {
    static TREE: OnceLock<SpanTree> = OnceLock::new();
    TREE.get_or_init(|| {
        let tree = SpanTree::default();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(tree.clone()))
            .expect("no other global subscriber in this test binary");
        tree
    })
}

fn parent_ids(records: &[SpanRecord]) -> Vec<span::Id> {
    records
        .iter()
        .filter_map(|r| r.parent.as_ref().map(|p| p.0.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emitters_span_is_the_parent_of_the_listener_spans() {
    let tree = span_tree();
    let bus = EventBus::new();
    let inside: Arc<Mutex<Vec<Option<span::Id>>>> = Arc::default();
    for pattern in ["order.placed", "order.*"] {
        let inside = Arc::clone(&inside);
        bus.on(pattern, move |_ctx| {
            // Inside the listener, the current span is its own span.
            let current = tracing::Span::current();
            let name = current.metadata().map(|m| m.name());
            inside.lock().unwrap().push(current.id());
            async move {
                if name != Some("soiree.listener") {
                    return Err(format!("the current span is {name:?}").into());
                }
                Ok(())
            }
        })
        .unwrap();
    }

    // emit: the caller's current span.
    let request = tracing::info_span!("emit_request");
    let emission = request.in_scope(|| bus.emit("order.placed", ()));
    let errors: Vec<Error> = emission.collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    let request_id = request.id().expect("the span is enabled");
    let under_request = tree.listeners_under("emit_request");
    assert_eq!(parent_ids(&under_request), [request_id.clone(), request_id]);

    // emit_with_context: the context's span, wherever emit is called from.
    let job = tracing::info_span!("context_job");
    let context = Context::new().with_span(job.clone());
    let errors: Vec<Error> = request
        .in_scope(|| bus.emit_with_context(context, "order.placed", ()))
        .collect()
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    let job_id = job.id().expect("the span is enabled");
    let under_job = tree.listeners_under("context_job");
    assert_eq!(parent_ids(&under_job), [job_id.clone(), job_id]);
    assert_eq!(
        tree.listeners_under("emit_request").len(),
        2,
        "none more under the caller's span"
    );

    // The span current inside each listener is one of those listener spans.
    let recorded: Vec<span::Id> = under_request
        .iter()
        .chain(&under_job)
        .map(|r| r.id.clone())
        .collect();
    let inside = inside.lock().unwrap().clone();
    assert_eq!(inside.len(), 4);
    for id in inside {
        assert!(recorded.contains(&id.expect("listener span enabled")));
    }
}

#[tokio::test]
async fn a_context_built_inside_a_span_carries_it() {
    let tree = span_tree();
    let bus = EventBus::new();
    bus.on("x", |_ctx| async { Ok(()) }).unwrap();
    let handler = tracing::info_span!("context_handler");
    let context = handler.in_scope(Context::new);
    // Emitted outside the span: the context still names it.
    let errors: Vec<Error> = bus.emit_with_context(context, "x", ()).collect().await;
    assert!(errors.is_empty());
    let under = tree.listeners_under("context_handler");
    assert_eq!(
        parent_ids(&under),
        [handler.id().expect("the span is enabled")]
    );
}
