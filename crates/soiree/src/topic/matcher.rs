//! The wildcard matcher, as one function.

/// Reports whether `pattern` matches the concrete `subject`.
///
/// `*` matches exactly one segment; `**` matches zero or more segments, except
/// that a trailing `**` after another segment needs at least one. Matching is
/// exact and case-sensitive otherwise. Runs in `O(pattern × subject)` segments,
/// whatever the input: it never backtracks exponentially and never panics.
///
/// # Examples
///
/// ```
/// use soiree::topic_matches;
///
/// assert!(topic_matches("user.*", "user.created"));
/// assert!(topic_matches("**.created", "org.user.created"));
/// assert!(!topic_matches("event.**", "event"));
/// ```
pub fn topic_matches(pattern: &str, subject: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let subject: Vec<&str> = subject.split('.').collect();
    let last = pattern.len() - 1;
    // reach[j]: the pattern prefix seen so far can consume exactly subject[..j].
    let mut reach = vec![false; subject.len() + 1];
    reach[0] = true;
    for (i, segment) in pattern.iter().enumerate() {
        let mut next = vec![false; subject.len() + 1];
        match *segment {
            "**" => {
                let needs_one = i == last && i > 0;
                let mut seen = false;
                for j in 0..=subject.len() {
                    // A `**` extends any reachable prefix by zero or more segments
                    // (at least one when it is a trailing one).
                    if needs_one {
                        next[j] = seen;
                        seen |= reach[j];
                    } else {
                        seen |= reach[j];
                        next[j] = seen;
                    }
                }
            }
            "*" => next[1..].copy_from_slice(&reach[..subject.len()]),
            literal => {
                for j in 0..subject.len() {
                    next[j + 1] = reach[j] && subject[j] == literal;
                }
            }
        }
        reach = next;
        if !reach.contains(&true) {
            return false;
        }
    }
    reach[subject.len()]
}
