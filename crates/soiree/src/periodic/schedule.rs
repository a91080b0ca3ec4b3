//! A named schedule: when its ticks fall, what happens to missed ones,
//! and how long its leader's lease lives.

use std::time::Duration;

use super::MissedTicks;
use super::timing::Timing;
use crate::{Error, Result};

/// The default time to live of a schedule's leader lease.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);

/// The shortest time to live of a leader lease.
pub const MIN_LEASE_TTL: Duration = Duration::from_millis(100);

/// When a periodic event fires, under a name stable across processes:
/// every interval ([`Schedule::every`]) or at the times of a cron
/// expression ([`Schedule::cron`]). Start one with
/// [`EventBus::schedule`](crate::EventBus::schedule).
///
/// On a bus whose store has [leader leases](crate::LeaderLease), every
/// process may start the same schedule (same name): the one holding the
/// lease named after it fires each tick, once.
///
/// # Once per tick
///
/// The process holding the lease fires each due tick: it emits the tick's
/// event, whose id and unique key are made of the schedule's name and the
/// tick's time ([`PROPERTY_TICK`](crate::PROPERTY_TICK)), waits until it
/// is stored, and records the tick with the lease
/// ([`Lease::progress`](crate::Lease::progress)). When the leader dies,
/// its lease expires and another process takes it over; it goes on from
/// the last tick recorded, firing the ticks missed meanwhile as
/// [`MissedTicks`] says. A tick the dead leader stored but had not yet
/// recorded is fired again, and its unique key (held for a day at least)
/// stores nothing the second time: each tick is stored once.
///
/// # Waits
///
/// The leader renews its lease every third of the lease's time to live
/// ([`lease_ttl`](Self::lease_ttl), 15 s by default), and stops firing
/// when it could not renew within the time to live. The others try to
/// take the lease every third of the time to live: when a leader dies,
/// another fires again within the time to live plus a third of it (20 s
/// by default), and fires the ticks missed meanwhile as
/// [`missed`](Self::missed) says.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use soiree::{MissedTicks, Schedule};
///
/// # fn main() -> soiree::Result<()> {
/// let hourly = Schedule::cron("hourly-report", "0 * * * *")?
///     .missed(MissedTicks::CatchUp { max: 24 })
///     .lease_ttl(Duration::from_secs(30));
/// assert_eq!(hourly.name(), "hourly-report");
/// let sweep = Schedule::every("cache-sweep", Duration::from_secs(60));
/// assert_eq!(sweep.missed_ticks(), MissedTicks::Skip);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Schedule {
    name: String,
    timing: std::result::Result<Timing, String>,
    missed: MissedTicks,
    lease_ttl: Duration,
}

impl Schedule {
    /// Ticks every `interval`, at the multiples of it since the Unix epoch
    /// (every minute: on the minute), so that every process computes the
    /// same ticks. An interval under a millisecond is refused when the
    /// schedule starts.
    pub fn every(name: impl Into<String>, interval: Duration) -> Self {
        Self::with(name.into(), Timing::every(interval).map_err(message))
    }

    /// Ticks at the times of a cron expression, in UTC (or the zone of
    /// [`time_zone`](Self::time_zone)): five fields
    /// (minute, hour, day of month, month, day of week) or six with
    /// seconds first, with the OCPS extensions (`L`, `W`, `#`, `@hourly`,
    /// …) of the `croner` crate.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `expression` is not a cron expression.
    pub fn cron(name: impl Into<String>, expression: &str) -> Result<Self> {
        let timing = Timing::cron(expression)?;
        Ok(Self::with(name.into(), Ok(timing)))
    }

    fn with(name: String, timing: std::result::Result<Timing, String>) -> Self {
        Self {
            name,
            timing,
            missed: MissedTicks::default(),
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }

    /// What to do with ticks that passed unfired ([`MissedTicks::Skip`] by
    /// default).
    #[must_use]
    pub fn missed(mut self, missed: MissedTicks) -> Self {
        self.missed = missed;
        self
    }

    /// The time to live of the leader's lease (15 s by default, at least
    /// [`MIN_LEASE_TTL`]): how long the processes wait for a silent leader
    /// before another takes over.
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// The time zone of a cron schedule's expression (UTC by default): an
    /// expression of "9:00 on weekdays" fires at 9:00 there, through
    /// daylight saving changes as the `croner` crate resolves them. Make
    /// the zone with `jiff` (0.2): `jiff::tz::TimeZone::get("Europe/Paris")`
    /// with its time zone database features, or a fixed offset. No effect
    /// on an interval schedule, whose ticks are in no zone.
    ///
    /// # Examples
    ///
    /// ```
    /// use jiff::tz::{Offset, TimeZone};
    /// use soiree::Schedule;
    ///
    /// # fn main() -> soiree::Result<()> {
    /// let zone = TimeZone::fixed(Offset::from_hours(2).expect("an offset"));
    /// let morning = Schedule::cron("morning-digest", "0 9 * * MON-FRI")?.time_zone(zone);
    /// assert_eq!(morning.name(), "morning-digest");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn time_zone(mut self, zone: jiff::tz::TimeZone) -> Self {
        if let Ok(Timing::Cron { zone: current, .. }) = &mut self.timing {
            *current = zone;
        }
        self
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What happens to missed ticks.
    pub fn missed_ticks(&self) -> MissedTicks {
        self.missed
    }

    /// The leader lease's time to live.
    pub fn ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// The checked parts, for the runner.
    pub(crate) fn checked(&self) -> Result<Timing> {
        let name = &self.name;
        if name.is_empty() || name.len() > crate::MAX_LEASE_NAME_LEN || name.contains('\0') {
            return Err(Error::InvalidConfig(format!(
                "a schedule's name must be 1 to {} bytes without NUL (got {} bytes; \
                 `every` and `cron` name a schedule after its topic: for a long topic, \
                 name it with `EventBus::schedule`)",
                crate::MAX_LEASE_NAME_LEN,
                name.len()
            )));
        }
        if self.lease_ttl < MIN_LEASE_TTL {
            return Err(Error::InvalidConfig(format!(
                "a schedule's lease time to live must be at least {MIN_LEASE_TTL:?}"
            )));
        }
        self.timing.clone().map_err(Error::InvalidConfig)
    }
}

fn message(err: Error) -> String {
    match err {
        Error::InvalidConfig(message) => message,
        other => other.to_string(),
    }
}
