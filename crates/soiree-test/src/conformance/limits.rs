//! Checks of listener limits shared by a store's processes
//! ([`SharedLimits`](soiree::SharedLimits)): slots bound a key's holders,
//! even under concurrent takers, free on release and expiry; a rate admits
//! `count` per period. Stores without them skip, as declared.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use soiree::{EventBus, EventContext, EventStore, ListenerBinding, SlotHold};

use super::support::{ok, unique_id, within};
use super::{Conformance, Outcome};

const NO_LIMITS: &str = super::Ability::SharedLimits.missing();
const LONG: Duration = Duration::from_secs(3600);

/// A key's slots: `limit` are taken and no more; a released slot is taken
/// again; an expired one is freed; of concurrent takers exactly `limit`
/// win; renewing keeps a slot past its first expiry. A rate of 1 per hour
/// admits one run, refuses the next with a wait of at most the hour, and
/// admits exactly one of concurrent takers of a fresh key.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn shared_limits_bound_slots_and_rates(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    let Some(limits) = store.limits() else {
        return Outcome::Skipped(NO_LIMITS);
    };
    let key = unique_id("slots");
    let take = |key: &str, holder: &str, ttl: Duration| {
        let (key, holder) = (key.to_owned(), holder.to_owned());
        async move {
            ok(
                "acquire_slot",
                within(
                    config,
                    "acquire_slot",
                    limits.acquire_slot(&key, 2, &holder, ttl),
                )
                .await,
            )
        }
    };
    assert!(
        take(&key, "a", LONG).await,
        "the first of 2 slots was refused"
    );
    assert!(
        take(&key, "b", LONG).await,
        "the second of 2 slots was refused"
    );
    assert!(
        !take(&key, "c", LONG).await,
        "a third holder took one of 2 slots"
    );
    let a = SlotHold {
        key: key.clone(),
        holder: "a".into(),
    };
    ok(
        "release_slot",
        within(config, "release_slot", limits.release_slot(&a)).await,
    );
    assert!(take(&key, "c", LONG).await, "a released slot was not freed");
    assert!(!take(&key, "d", LONG).await, "a freed slot was taken twice");

    // Expiry: a short slot frees itself; a renewed one does not.
    let short = Duration::from_millis(300);
    let expiring = unique_id("expiring");
    let renewed = unique_id("renewed");
    assert!(take(&expiring, "a", short).await);
    assert!(take(&expiring, "b", short).await);
    assert!(take(&renewed, "a", short).await);
    assert!(take(&renewed, "b", short).await);
    let held: Vec<SlotHold> = ["a", "b"]
        .iter()
        .map(|holder| SlotHold {
            key: renewed.clone(),
            holder: (*holder).into(),
        })
        .collect();
    ok(
        "renew_slots",
        within(config, "renew_slots", limits.renew_slots(&held, LONG)).await,
    );
    tokio::time::sleep(short * 2).await;
    assert!(
        take(&expiring, "c", LONG).await,
        "an expired slot was not freed"
    );
    assert!(
        !take(&renewed, "c", LONG).await,
        "a renewed slot expired at its first expiry"
    );

    // Concurrent takers of one key: exactly the limit win.
    let racing = unique_id("racing");
    let holders: Vec<String> = (0..8).map(|n| format!("holder-{n}")).collect();
    let answers = within(
        config,
        "concurrent acquire_slot",
        join_all(
            holders
                .iter()
                .map(|holder| limits.acquire_slot(&racing, 3, holder, LONG)),
        ),
    )
    .await;
    let won = answers
        .into_iter()
        .map(|answer| ok("acquire_slot", answer))
        .filter(|won| *won)
        .count();
    assert_eq!(won, 3, "concurrent takers of 3 slots: {won} won");

    // Rates.
    let rate = unique_id("rate");
    let first = ok(
        "take_rate",
        within(config, "take_rate", limits.take_rate(&rate, 1, LONG)).await,
    );
    assert_eq!(first, None, "the first run of a rate was refused");
    let second = ok(
        "take_rate",
        within(config, "take_rate", limits.take_rate(&rate, 1, LONG)).await,
    );
    let wait = second.expect("a second run within the period was admitted");
    assert!(
        wait > Duration::ZERO && wait <= LONG,
        "the wait {wait:?} is not within the period"
    );
    let fresh = unique_id("rate-race");
    let answers = within(
        config,
        "concurrent take_rate",
        join_all((0..8).map(|_| limits.take_rate(&fresh, 1, LONG))),
    )
    .await;
    let admitted = answers
        .into_iter()
        .map(|answer| ok("take_rate", answer))
        .filter(Option::is_none)
        .count();
    assert_eq!(
        admitted, 1,
        "concurrent takers of a rate of 1: {admitted} admitted"
    );
    Outcome::Passed
}

/// Two buses on the store run a listener registered under one name with
/// `max_concurrent(1)`: never two of its runs at once, and every event runs.
///
/// # Panics
///
/// When the store does not keep that promise.
pub async fn buses_share_a_listener_limit(
    store: Arc<dyn EventStore>,
    config: &Conformance,
) -> Outcome {
    if store.limits().is_none() {
        return Outcome::Skipped(NO_LIMITS);
    }
    let topic = format!("conformance.limits.{}", unique_id("t").replace('-', "_"));
    let name = unique_id("limited");
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let mut buses = Vec::new();
    for _ in 0..2 {
        let bus = ok(
            "build a bus",
            EventBus::builder()
                .workers(4)
                .shared_store(Arc::clone(&store))
                .build(),
        );
        let (now, max, seen) = (Arc::clone(&in_flight), Arc::clone(&most), Arc::clone(&seen));
        ok(
            "register",
            ListenerBinding::new(topic.as_str(), move |ctx: EventContext| {
                let (now, max, seen) = (Arc::clone(&now), Arc::clone(&max), Arc::clone(&seen));
                async move {
                    let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(running, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    seen.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(ctx.event_id().unwrap_or_default());
                    Ok(())
                }
            })
            .named(name.as_str())
            .max_concurrent(1)
            .register(&bus),
        );
        buses.push(bus);
    }
    for bus in &buses {
        ok("start", bus.start());
    }
    const EVENTS: usize = 12;
    for n in 0..EVENTS {
        let mut emission = buses[n % 2].emit(&topic, n);
        ok("emit", within(config, "emit", emission.persisted()).await);
        emission.detach();
    }
    let all_ran = async {
        loop {
            let count = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len();
            if count >= EVENTS {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    within(config, "every limited run", all_ran).await;
    for bus in &buses {
        ok("close", within(config, "close", bus.close()).await);
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "two runs of a listener limited to 1 ran at once across buses"
    );
    Outcome::Passed
}
