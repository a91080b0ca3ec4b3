//! Trace context across processes through Redis: the producer's trace id
//! reaches the consumer's listener span (soiree feature `otel`).

mod support;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use soiree::EventBus;
use support::builder;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_delivered_events_listener_continues_the_producers_trace() {
    let server = server_or_skip!();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per test binary");

    let producer = EventBus::builder()
        .store(builder(&server, "producer").build().await.unwrap())
        .consume(false)
        .build()
        .unwrap();
    let consumer = EventBus::builder()
        .store(builder(&server, "consumer").build().await.unwrap())
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    consumer
        .on_named("mailer", "user.created", |_ctx| async { Ok(()) })
        .unwrap();
    consumer.start().unwrap();

    let request = tracing::info_span!("http.request");
    async {
        let mut emission = producer.emit("user.created", "ada");
        tokio::time::timeout(LIMIT, emission.persisted())
            .await
            .expect("stored in time")
            .unwrap();
    }
    .instrument(request)
    .await;
    tokio::time::timeout(LIMIT, consumer.wait_for_idle())
        .await
        .expect("handled in time");
    tokio::time::timeout(LIMIT, producer.close())
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(LIMIT, consumer.close())
        .await
        .unwrap()
        .unwrap();
    let _ = provider.force_flush();

    let spans = exporter.get_finished_spans().unwrap();
    let trace_of = |name: &str| {
        spans
            .iter()
            .find(|span| span.name == name)
            .unwrap_or_else(|| panic!("no {name} span"))
            .span_context
            .trace_id()
    };
    assert_eq!(trace_of("soiree.listener"), trace_of("http.request"));
}
