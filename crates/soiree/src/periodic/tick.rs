//! The event of one tick: the same id and unique key in every process, so
//! that a tick fired twice (by a new leader after a failover) is stored
//! once.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::{Event, PROPERTY_EVENT_ID, Result};

/// The property of a periodic event that names its schedule.
pub const PROPERTY_SCHEDULE: &str = "soiree.schedule";

/// The property of a periodic event that holds its tick: the time it was
/// due, as an RFC 3339 string in UTC (as [`PROPERTY_DUE_AT`](crate::PROPERTY_DUE_AT)).
pub const PROPERTY_TICK: &str = "soiree.tick";

/// How long a tick's unique key holds at least.
const MIN_WINDOW: Duration = Duration::from_secs(86_400);

/// The event id of the tick `tick_ms` of schedule `name`.
pub(crate) fn tick_id(name: &str, tick_ms: i64) -> String {
    format!("{name}@{tick_ms}")
}

/// The event of one tick, with its id and, when `unique` is given, its
/// unique key held for that window.
pub(crate) fn tick_event(
    topic: &str,
    payload: &Value,
    name: &str,
    tick_ms: i64,
    unique: Option<Duration>,
) -> Result<Event> {
    let id = tick_id(name, tick_ms);
    let tick = SystemTime::UNIX_EPOCH + Duration::from_millis(tick_ms.unsigned_abs());
    let event = Event::new(topic, payload.clone());
    let properties = event.properties();
    properties.set(PROPERTY_EVENT_ID, id.clone());
    properties.set(PROPERTY_SCHEDULE, name);
    properties.set(PROPERTY_TICK, crate::schedule::format_due(tick)?);
    Ok(match unique {
        Some(window) => event.unique_key(format!("soiree.tick:{id}"), window),
        None => event,
    })
}

/// How long a tick's unique key must hold: past the latest time a tick
/// can be fired again (a leader that lost its lease unaware, a new one
/// catching up `max` ticks late), with a day at least.
pub(crate) fn unique_window(period: Duration, max: u32, ttl: Duration) -> Duration {
    let catch_up = period.saturating_mul(max.saturating_add(1));
    MIN_WINDOW.max(catch_up.saturating_add(ttl.saturating_mul(4)))
}
