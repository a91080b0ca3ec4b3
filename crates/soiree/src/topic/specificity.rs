//! The order in which matching patterns run.

use std::cmp::Ordering;

/// The sort key of a pattern: most specific first.
///
/// Fewer `**` segments first, then fewer `*`, then more segments, then the
/// longer pattern, then byte order, so that the order is total and stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Specificity<'a> {
    globstars: usize,
    stars: usize,
    segments: usize,
    pattern: &'a str,
}

impl<'a> Specificity<'a> {
    pub(crate) fn of(pattern: &'a str) -> Self {
        let (mut globstars, mut stars, mut segments) = (0, 0, 0);
        for segment in pattern.split('.') {
            segments += 1;
            match segment {
                "**" => globstars += 1,
                "*" => stars += 1,
                _ => {}
            }
        }
        Self {
            globstars,
            stars,
            segments,
            pattern,
        }
    }
}

impl Ord for Specificity<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.globstars
            .cmp(&other.globstars)
            .then(self.stars.cmp(&other.stars))
            .then(other.segments.cmp(&self.segments))
            .then(other.pattern.len().cmp(&self.pattern.len()))
            .then(self.pattern.cmp(other.pattern))
    }
}

impl PartialOrd for Specificity<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
