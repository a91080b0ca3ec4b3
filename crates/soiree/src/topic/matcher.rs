//! The wildcard matcher, as one function.

use super::{MAX_TOPIC_LEN, MAX_TOPIC_SEGMENTS};

/// Reports whether `pattern` matches the concrete `subject`.
///
/// `*` matches exactly one segment; `**` matches zero or more segments, except
/// that a trailing `**` after another segment needs at least one. Matching is
/// exact and case-sensitive otherwise. A pattern or subject longer than
/// [`MAX_TOPIC_LEN`](crate::MAX_TOPIC_LEN) bytes or with more than
/// [`MAX_TOPIC_SEGMENTS`](crate::MAX_TOPIC_SEGMENTS) segments matches nothing.
///
/// Allocates nothing and never panics; the cost is linear in the subject's
/// segments for a pattern without `**`, and at worst `O(pattern × subject)`
/// segments with them (it never backtracks exponentially).
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
    if !within_limits(pattern) || !within_limits(subject) {
        return false;
    }
    // The classic glob algorithm, over segments: on a mismatch, the last `**`
    // seen consumes one more segment and matching resumes after it. Earlier
    // `**` never need revisiting, so there is one resume point at most.
    let mut tokens = Tokens::new(pattern);
    // The unread segments of the subject; `None` once all are read.
    let mut rest = Some(subject);
    // After the last `**`: the tokens that follow it and where they start.
    let mut resume: Option<(Tokens<'_>, Option<&str>)> = None;
    loop {
        match (tokens.next(), rest) {
            (None, None) => return true,
            (Some(Token::Globstar), _) => {
                resume = Some((tokens, rest));
                continue;
            }
            (Some(token), Some(unread)) => {
                let (segment, after) = split_first(unread);
                if token.matches(segment) {
                    rest = after;
                    continue;
                }
            }
            (Some(_), None) | (None, Some(_)) => {}
        }
        // A mismatch: the last `**` takes one more segment, if one is left.
        let Some((after_globstar, Some(from))) = resume else {
            return false;
        };
        let (_, mut from) = split_first(from);
        let mut peek = after_globstar;
        if let Some(Token::Literal(literal)) = peek.next() {
            // And more, up to the next segment that literal matches: from
            // any other, matching would fail at once and resume again.
            while let Some(unread) = from {
                let (segment, after) = split_first(unread);
                if segment == literal {
                    break;
                }
                from = after;
            }
        }
        resume = Some((after_globstar, from));
        tokens = after_globstar;
        rest = from;
    }
}

fn within_limits(name: &str) -> bool {
    name.len() <= MAX_TOPIC_LEN && name.bytes().filter(|&b| b == b'.').count() < MAX_TOPIC_SEGMENTS
}

/// The first segment of a non-empty segment list, and the rest if any.
fn split_first(segments: &str) -> (&str, Option<&str>) {
    match segments.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (segments, None),
    }
}

#[derive(Debug, Clone, Copy)]
enum Token<'p> {
    Literal(&'p str),
    Star,
    Globstar,
}

impl Token<'_> {
    fn matches(self, segment: &str) -> bool {
        match self {
            Token::Literal(literal) => literal == segment,
            Token::Star | Token::Globstar => true,
        }
    }
}

/// A pattern's segments as tokens, with a trailing `**` after another
/// segment read as `*` then `**`: one segment, then zero or more.
#[derive(Debug, Clone, Copy)]
struct Tokens<'p> {
    rest: Option<&'p str>,
    first: bool,
    globstar_next: bool,
}

impl<'p> Tokens<'p> {
    fn new(pattern: &'p str) -> Self {
        Self {
            rest: Some(pattern),
            first: true,
            globstar_next: false,
        }
    }
}

impl<'p> Iterator for Tokens<'p> {
    type Item = Token<'p>;

    fn next(&mut self) -> Option<Token<'p>> {
        if std::mem::take(&mut self.globstar_next) {
            return Some(Token::Globstar);
        }
        let (segment, after) = split_first(self.rest?);
        self.rest = after;
        let first = std::mem::take(&mut self.first);
        Some(match segment {
            "**" if after.is_none() && !first => {
                self.globstar_next = true;
                Token::Star
            }
            "**" => Token::Globstar,
            "*" => Token::Star,
            literal => Token::Literal(literal),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_globstars_match_by_the_rules() {
        assert!(topic_matches("**.**.**", "a"));
        assert!(topic_matches("a.**.b.**.c", "a.x.b.y.b.c"));
        assert!(!topic_matches("a.**.b.**", "a.x.b"));
        assert!(topic_matches("a.**.b.**", "a.b.b.x"));
        assert!(topic_matches("**.a.*.**", "a.a.a.a"));
        assert!(!topic_matches("**.a.*.**", "x.a.y"));
    }

    #[test]
    fn names_past_the_limits_match_nothing() {
        let at = vec!["a"; MAX_TOPIC_SEGMENTS].join(".");
        assert!(topic_matches("**", &at));
        assert!(topic_matches(&at, &at));
        let past = format!("{at}.a");
        assert!(!topic_matches("**", &past));
        assert!(!topic_matches(&past, "a"));
        let long = "a".repeat(MAX_TOPIC_LEN + 1);
        assert!(!topic_matches("*", &long));
        assert!(!topic_matches(&long, &long));
    }
}
