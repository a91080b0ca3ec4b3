//! Topics ↔ subjects: how a soiree topic becomes a NATS subject and back.
//!
//! A topic `a.b.c` in a store with prefix `p` is the subject `p.a.b.c`: one
//! topic segment per subject token. A token keeps every printable ASCII
//! byte except the ones subjects forbid or give a meaning to; those, and
//! every other byte, are written `~XX` (two uppercase hex digits of the
//! byte):
//!
//! | in a segment | in the token |
//! |---|---|
//! | `~` (the escape itself) | `~7E` |
//! | space, tab, control bytes (≤ 0x20, 0x7F) | `~20`, `~09`, … |
//! | `*`, `>` (wildcards to the server) | `~2A`, `~3E` |
//! | bytes of non-ASCII characters | `~C3~A9` for `é` |
//! | an empty segment | `~` alone |
//!
//! The encoding is reversible ([`subject_to_topic`] gives back the topic)
//! and keeps ordinary topics readable (`order.paid` is `p.order.paid`).
//!
//! Long topics: subjects stay within [`MAX_SUBJECT_LEN`] bytes, so that they
//! fit the servers' default protocol line (4 KiB). A token longer than
//! [`MAX_TOKEN_LEN`] bytes becomes `~L` and a 64-bit hash of it (the number
//! of tokens stays, so `*` and `>` filters still match), and a subject
//! still too long keeps its first tokens and ends in one `~R` token hashing
//! the rest. Such subjects do not decode ([`subject_to_topic`] gives
//! `None`); the store never needs them to: every entry carries its topic.
//! A group whose filter is a pattern of `*` only, longer than the kept
//! tokens, would miss such a topic; filters with a `**` are checked by the
//! store as well.
//! Patterns: a `*` segment is the subject wildcard `*` and a trailing `**`
//! is `>`, so the server filters them; a `**` inside a pattern cannot be
//! said in a subject filter: the server filters up to it (`a.>`) and the
//! store filters the rest with [`soiree::topic_matches`].
//!
//! # Examples
//!
//! ```
//! use soiree_nats::subject::{topic_to_subject, subject_to_topic};
//!
//! assert_eq!(topic_to_subject("shop", "order.paid"), "shop.order.paid");
//! assert_eq!(topic_to_subject("shop", "a b.>.é"), "shop.a~20b.~3E.~C3~A9");
//! assert_eq!(subject_to_topic("shop", "shop.a~20b.~3E.~C3~A9").as_deref(), Some("a b.>.é"));
//! assert_eq!(subject_to_topic("other", "shop.order"), None);
//! ```

/// The escape byte.
const ESCAPE: char = '~';

/// The longest token kept as it is (encoded), in bytes.
pub const MAX_TOKEN_LEN: usize = 128;

/// The longest subject, in bytes.
pub const MAX_SUBJECT_LEN: usize = 3 * 1024;

/// 64-bit FNV-1a: stable across versions and platforms, as subjects are
/// stored.
pub(crate) fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Appends the token of a segment, hashed when its encoding is too long.
fn push_token(segment: &str, out: &mut String) {
    let mut token = String::with_capacity(segment.len());
    encode_token(segment, &mut token);
    if token.len() > MAX_TOKEN_LEN {
        out.push_str(&format!("~L{:016X}", fnv(&token)));
    } else {
        out.push_str(&token);
    }
}

/// Whether a byte stands for itself in a token.
fn plain(byte: u8) -> bool {
    byte > 0x20 && byte < 0x7f && !matches!(byte, b'~' | b'*' | b'>' | b'.')
}

/// Appends the token of one topic segment.
fn encode_token(segment: &str, out: &mut String) {
    if segment.is_empty() {
        out.push(ESCAPE);
        return;
    }
    for byte in segment.bytes() {
        if plain(byte) {
            out.push(char::from(byte));
        } else {
            out.push(ESCAPE);
            out.push_str(&format!("{byte:02X}"));
        }
    }
}

/// The segment a token stands for; `None` when it is not one this
/// encoding writes.
fn decode_token(token: &str) -> Option<String> {
    if token == "~" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'~' {
            let hex = token.get(i + 1..i + 3)?;
            if !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
            {
                return None;
            }
            let byte = u8::from_str_radix(hex, 16).ok()?;
            if plain(byte) {
                // Written plain by the encoder: not its output.
                return None;
            }
            out.push(byte);
            i += 3;
        } else if plain(bytes[i]) {
            out.push(bytes[i]);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// The subject of `topic` in the store with subject prefix `prefix`.
pub fn topic_to_subject(prefix: &str, topic: &str) -> String {
    let mut subject = String::with_capacity(prefix.len() + topic.len() + 8);
    subject.push_str(prefix);
    // Room for the `.~R<hash>` token of a subject cut short.
    let room = MAX_SUBJECT_LEN - 19;
    let mut segments = topic.split('.').peekable();
    while let Some(segment) = segments.next() {
        let mut token = String::new();
        push_token(segment, &mut token);
        if subject.len() + 1 + token.len() > room {
            let rest: Vec<&str> = std::iter::once(segment).chain(segments).collect();
            subject.push_str(&format!(".~R{:016X}", fnv(&rest.join("."))));
            break;
        }
        subject.push('.');
        subject.push_str(&token);
    }
    subject
}

/// The topic of `subject`, or `None` when the subject is not under
/// `prefix` or not written by [`topic_to_subject`].
pub fn subject_to_topic(prefix: &str, subject: &str) -> Option<String> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let segments: Option<Vec<String>> = rest.split('.').map(decode_token).collect();
    Some(segments?.join("."))
}

/// The server-side filter subject of a listener pattern, and whether the
/// store must also check each event against the pattern (a `**` inside
/// it, which the server cannot filter).
///
/// # Examples
///
/// ```
/// use soiree_nats::subject::pattern_filter;
///
/// assert_eq!(pattern_filter("p", "order.*"), ("p.order.*".to_owned(), false));
/// assert_eq!(pattern_filter("p", "order.**"), ("p.order.>".to_owned(), false));
/// assert_eq!(pattern_filter("p", "a.**.z"), ("p.a.>".to_owned(), true));
/// assert_eq!(pattern_filter("p", "**"), ("p.>".to_owned(), false));
/// ```
pub fn pattern_filter(prefix: &str, pattern: &str) -> (String, bool) {
    let segments: Vec<&str> = pattern.split('.').collect();
    let mut filter = String::from(prefix);
    for (i, segment) in segments.iter().enumerate() {
        let mut token = String::new();
        match *segment {
            "*" => token.push('*'),
            "**" => {
                filter.push_str(".>");
                return (filter, i + 1 != segments.len());
            }
            plain => push_token(plain, &mut token),
        }
        if filter.len() + 1 + token.len() > MAX_SUBJECT_LEN - 19 {
            // As a subject cut short: the server takes the prefix, the
            // store checks the rest.
            filter.push_str(".>");
            return (filter, true);
        }
        filter.push('.');
        filter.push_str(&token);
    }
    (filter, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forbidden_characters_are_escaped() {
        assert_eq!(topic_to_subject("p", "a..b"), "p.a.~.b");
        assert_eq!(topic_to_subject("p", "*.>"), "p.~2A.~3E");
        assert_eq!(topic_to_subject("p", "tab\there"), "p.tab~09here");
        assert_eq!(topic_to_subject("p", "x~y"), "p.x~7Ey");
        assert_eq!(topic_to_subject("p", ""), "p.~");
    }

    #[test]
    fn long_topics_fit_in_a_subject() {
        let long = "t".repeat(soiree::limits::MAX_TOPIC_LEN);
        let subject = topic_to_subject("p", &long);
        assert!(subject.len() <= MAX_SUBJECT_LEN);
        assert_eq!(subject.split('.').count(), 2, "one token for one segment");
        assert_ne!(
            subject,
            topic_to_subject("p", &"t".repeat(MAX_TOPIC_LEN_MINUS_ONE))
        );
        let many: Vec<String> = (0..256).map(|i| format!("{i:0>100}")).collect();
        let subject = topic_to_subject("p", &many.join("."));
        assert!(subject.len() <= MAX_SUBJECT_LEN, "{}", subject.len());
        assert!(subject.starts_with("p.000"), "keeps its first tokens");
        let (filter, client_side) = pattern_filter("p", &format!("{}.*", "x".repeat(500)));
        assert!(!client_side);
        assert!(subject_matches(
            &filter,
            &topic_to_subject("p", &format!("{}.y", "x".repeat(500)))
        ));
    }

    const MAX_TOPIC_LEN_MINUS_ONE: usize = soiree::limits::MAX_TOPIC_LEN - 1;

    #[test]
    fn foreign_subjects_have_no_topic() {
        assert_eq!(subject_to_topic("p", "p.~4"), None);
        assert_eq!(subject_to_topic("p", "p.~61"), None, "`a` is written plain");
        assert_eq!(subject_to_topic("p", "pq.a"), None);
        assert_eq!(subject_to_topic("p", "p"), None);
    }

    #[test]
    fn wildcard_patterns_filter_as_the_matcher() {
        for (pattern, topic) in [
            ("order.*", "order.paid"),
            ("order.**", "order.paid.late"),
            ("*.paid", "order.paid"),
            ("a.**.z", "a.z"),
            ("a.**.z", "a.b.c.z"),
        ] {
            assert!(soiree::topic_matches(pattern, topic), "{pattern} {topic}");
            let (filter, _) = pattern_filter("p", pattern);
            assert!(
                subject_matches(&filter, &topic_to_subject("p", topic)),
                "{filter} {topic}"
            );
        }
        // The server's filter is no narrower than the pattern, and
        // `order.**` needs a segment after `order`, as `>` does.
        let (filter, _) = pattern_filter("p", "order.**");
        assert!(!subject_matches(&filter, &topic_to_subject("p", "order")));
    }

    /// NATS subject matching, for checking filters.
    fn subject_matches(filter: &str, subject: &str) -> bool {
        let f: Vec<&str> = filter.split('.').collect();
        let s: Vec<&str> = subject.split('.').collect();
        for (i, token) in f.iter().enumerate() {
            match *token {
                ">" => return s.len() > i,
                "*" if i < s.len() => {}
                t if i < s.len() && s[i] == t => {}
                _ => return false,
            }
        }
        f.len() == s.len()
    }

    proptest! {
        #[test]
        fn every_topic_round_trips(topic in "\\PC{0,10}(\\.\\PC{0,10}){0,4}") {
            let subject = topic_to_subject("prefix", &topic);
            prop_assert_eq!(subject_to_topic("prefix", &subject), Some(topic.clone()));
        }

        #[test]
        fn tokens_hold_no_forbidden_bytes(topic in any::<String>()) {
            let subject = topic_to_subject("p", &topic);
            prop_assert!(subject.len() <= MAX_SUBJECT_LEN);
            prop_assert!(subject.bytes().all(|b| b > 0x20 && b < 0x7f));
            for token in subject.split('.') {
                prop_assert!(!token.is_empty());
                prop_assert!(token != "*" && token != ">");
                prop_assert!(!token.contains('*') && !token.contains('>'));
            }
            prop_assert_eq!(subject.split('.').count(), topic.split('.').count() + 1);
        }
    }
}
