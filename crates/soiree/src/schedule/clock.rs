//! The clock due times are measured on: the system clock, advanced by
//! tokio's clock, so that a paused tokio clock (`tokio::time::pause`,
//! `start_paused`) drives delayed events and snoozes in tests.
//!
//! One anchor maps a system time to a monotonic instant, taken at first
//! use and taken again whenever the two clocks drift apart by more than a
//! second (the system clock was stepped, or the machine slept): both are
//! read from the real clocks, so a paused tokio clock never causes a
//! re-anchoring. The mapping is exact in both directions, so a due time
//! made from `now() + d` becomes a timer deadline of exactly `d` from now.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How far the clocks may drift apart before the anchor is taken again.
const MAX_DRIFT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy)]
struct Anchor {
    wall: SystemTime,
    mono: Instant,
}

static ANCHOR: Mutex<Option<Anchor>> = Mutex::new(None);

fn anchor() -> Anchor {
    let mut anchor = ANCHOR.lock().unwrap_or_else(|p| p.into_inner());
    let (wall, mono) = (SystemTime::now(), Instant::now());
    if let Some(current) = *anchor {
        let mapped = wall_at(current, mono);
        let drift = match wall.duration_since(mapped) {
            Ok(ahead) => ahead,
            Err(behind) => behind.duration(),
        };
        if drift <= MAX_DRIFT {
            return current;
        }
    }
    let fresh = Anchor { wall, mono };
    *anchor = Some(fresh);
    fresh
}

fn wall_at(anchor: Anchor, mono: Instant) -> SystemTime {
    if mono >= anchor.mono {
        anchor
            .wall
            .checked_add(mono - anchor.mono)
            .unwrap_or(anchor.wall)
    } else {
        anchor
            .wall
            .checked_sub(anchor.mono - mono)
            .unwrap_or(anchor.wall)
    }
}

/// Now, on the clock of due times: the system time, moved by a paused
/// tokio clock as tokio's clock moves.
pub(crate) fn now() -> SystemTime {
    wall_at(anchor(), tokio::time::Instant::now().into_std())
}

/// The tokio instant at which `due` is reached (now, for a time past).
pub(crate) fn deadline(due: SystemTime) -> tokio::time::Instant {
    let anchor = anchor();
    let mono = match due.duration_since(anchor.wall) {
        Ok(ahead) => anchor.mono.checked_add(ahead),
        Err(behind) => anchor.mono.checked_sub(behind.duration()),
    };
    match mono {
        Some(mono) => tokio::time::Instant::from_std(mono),
        // Centuries away: as far as the clock goes, or now.
        None if due > anchor.wall => {
            tokio::time::Instant::now() + Duration::from_secs(86_400 * 365 * 30)
        }
        None => tokio::time::Instant::now(),
    }
}

/// Reports whether `due` is still ahead.
pub(crate) fn is_future(due: SystemTime) -> bool {
    due > now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_paused_clock_moves_due_times_exactly() {
        let start = now();
        let due = start + Duration::from_secs(3600);
        let at = deadline(due);
        assert_eq!(at - tokio::time::Instant::now(), Duration::from_secs(3600));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            now().duration_since(start).unwrap(),
            Duration::from_secs(60)
        );
        assert!(is_future(due));
    }
}
