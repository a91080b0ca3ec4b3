//! Serving a bus's metrics to Prometheus with axum: `GET /metrics` answers
//! the OpenMetrics text exposition with its content type. Serves on a free
//! loopback port, scrapes itself once, prints what it got, and exits.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use soiree::{EventBus, MetricsRegistry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The content type of the OpenMetrics text format, which
/// `MetricsRegistry::encode` writes (counters end in `_total`, and the
/// exposition ends in `# EOF`).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics(State(registry): State<Arc<MetricsRegistry>>) -> impl IntoResponse {
    ([(CONTENT_TYPE, OPENMETRICS)], registry.encode())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = MetricsRegistry::new();
    let bus = EventBus::builder()
        .metrics_registry(registry.clone())
        .pool_name("orders")
        .build()?;
    bus.on_named("receipt", "order.paid", |_ctx| async { Ok(()) })?;
    bus.start()?;
    for order in 0..3 {
        bus.emit_async("order.paid", order).await.detach();
    }
    bus.wait_for_idle().await;

    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(Arc::new(registry));
    // Loopback only: metrics can say more about a service than it should
    // tell the world.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // What Prometheus would do.
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    assert!(response.contains(OPENMETRICS), "{response}");
    assert!(response.contains(r#"soiree_listener_calls_total{pool="orders",pattern="order.paid",listener="receipt",outcome="ok"} 3"#), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    for line in body.lines().filter(|line| line.contains("orders")) {
        println!("{line}");
    }

    server.abort();
    bus.close().await?;
    Ok(())
}
