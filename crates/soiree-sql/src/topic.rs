//! Checks of what `emit_in` is given, before anything is written.

use crate::{Error, Result};

/// Checks an emitted (concrete) topic the way the bus does, and returns it
/// trimmed: no empty name or segment, no `?`, `[` or wildcard.
pub(crate) fn validate_topic(topic: &str) -> Result<&str> {
    let trimmed = topic.trim();
    let invalid = |reason| Error::InvalidTopic {
        topic: topic.to_owned(),
        reason,
    };
    if trimmed.is_empty() {
        return Err(invalid("a topic name must not be empty"));
    }
    if trimmed.contains(['?', '[']) {
        return Err(invalid("`?` and `[` are reserved"));
    }
    if trimmed.contains('*') {
        return Err(invalid(
            "an emitted topic must be concrete (no `*` or `**`)",
        ));
    }
    if trimmed.split('.').any(str::is_empty) {
        return Err(invalid("a topic must not have empty segments"));
    }
    no_nul("the topic", trimmed)?;
    Ok(trimmed)
}

/// Refuses text the databases cannot store.
pub(crate) fn no_nul(what: &'static str, text: &str) -> Result<()> {
    if text.contains('\0') {
        return Err(Error::NulCharacter(what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_concrete_topics_and_trims() {
        assert_eq!(validate_topic(" user.created ").unwrap(), "user.created");
        assert_eq!(validate_topic("a").unwrap(), "a");
    }

    #[test]
    fn rejects_invalid_topics_with_a_typed_error() {
        for bad in [
            "", "  ", "a..b", ".a", "a.", "a.*", "a.**", "a?", "a[b]", "a\0b",
        ] {
            let err = validate_topic(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidTopic { .. } | Error::NulCharacter(_)),
                "{bad:?}: {err}"
            );
        }
    }
}
