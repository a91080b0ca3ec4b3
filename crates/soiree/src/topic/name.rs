//! Validation of topic names and patterns.

use crate::{Error, Result};

/// Checks a listener pattern and returns it trimmed.
///
/// Empty names, empty segments (`a..b`), and the reserved characters `?` and
/// `[` are rejected. `*` and `**` are allowed only as whole segments.
pub(crate) fn validate_pattern(name: &str) -> Result<&str> {
    let trimmed = name.trim();
    check_common(name, trimmed)?;
    for segment in trimmed.split('.') {
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
/// One pass over the bytes: this runs on every emit.
pub(crate) fn validate_topic(name: &str) -> Result<&str> {
    let trimmed = name.trim();
    let mut segment_empty = true;
    for byte in trimmed.bytes() {
        match byte {
            b'.' if segment_empty => return Err(empty_segment(name, trimmed)),
            b'.' => segment_empty = true,
            b'?' | b'[' => return Err(reserved(name)),
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
