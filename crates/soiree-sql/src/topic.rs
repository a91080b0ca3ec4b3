//! Checks of what `emit_in` is given, before anything is written.

use crate::{Error, Result};

/// Checks an emitted (concrete) topic as the bus does
/// ([`soiree::limits::check_topic`]: no empty name or segment, no `?`, `[`,
/// wildcard or NUL, within the length and segment limits), and returns it
/// trimmed.
pub(crate) fn validate_topic(topic: &str) -> Result<&str> {
    soiree::limits::check_topic(topic).map_err(|err| match err {
        soiree::Error::InvalidTopicName { name, reason } => Error::InvalidTopic {
            topic: name,
            reason,
        },
        other => Error::Event(other),
    })
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
    fn rejects_topics_past_the_limits_as_the_bus_does() {
        let at = vec!["a"; soiree::limits::MAX_TOPIC_SEGMENTS].join(".");
        assert!(validate_topic(&at).is_ok());
        let past_segments = format!("{at}.a");
        let past_len = "a".repeat(soiree::limits::MAX_TOPIC_LEN + 1);
        for topic in [past_segments, past_len] {
            let err = validate_topic(&topic).unwrap_err();
            assert!(matches!(err, Error::InvalidTopic { .. }), "{err}");
            assert!(err.to_string().len() < 300, "the topic is cut: {err}");
        }
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
