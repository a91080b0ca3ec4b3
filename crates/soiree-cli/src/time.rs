//! Times and durations on the command line and in output.

use std::time::{Duration, SystemTime};

use jiff::{SignedDuration, Timestamp};

/// A `--since`/`--until` value: an RFC 3339 time (`2024-05-01T12:00:00Z`,
/// `2024-05-01T14:00:00+02:00`) or an age before now (`10m`, `2h`, `1d`,
/// `1h30m`).
pub(crate) fn parse_time(text: &str) -> Result<SystemTime, String> {
    parse_time_at(text, SystemTime::now())
}

fn parse_time_at(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let text = text.trim();
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(SystemTime::from(at));
    }
    match parse_duration(text) {
        Ok(age) => now
            .checked_sub(age)
            .ok_or_else(|| format!("{text:?} reaches before 1970")),
        Err(_) => Err(format!(
            "{text:?} is neither an RFC 3339 time (2024-05-01T12:00:00Z) nor an age (10m, 2h, 1d)"
        )),
    }
}

/// A duration option: `500ms`, `1s`, `10m`, `2h`, `1d`, `1h30m`.
pub(crate) fn parse_interval(text: &str) -> Result<Duration, String> {
    parse_duration(text.trim())
        .map_err(|_| format!("{text:?} is not a duration (500ms, 1s, 10m, 2h, 1d)"))
}

fn parse_duration(text: &str) -> Result<Duration, ()> {
    // A bare number is seconds.
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let signed = match text.parse::<SignedDuration>() {
        Ok(duration) => duration,
        // Days are not a fixed length for jiff's durations; here they are
        // 24 hours.
        Err(_) => {
            let span = text.parse::<jiff::Span>().map_err(|_| ())?;
            span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                .map_err(|_| ())?
        }
    };
    Duration::try_from(signed.abs()).map_err(|_| ())
}

/// A time for people and scripts: RFC 3339 in UTC, to the millisecond.
pub(crate) fn format_time(at: SystemTime) -> String {
    match Timestamp::try_from(at) {
        Ok(at) => format!("{:.3}", at),
        Err(_) => "?".to_owned(),
    }
}

/// A short duration for tables: `850ms`, `12.3s`, `4m05s`, `3h12m`, `2d04h`.
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        format!("{}ms", d.as_millis())
    } else if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600)
    }
}

/// Milliseconds, for JSON.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_ages() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            parse_time_at("10m", now).unwrap(),
            now - Duration::from_secs(600)
        );
        assert_eq!(
            parse_time_at("2h", now).unwrap(),
            now - Duration::from_secs(7200)
        );
        assert_eq!(
            parse_time_at("1d", now).unwrap(),
            now - Duration::from_secs(86_400)
        );
        assert_eq!(
            parse_time_at("1h30m", now).unwrap(),
            now - Duration::from_secs(5400)
        );
        assert_eq!(
            parse_time_at("1970-01-01T00:00:10Z", now).unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(10)
        );
        assert_eq!(
            parse_time_at("1970-01-01T02:00:10+02:00", now).unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(10)
        );
        let err = parse_time_at("yesterday-ish", now).unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_interval("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_interval("0s").unwrap(), Duration::ZERO);
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(
            format_time(SystemTime::UNIX_EPOCH + Duration::from_millis(1_500)),
            "1970-01-01T00:00:01.500Z"
        );
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(
            format_duration(Duration::from_secs(3 * 3600 + 720)),
            "3h12m"
        );
        assert_eq!(
            format_duration(Duration::from_secs(2 * 86_400 + 4 * 3600)),
            "2d04h"
        );
    }
}
