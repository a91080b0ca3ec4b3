//! When a schedule's ticks fall, in Unix milliseconds: every interval
//! (aligned to the Unix epoch, so that every process computes the same
//! ticks without talking) or at the times a cron expression names.

use std::time::Duration;

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::{Error, Result};

/// The ticks of a schedule.
#[derive(Debug, Clone)]
pub(crate) enum Timing {
    /// Every `ms` milliseconds since the Unix epoch.
    Every { ms: i64 },
    /// The times of a cron expression in a time zone.
    Cron { cron: Box<Cron>, zone: TimeZone },
}

impl Timing {
    pub(crate) fn every(interval: Duration) -> Result<Self> {
        let ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        if ms < 1 {
            return Err(Error::InvalidConfig(
                "the interval of a periodic event must be at least 1 ms".into(),
            ));
        }
        Ok(Self::Every { ms })
    }

    pub(crate) fn cron(expression: &str) -> Result<Self> {
        let cron: Cron = expression.parse().map_err(|err| {
            Error::InvalidConfig(format!(
                "{:?} is not a cron expression: {err}",
                expression.chars().take(64).collect::<String>()
            ))
        })?;
        Ok(Self::Cron {
            cron: Box::new(cron),
            zone: TimeZone::UTC,
        })
    }

    /// The first tick after `ms`, if there is one.
    pub(crate) fn next_after(&self, ms: i64) -> Option<i64> {
        match self {
            Timing::Every { ms: every } => {
                ms.div_euclid(*every).checked_add(1)?.checked_mul(*every)
            }
            Timing::Cron { cron, zone } => {
                let at = Timestamp::from_millisecond(ms).ok()?.to_zoned(zone.clone());
                let next = cron.find_next_occurrence(&at, false).ok()?;
                Some(next.timestamp().as_millisecond())
            }
        }
    }

    /// The ticks after `after` and at or before `now`, oldest first: the
    /// `max` latest of them when there are more.
    pub(crate) fn due(&self, after: i64, now: i64, max: u32) -> Vec<i64> {
        let max = i64::from(max.max(1));
        match self {
            Timing::Every { ms: every } => {
                let latest = now.div_euclid(*every).saturating_mul(*every);
                if latest <= after {
                    return Vec::new();
                }
                let missed = latest.div_euclid(*every) - after.div_euclid(*every);
                let count = missed.min(max);
                (0..count)
                    .rev()
                    .map(|back| latest - back * every)
                    .filter(|tick| *tick > after)
                    .collect()
            }
            Timing::Cron { cron, zone } => {
                let Ok(now) = Timestamp::from_millisecond(now) else {
                    return Vec::new();
                };
                let mut at = now.to_zoned(zone.clone());
                let mut ticks = Vec::new();
                let mut inclusive = true;
                // Backwards from now: bounded by `max`, however many
                // ticks were missed.
                while ticks.len() < max as usize {
                    let Ok(previous) = cron.find_previous_occurrence(&at, inclusive) else {
                        break;
                    };
                    let ms = previous.timestamp().as_millisecond();
                    if ms <= after {
                        break;
                    }
                    ticks.push(ms);
                    at = previous;
                    inclusive = false;
                }
                ticks.reverse();
                ticks
            }
        }
    }

    /// About how far apart ticks are: the interval, or the gap between the
    /// next two ticks of a cron expression after `now`.
    pub(crate) fn period(&self, now: i64) -> Duration {
        match self {
            Timing::Every { ms } => Duration::from_millis(ms.unsigned_abs()),
            Timing::Cron { .. } => {
                let first = self.next_after(now);
                let second = first.and_then(|first| self.next_after(first));
                match (first, second) {
                    (Some(first), Some(second)) => {
                        Duration::from_millis((second - first).unsigned_abs())
                    }
                    _ => Duration::ZERO,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_ticks_are_aligned_and_bounded() {
        let every = Timing::every(Duration::from_secs(10)).unwrap();
        assert_eq!(every.next_after(12_345), Some(20_000));
        assert_eq!(every.next_after(20_000), Some(30_000));
        assert_eq!(every.due(20_000, 29_999, 5), Vec::<i64>::new());
        assert_eq!(every.due(20_000, 30_000, 5), vec![30_000]);
        assert_eq!(every.due(0, 100_000, 3), vec![80_000, 90_000, 100_000]);
        assert_eq!(every.due(50_000, 75_000, 10), vec![60_000, 70_000]);
        assert_eq!(every.due(55_000, 75_000, 10), vec![60_000, 70_000]);
        assert!(Timing::every(Duration::from_micros(10)).is_err());
    }

    #[test]
    fn cron_ticks_walk_back_from_now_at_most_max() {
        // Every minute at second 0.
        let cron = Timing::cron("* * * * *").unwrap();
        let minute = 60_000;
        assert_eq!(cron.next_after(minute * 10 + 1), Some(minute * 11));
        assert_eq!(
            cron.due(minute * 10, minute * 13 + 5, 10),
            vec![minute * 11, minute * 12, minute * 13]
        );
        assert_eq!(
            cron.due(0, minute * 100, 2),
            vec![minute * 99, minute * 100]
        );
        assert_eq!(cron.period(0), Duration::from_secs(60));
        assert!(Timing::cron("not a cron").is_err());
    }

    #[test]
    fn cron_ticks_fall_in_their_time_zone() {
        let Timing::Cron { cron, .. } = Timing::cron("0 9 * * *").unwrap() else {
            unreachable!()
        };
        let zone = TimeZone::fixed(jiff::tz::Offset::from_hours(2).unwrap());
        let paris = Timing::Cron { cron, zone };
        let hour = 3_600_000;
        // 09:00 at +02:00 is 07:00 UTC.
        assert_eq!(paris.next_after(0), Some(7 * hour));
    }
}
