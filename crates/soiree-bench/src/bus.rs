//! The bus each scenario starts from, and the timed emit most of them
//! measure.

use std::time::{Duration, Instant};

use soiree::{EventBus, EventStore, MetricsRegistry};

use super::calls::Calls;
use crate::error::Result;

/// The bus's worker count in every in-memory scenario (the default).
pub(crate) const WORKERS: usize = 10;

/// A fresh bus with its own metrics registry, so that one scenario after
/// another does not grow the process-wide one.
///
/// # Errors
///
/// The bus's configuration error (none for these options).
pub(crate) fn fresh_bus() -> Result<EventBus> {
    Ok(EventBus::builder()
        .workers(WORKERS)
        .pool_name("bench")
        .metrics_registry(MetricsRegistry::new())
        .build()?)
}

/// Emits `n` events of `topic` (each its number) without awaiting them,
/// waits until the bus is idle and closes it; the time from the first
/// emit until idle.
///
/// # Errors
///
/// The bus's error on closing.
pub(crate) async fn emit_until_idle(bus: EventBus, topic: &str, n: u64) -> Result<Duration> {
    let start = Instant::now();
    for i in 0..n {
        bus.emit_async(topic, i).await.detach();
    }
    bus.wait_for_idle().await;
    let elapsed = start.elapsed();
    bus.close().await?;
    Ok(elapsed)
}

/// The durable scenarios' run: a bus of `workers` over `store` with one
/// counting listener on `topic`, `n` events through it
/// ([`emit_until_idle`]); the time and the listener's calls.
///
/// # Errors
///
/// The bus's error on building, starting or closing.
pub(crate) async fn count_through<S>(
    store: &S,
    workers: usize,
    topic: &str,
    n: u64,
) -> Result<(Duration, u64)>
where
    S: EventStore + Clone + 'static,
{
    let bus = EventBus::builder()
        .store(store.clone())
        .workers(workers)
        .pool_name("bench")
        .metrics_registry(MetricsRegistry::new())
        .build()?;
    let calls = Calls::default();
    bus.on(topic, calls.listener())?;
    bus.start()?;
    let elapsed = emit_until_idle(bus, topic, n).await?;
    Ok((elapsed, calls.get()))
}
