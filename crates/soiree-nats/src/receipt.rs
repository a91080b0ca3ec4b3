//! Receipts: a delivery's ack subject, from which its stream sequence and
//! delivery count are read back.

/// What a receipt says about its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Receipt {
    /// The event's sequence in the events stream.
    pub(crate) sequence: u64,
    /// How many times it has been delivered, this time included.
    pub(crate) delivered: u32,
}

/// The receipts (ack subjects) of `messages`; a message without one (a
/// status, not a delivery) has none.
pub(crate) fn of_all<'a>(
    messages: impl IntoIterator<Item = &'a async_nats::Message>,
) -> Vec<String> {
    messages
        .into_iter()
        .filter_map(|message| message.reply.as_ref().map(ToString::to_string))
        .collect()
}

/// Parses an ack subject, `$JS.ACK.<stream>.<consumer>.<delivered>.<stream
/// seq>.<consumer seq>.<time>.<pending>` (or the longer form with a domain
/// and account hash before the stream).
pub(crate) fn parse(receipt: &str) -> Option<Receipt> {
    let tokens: Vec<&str> = receipt.split('.').collect();
    if tokens.len() < 9 || tokens[0] != "$JS" || tokens[1] != "ACK" {
        return None;
    }
    let at = if tokens.len() == 9 { 4 } else { 6 };
    Some(Receipt {
        delivered: tokens.get(at)?.parse().ok()?,
        sequence: tokens.get(at + 1)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ack_subject_forms_parse() {
        let v1 = "$JS.ACK.SOIREE_p_EVENTS.g.3.42.40.1700000000000000000.0";
        assert_eq!(
            parse(v1),
            Some(Receipt {
                sequence: 42,
                delivered: 3
            })
        );
        let v2 = "$JS.ACK.dom.hash.SOIREE_p_EVENTS.g.1.7.7.1700000000000000000.5.tok";
        assert_eq!(
            parse(v2),
            Some(Receipt {
                sequence: 7,
                delivered: 1
            })
        );
        assert_eq!(parse("not.a.receipt"), None);
    }
}
