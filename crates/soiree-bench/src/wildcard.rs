//! wildcard-1k: 1000 patterns (for each of 333 services an exact one, a `*`
//! one and a `**` one, plus a global `**`); N events spread over the
//! services. Each event must reach exactly four listeners, most specific
//! first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use futures::FutureExt;
use futures::future::{Ready, ready};
use soiree::{BoxError, EventContext};

use super::bus::fresh_bus;
use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use crate::error::Result;

pub(super) const SCENARIO: Scenario = Scenario {
    name: "wildcard-1k",
    default_n: 100_000,
    needs: Needs::Memory,
    run: |setup| run(setup).boxed(),
};

const SERVICES: u64 = 333;
/// Listeners each event reaches, in dispatch order.
const LEVELS: u8 = 4;

async fn run(setup: Setup) -> Result<Report> {
    let bus = fresh_bus()?;
    let seen = Arc::new(Seen::new(setup.n));
    for svc in 0..SERVICES {
        // Registered least specific first, so that only the bus's ordering
        // can put them right.
        bus.on(&format!("svc{svc}.**"), seen.listener(2, Some(svc)))?;
        bus.on(&format!("svc{svc}.*.created"), seen.listener(1, Some(svc)))?;
        bus.on(
            &format!("svc{svc}.user.created"),
            seen.listener(0, Some(svc)),
        )?;
    }
    bus.on("**", seen.listener(3, None))?;
    let topics: Vec<String> = (0..SERVICES)
        .map(|svc| format!("svc{svc}.user.created"))
        .collect();

    let start = Instant::now();
    for (i, topic) in (0..setup.n).zip(topics.iter().cycle()) {
        bus.emit_async(topic, i).await.detach();
    }
    bus.wait_for_idle().await;
    let elapsed = start.elapsed();
    bus.close().await?;

    let invocations: u64 = seen
        .stages
        .iter()
        .map(|stage| u64::from(stage.load(Ordering::Relaxed)))
        .sum();
    let incomplete = seen
        .stages
        .iter()
        .filter(|stage| stage.load(Ordering::Relaxed) != LEVELS)
        .count();
    let misordered = seen.misordered.load(Ordering::Relaxed);
    let misrouted = seen.misrouted.load(Ordering::Relaxed);
    Ok(Report::new(&setup, elapsed, setup.n)
        .count("invocations", invocations)
        .check(incomplete == 0, || {
            format!("{incomplete} events did not reach their {LEVELS} listeners")
        })
        .check(misordered == 0, || {
            format!("{misordered} invocations out of specificity order")
        })
        .check(misrouted == 0, || {
            format!("{misrouted} invocations of another service's listener")
        }))
}

/// How far each event got through its listeners.
struct Seen {
    /// Per event: how many of its listeners ran, in order, so far.
    stages: Vec<AtomicU8>,
    misordered: AtomicU64,
    misrouted: AtomicU64,
}

impl Seen {
    fn new(n: u64) -> Self {
        Self {
            stages: (0..n).map(|_| AtomicU8::new(0)).collect(),
            misordered: AtomicU64::new(0),
            misrouted: AtomicU64::new(0),
        }
    }

    /// The listener at dispatch position `level`, for one service or all.
    fn listener(
        self: &Arc<Self>,
        level: u8,
        svc: Option<u64>,
    ) -> impl Fn(EventContext) -> Ready<Result<(), BoxError>> + Send + Sync + 'static {
        let seen = Arc::clone(self);
        move |ctx| {
            seen.record(&ctx, level, svc);
            ready(Ok(()))
        }
    }

    fn record(&self, ctx: &EventContext, level: u8, svc: Option<u64>) {
        let Some(&event) = ctx.payload_as::<u64>() else {
            self.misrouted.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let stage = usize::try_from(event).ok().and_then(|i| self.stages.get(i));
        let Some(stage) = stage.filter(|_| svc.is_none_or(|svc| event % SERVICES == svc)) else {
            self.misrouted.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // Listeners of one emission run one after another, so the stage moves
        // 0 → 1 → 2 → 3 → 4 exactly when each ran once, in order.
        if stage
            .compare_exchange(level, level + 1, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.misordered.fetch_add(1, Ordering::Relaxed);
        }
    }
}
