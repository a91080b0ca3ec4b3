//! Validation of topic names and patterns.

use crate::{Error, Result};

/// The most segments a topic or pattern may have: `on`, `off` and `emit`
/// reject longer names with [`Error::InvalidTopicName`], and
/// [`topic_matches`](crate::topic_matches) reports no match for them.
pub const MAX_TOPIC_SEGMENTS: usize = 256;

/// The longest topic or pattern, in bytes of the name as given (surrounding
/// whitespace included): `on`, `off` and `emit` reject longer names with
/// [`Error::InvalidTopicName`], and [`topic_matches`](crate::topic_matches)
/// reports no match for them.
pub const MAX_TOPIC_LEN: usize = 64 * 1024;

const TOO_LONG: &str = "the name is longer than MAX_TOPIC_LEN (65536 bytes)";
const TOO_MANY_SEGMENTS: &str = "the name has more than MAX_TOPIC_SEGMENTS (256) segments";

/// Checks a listener pattern and returns it trimmed: the rule of
/// [`EventBus::on`](crate::EventBus::on), for tools that take a pattern
/// from a person (a filter that no topic can match is a typo to report).
///
/// Empty names, empty segments (`a..b`), the reserved characters `?` and
/// `[`, and names over [`MAX_TOPIC_LEN`] bytes or [`MAX_TOPIC_SEGMENTS`]
/// segments are rejected. `*` and `**` are allowed only as whole segments.
///
/// # Errors
///
/// [`Error::InvalidTopicName`] saying why the pattern is rejected.
///
/// # Examples
///
/// ```
/// assert_eq!(soiree::validate_pattern(" order.* ").unwrap(), "order.*");
/// assert!(soiree::validate_pattern("order.[x").is_err());
/// ```
pub fn validate_pattern(name: &str) -> Result<&str> {
    if name.len() > MAX_TOPIC_LEN {
        return Err(Error::invalid_topic(name, TOO_LONG));
    }
    let trimmed = name.trim();
    check_common(name, trimmed)?;
    for (index, segment) in trimmed.split('.').enumerate() {
        if index == MAX_TOPIC_SEGMENTS {
            return Err(Error::invalid_topic(name, TOO_MANY_SEGMENTS));
        }
        if segment.contains('*') && segment != "*" && segment != "**" {
            return Err(Error::invalid_topic(
                name,
                "a wildcard must be a whole segment (`*` or `**`)",
            ));
        }
    }
    Ok(trimmed)
}

/// Checks an emitted (concrete) topic and returns it trimmed.
///
/// Also refuses NUL, which stores cannot keep in text. One pass over the
/// bytes: this runs on every emit.
pub(crate) fn validate_topic(name: &str) -> Result<&str> {
    if name.len() > MAX_TOPIC_LEN {
        return Err(Error::invalid_topic(name, TOO_LONG));
    }
    let trimmed = name.trim();
    let mut segment_empty = true;
    let mut dots = 0;
    for byte in trimmed.bytes() {
        match byte {
            b'.' if segment_empty => return Err(empty_segment(name, trimmed)),
            b'.' if dots + 1 == MAX_TOPIC_SEGMENTS => {
                return Err(Error::invalid_topic(name, TOO_MANY_SEGMENTS));
            }
            b'.' => {
                dots += 1;
                segment_empty = true;
            }
            b'?' | b'[' => return Err(reserved(name)),
            b'\0' => {
                return Err(Error::invalid_topic(
                    name,
                    "an emitted topic must not contain NUL, which databases refuse in text",
                ));
            }
            b'*' => {
                return Err(Error::invalid_topic(
                    name,
                    "an emitted topic must be concrete (no `*` or `**`)",
                ));
            }
            _ => segment_empty = false,
        }
    }
    if segment_empty {
        return Err(empty_segment(name, trimmed));
    }
    Ok(trimmed)
}

fn check_common(name: &str, trimmed: &str) -> Result<()> {
    if trimmed.contains(['?', '[']) {
        return Err(reserved(name));
    }
    if trimmed.split('.').any(str::is_empty) {
        return Err(empty_segment(name, trimmed));
    }
    Ok(())
}

fn reserved(name: &str) -> Error {
    Error::invalid_topic(name, "`?` and `[` are reserved")
}

fn empty_segment(name: &str, trimmed: &str) -> Error {
    if trimmed.is_empty() {
        Error::invalid_topic(name, "the name is empty")
    } else {
        Error::invalid_topic(name, "the name has an empty segment")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_names() {
        assert_eq!(validate_topic("  user.created ").unwrap(), "user.created");
        assert_eq!(validate_pattern(" user.* ").unwrap(), "user.*");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "   ", "a..b", ".a", "a.", "a?b", "a[0]", "a.b*"] {
            assert!(
                matches!(validate_pattern(bad), Err(Error::InvalidTopicName { .. })),
                "{bad:?} should be rejected as a pattern"
            );
            assert!(
                matches!(validate_topic(bad), Err(Error::InvalidTopicName { .. })),
                "{bad:?} should be rejected as a topic"
            );
        }
    }

    fn reason(result: Result<&str>) -> &'static str {
        match result {
            Err(Error::InvalidTopicName { reason, .. }) => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limits_admit_names_at_them_and_reject_names_past_them() {
        let at_segments = vec!["a"; MAX_TOPIC_SEGMENTS].join(".");
        let at_len = "a".repeat(MAX_TOPIC_LEN);
        let stars = vec!["**"; MAX_TOPIC_SEGMENTS].join(".");
        for name in [&at_segments, &at_len] {
            assert!(validate_topic(name).is_ok());
            assert!(validate_pattern(name).is_ok());
        }
        assert!(validate_pattern(&stars).is_ok());

        let past_segments = format!("{at_segments}.a");
        let past_len = format!("{at_len}a");
        for (name, why) in [(&past_segments, TOO_MANY_SEGMENTS), (&past_len, TOO_LONG)] {
            assert_eq!(reason(validate_topic(name)), why);
            assert_eq!(reason(validate_pattern(name)), why);
        }
        assert_eq!(
            reason(validate_pattern(&format!("{stars}.*"))),
            TOO_MANY_SEGMENTS
        );
        // Whitespace counts towards the length.
        let padded = format!(" {at_len} ");
        assert_eq!(reason(validate_topic(&padded)), TOO_LONG);
    }

    #[test]
    fn limit_reasons_name_the_limits() {
        assert!(TOO_LONG.contains(&MAX_TOPIC_LEN.to_string()));
        assert!(TOO_MANY_SEGMENTS.contains(&MAX_TOPIC_SEGMENTS.to_string()));
    }

    #[test]
    fn emitted_topics_hold_no_nul() {
        assert!(matches!(
            validate_topic("a\0.b"),
            Err(Error::InvalidTopicName { .. })
        ));
    }

    #[test]
    fn wildcards_are_patterns_not_topics() {
        for wild in ["*", "**", "a.*", "a.**.b"] {
            assert!(validate_pattern(wild).is_ok());
            assert!(matches!(
                validate_topic(wild),
                Err(Error::InvalidTopicName { .. })
            ));
        }
    }
}
