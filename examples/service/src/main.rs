//! The example service's binary: `cargo run -p soiree-example-service --
//! [--listen ADDR] [--database URL]`. Prints `listening on http://ADDR`
//! once it takes requests; on SIGTERM or ctrl-c it stops taking requests,
//! closes the bus (the accepted events are handled first) and exits 0.

use std::process::ExitCode;

use soiree::{BoxError, EventBus, MetricsRegistry};
use soiree_example_service::config::Config;
use soiree_example_service::db::Db;
use soiree_example_service::http::{Shop, router};
use soiree_example_service::listeners;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::parse(std::env::args().skip(1), std::env::var("DATABASE_URL").ok()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("soiree-example-service: {err}");
            return ExitCode::from(2);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("soiree-example-service: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), BoxError> {
    let registry = MetricsRegistry::new();
    let db = Db::open(&config.database, &registry).await?;
    let bus = EventBus::builder()
        .shared_store(db.event_store())
        .metrics_registry(registry.clone())
        .pool_name("shop")
        .build()?;
    listeners::register(&bus, &db)?;
    // Every listener is registered: only now does the bus take events.
    bus.start()?;

    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", config.listen))?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(Shop { db, registry }))
        .with_graceful_shutdown(shutdown_signal())
        .await?;

    // No request is in flight any more: hand the accepted events to the
    // listeners, then stop.
    tracing::info!("closing the bus");
    bus.close().await?;
    println!("stopped");
    Ok(())
}

/// Resolves on ctrl-c (SIGINT) or SIGTERM (what orchestrators send first).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: no new requests");
}
