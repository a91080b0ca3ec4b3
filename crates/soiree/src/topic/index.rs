//! A segment trie of listener patterns with a per-topic route cache.
//!
//! Emitting looks the concrete topic up in the cache: one sharded-map read and
//! no scan of the registered patterns. A miss walks the trie, which visits only
//! the branches that can match, sorts the matching patterns by specificity and
//! caches the ordered listener list. `insert` and `remove` clear the cache
//! while holding the trie's write lock, and misses fill it while holding the
//! read lock, so a stale route can never be cached after a change.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crossbeam_utils::CachePadded;
use dashmap::DashMap;
use foldhash::fast::RandomState;

use super::Specificity;

/// Routes kept before the cache is cleared, so that topics carrying ids
/// (`user.123.created`) cannot grow it without bound.
const ROUTE_CACHE_CAPACITY: usize = 16 * 1024;

/// A route as the cache hands it out: padded, so that the refcount, which
/// every emit writes, does not share a cache line with the listener list that
/// workers read.
pub(crate) type SharedRoute<T> = Arc<CachePadded<Route<T>>>;

/// The ordered listeners for one concrete topic.
#[derive(Debug)]
pub(crate) struct Route<T> {
    pub(crate) topic: Arc<str>,
    pub(crate) listeners: Vec<Arc<T>>,
}

/// `insert` found the same entry registered already.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Duplicate;

/// Why `remove` found nothing to remove.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RemoveError {
    PatternNotFound,
    EntryNotFound,
}

#[derive(Debug)]
pub(crate) struct TopicIndex<T> {
    trie: RwLock<Trie<T>>,
    /// Keyed with foldhash: a fast hash with a per-process random seed.
    routes: DashMap<Arc<str>, SharedRoute<T>, RandomState>,
}

#[derive(Debug)]
struct Trie<T> {
    root: Node,
    /// Listeners per pattern, in registration order.
    patterns: HashMap<Arc<str>, Vec<Arc<T>>>,
}

#[derive(Debug, Default)]
struct Node {
    depth: usize,
    literals: HashMap<Box<str>, Node>,
    star: Option<Box<Node>>,
    globstar: Option<Box<Node>>,
    /// The pattern that ends at this node, if any.
    terminal: Option<Arc<str>>,
}

impl<T> Default for TopicIndex<T> {
    fn default() -> Self {
        Self {
            trie: RwLock::new(Trie {
                root: Node::default(),
                patterns: HashMap::new(),
            }),
            routes: DashMap::with_hasher(RandomState::default()),
        }
    }
}

impl<T> TopicIndex<T> {
    /// Adds `entry` after the pattern's existing listeners, unless an entry
    /// on any pattern `is_same` as it. `pattern` must be valid.
    pub(crate) fn insert(
        &self,
        pattern: &str,
        entry: Arc<T>,
        is_same: impl Fn(&T) -> bool,
    ) -> Result<(), Duplicate> {
        let mut trie = self.write();
        if trie.patterns.values().flatten().any(|other| is_same(other)) {
            return Err(Duplicate);
        }
        if let Some(listeners) = trie.patterns.get_mut(pattern) {
            listeners.push(entry);
        } else {
            let pattern: Arc<str> = Arc::from(pattern);
            trie.root.insert(&pattern);
            trie.patterns.insert(pattern, vec![entry]);
        }
        self.routes.clear();
        Ok(())
    }

    /// Removes the first entry of `pattern` for which `is_target` holds.
    pub(crate) fn remove(
        &self,
        pattern: &str,
        is_target: impl Fn(&T) -> bool,
    ) -> Result<Arc<T>, RemoveError> {
        let mut trie = self.write();
        let listeners = trie
            .patterns
            .get_mut(pattern)
            .ok_or(RemoveError::PatternNotFound)?;
        let position = listeners
            .iter()
            .position(|entry| is_target(entry))
            .ok_or(RemoveError::EntryNotFound)?;
        let removed = listeners.remove(position);
        if listeners.is_empty() {
            trie.patterns.remove(pattern);
            trie.root.remove(pattern);
        }
        self.routes.clear();
        Ok(removed)
    }

    /// The listeners that hear `topic`, most specific pattern first.
    pub(crate) fn route(&self, topic: &str) -> SharedRoute<T> {
        if let Some(route) = self.routes.get(topic) {
            return Arc::clone(route.value());
        }
        let trie = self.read();
        let mut patterns = trie.root.matching(topic);
        patterns.sort_by(|a, b| Specificity::of(a).cmp(&Specificity::of(b)));
        patterns.dedup();
        let listeners = patterns
            .iter()
            .flat_map(|pattern| trie.patterns[*pattern].iter().cloned())
            .collect();
        let topic: Arc<str> = Arc::from(topic);
        let route = Arc::new(CachePadded::new(Route {
            topic: Arc::clone(&topic),
            listeners,
        }));
        if self.routes.len() >= ROUTE_CACHE_CAPACITY {
            self.routes.clear();
        }
        self.routes.insert(topic, Arc::clone(&route));
        route
    }

    /// Every registered pattern with its listeners, in no particular order.
    pub(crate) fn patterns(&self) -> Vec<(Arc<str>, Vec<Arc<T>>)> {
        self.read()
            .patterns
            .iter()
            .map(|(pattern, listeners)| (Arc::clone(pattern), listeners.clone()))
            .collect()
    }

    fn read(&self) -> RwLockReadGuard<'_, Trie<T>> {
        // A panic cannot leave the trie half-updated (no user code runs under
        // the lock), so a poisoned lock is still consistent.
        self.trie
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Trie<T>> {
        self.trie
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Node {
    fn insert(&mut self, pattern: &Arc<str>) {
        let mut node = self;
        for segment in pattern.split('.') {
            let depth = node.depth + 1;
            let child = match segment {
                "*" => node.star.get_or_insert_with(Box::default).as_mut(),
                "**" => node.globstar.get_or_insert_with(Box::default).as_mut(),
                literal => node.literals.entry(literal.into()).or_default(),
            };
            child.depth = depth;
            node = child;
        }
        node.terminal = Some(Arc::clone(pattern));
    }

    /// Removes the pattern's terminal mark and prunes branches left empty.
    fn remove(&mut self, pattern: &str) {
        let segments: Vec<&str> = pattern.split('.').collect();
        self.remove_path(&segments);
    }

    /// Returns true when this node is now empty and can be pruned.
    fn remove_path(&mut self, segments: &[&str]) -> bool {
        match segments.split_first() {
            None => self.terminal = None,
            Some((segment, rest)) => match *segment {
                "*" => {
                    if self.star.as_mut().is_some_and(|n| n.remove_path(rest)) {
                        self.star = None;
                    }
                }
                "**" => {
                    if self.globstar.as_mut().is_some_and(|n| n.remove_path(rest)) {
                        self.globstar = None;
                    }
                }
                literal => {
                    if self
                        .literals
                        .get_mut(literal)
                        .is_some_and(|n| n.remove_path(rest))
                    {
                        self.literals.remove(literal);
                    }
                }
            },
        }
        self.terminal.is_none()
            && self.star.is_none()
            && self.globstar.is_none()
            && self.literals.is_empty()
    }

    /// Patterns that match `topic`, possibly with duplicates.
    fn matching(&self, topic: &str) -> Vec<&Arc<str>> {
        let segments: Vec<&str> = topic.split('.').collect();
        let mut walk = Walk {
            segments: &segments,
            found: Vec::new(),
            visited: HashSet::new(),
        };
        walk.visit(self, 0);
        walk.found
    }
}

struct Walk<'t, 's> {
    segments: &'s [&'s str],
    found: Vec<&'t Arc<str>>,
    /// (node, position) pairs already expanded, so that patterns with many
    /// `**` cost polynomial, not exponential, time.
    visited: HashSet<(*const Node, usize)>,
}

impl<'t> Walk<'t, '_> {
    fn visit(&mut self, node: &'t Node, at: usize) {
        if at == self.segments.len() {
            self.found.extend(node.terminal.as_ref());
        }
        self.descend(node, at);
    }

    fn descend(&mut self, node: &'t Node, at: usize) {
        if !self.visited.insert((node as *const Node, at)) {
            return;
        }
        let end = self.segments.len();
        if at < end {
            if let Some(child) = node.literals.get(self.segments[at]) {
                self.visit(child, at + 1);
            }
            if let Some(child) = &node.star {
                self.visit(child, at + 1);
            }
        }
        if let Some(globstar) = &node.globstar {
            // A trailing `**` after another segment must consume at least one.
            let ends_here = globstar
                .terminal
                .as_ref()
                .filter(|_| globstar.depth == 1 || at < end);
            self.found.extend(ends_here);
            for next in at..=end {
                self.descend(globstar, next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners(index: &TopicIndex<&'static str>, topic: &str) -> Vec<&'static str> {
        index.route(topic).listeners.iter().map(|l| **l).collect()
    }

    #[test]
    fn orders_by_specificity_then_registration() {
        let index = TopicIndex::default();
        index.insert("**", Arc::new("all"), |_| false).unwrap();
        index
            .insert("user.*", Arc::new("star-1"), |_| false)
            .unwrap();
        index
            .insert("user.created", Arc::new("exact"), |_| false)
            .unwrap();
        index
            .insert("user.*", Arc::new("star-2"), |_| false)
            .unwrap();
        assert_eq!(
            listeners(&index, "user.created"),
            ["exact", "star-1", "star-2", "all"]
        );
    }

    #[test]
    fn changes_invalidate_cached_routes() {
        let index = TopicIndex::default();
        index.insert("a.b", Arc::new("first"), |_| false).unwrap();
        assert_eq!(listeners(&index, "a.b"), ["first"]);
        index.insert("a.*", Arc::new("second"), |_| false).unwrap();
        assert_eq!(listeners(&index, "a.b"), ["first", "second"]);
        index.remove("a.b", |l| *l == "first").unwrap();
        assert_eq!(listeners(&index, "a.b"), ["second"]);
        assert_eq!(
            index.remove("a.b", |_| true).unwrap_err(),
            RemoveError::PatternNotFound
        );
        assert_eq!(
            index.remove("a.*", |l| *l == "nope").unwrap_err(),
            RemoveError::EntryNotFound
        );
    }

    #[test]
    fn pruned_patterns_no_longer_match() {
        let index = TopicIndex::default();
        index.insert("a.**", Arc::new("x"), |_| false).unwrap();
        index.remove("a.**", |_| true).unwrap();
        assert!(listeners(&index, "a.b").is_empty());
        assert!(index.patterns().is_empty());
    }

    #[test]
    fn trailing_globstar_needs_a_segment() {
        let index = TopicIndex::default();
        index
            .insert("event.**", Arc::new("tail"), |_| false)
            .unwrap();
        index.insert("**", Arc::new("all"), |_| false).unwrap();
        assert_eq!(listeners(&index, "event"), ["all"]);
        assert_eq!(listeners(&index, "event.x"), ["tail", "all"]);
    }
}
