//! Trace context across processes (feature `otel`): an event that goes
//! through a store carries its emitter's trace, and the consuming bus's
//! listener span continues it.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use soiree::{EventBus, MemoryStore};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_events_listener_span_continues_the_emitters_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per test binary");

    // Two buses over one queue: a producer and a consumer, as two processes
    // would share a Redis stream or an SQL outbox.
    let queue = Arc::new(MemoryStore::queue());
    let producer = EventBus::builder()
        .shared_store(queue.clone())
        .consume(false)
        .build()
        .unwrap();
    let consumer = EventBus::builder()
        .shared_store(queue.clone())
        .poll_wait(Duration::from_millis(20))
        .build()
        .unwrap();
    consumer
        .on_named("mailer", "user.created", |_ctx| async { Ok(()) })
        .unwrap();
    consumer.start().unwrap();

    let request = tracing::info_span!("http.request");
    async {
        let mut emission = producer.emit("user.created", "ada");
        emission.persisted().await.unwrap();
    }
    .instrument(request)
    .await;
    tokio::time::timeout(LIMIT, consumer.wait_for_idle())
        .await
        .expect("handled in time");
    producer.close().await.unwrap();
    consumer.close().await.unwrap();
    let _ = provider.force_flush();

    let spans = exporter.get_finished_spans().unwrap();
    let find = |name: &str| {
        spans
            .iter()
            .find(|span| span.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "no {name} span in {:?}",
                    spans.iter().map(|s| &s.name).collect::<Vec<_>>()
                )
            })
    };
    let request = find("http.request");
    let listener = find("soiree.listener");
    assert_eq!(
        listener.span_context.trace_id(),
        request.span_context.trace_id(),
        "the listener's span is in the emitter's trace"
    );
    let delivery = find("soiree.delivery");
    assert_eq!(delivery.parent_span_id, request.span_context.span_id());
}
