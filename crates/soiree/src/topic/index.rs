//! A segment trie of listener patterns with a per-topic route cache.
//!
//! Emitting looks the concrete topic up in the cache: one sharded-map read and
//! no scan of the registered patterns. A miss walks the trie, which visits only
//! the branches that can match, sorts the matching patterns by specificity and
//! caches the ordered listener list. `insert` and `remove` clear the cache
//! while holding the trie's write lock, and misses fill it while holding the
//! read lock, so a stale route can never be cached after a change.
//!
//! The trie's nodes live in one `Vec` and refer to each other by index, and
//! every operation on it is a loop: no pattern or topic, however long, makes
//! anything recurse per segment (dropping included). The walk is an NFA
//! simulation, one step per topic segment over a deduplicated set of active
//! nodes, so it costs `O(segments × reachable nodes)` whatever the patterns.

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crossbeam_utils::CachePadded;
use dashmap::DashMap;
use foldhash::fast::RandomState;

use super::Specificity;

/// The approximate bytes the cached routes may hold before the cache is
/// cleared, so that topics carrying ids (`user.123.created`) cannot grow it
/// without bound.
const ROUTE_CACHE_BUDGET: usize = 4 * 1024 * 1024;

/// Routes for topics longer than this are computed on every emit, never
/// cached: a few of them would take the whole budget.
const ROUTE_CACHE_MAX_TOPIC_LEN: usize = 1024;

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
    /// The approximate bytes held by `routes`. Written only by misses (which
    /// insert under this lock) and by `insert`/`remove` (which clear the
    /// cache under the trie's write lock): never on a cache hit.
    cached_bytes: Mutex<usize>,
}

#[derive(Debug)]
struct Trie<T> {
    /// `nodes[ROOT]` is the root; removed nodes are reset and listed in
    /// `free` for reuse.
    nodes: Vec<Node>,
    free: Vec<NodeId>,
    /// Listeners per pattern, in registration order.
    patterns: HashMap<Arc<str>, Vec<Arc<T>>>,
}

type NodeId = usize;

const ROOT: NodeId = 0;

#[derive(Debug, Default)]
struct Node {
    literals: HashMap<Box<str>, NodeId, RandomState>,
    star: Option<NodeId>,
    globstar: Option<NodeId>,
    /// A node reached by a `**`: it stays active as the `**` consumes
    /// segments.
    loops: bool,
    /// A node reached by a `**` that is not its pattern's first segment: a
    /// pattern ending here needs that `**` to consume at least one segment.
    needs_one: bool,
    /// The pattern that ends at this node, if any.
    terminal: Option<Arc<str>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.terminal.is_none()
            && self.star.is_none()
            && self.globstar.is_none()
            && self.literals.is_empty()
    }
}

/// An edge from a node to a child.
#[derive(Debug, Clone, Copy)]
enum Edge<'p> {
    Literal(&'p str),
    Star,
    Globstar,
}

impl<'p> Edge<'p> {
    fn of(segment: &'p str) -> Self {
        match segment {
            "*" => Edge::Star,
            "**" => Edge::Globstar,
            literal => Edge::Literal(literal),
        }
    }
}

impl<T> Default for TopicIndex<T> {
    fn default() -> Self {
        Self {
            trie: RwLock::new(Trie {
                nodes: vec![Node::default()],
                free: Vec::new(),
                patterns: HashMap::new(),
            }),
            routes: DashMap::with_hasher(RandomState::default()),
            cached_bytes: Mutex::new(0),
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
            trie.insert_path(&pattern);
            trie.patterns.insert(pattern, vec![entry]);
        }
        self.clear_routes();
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
            trie.remove_path(pattern);
        }
        self.clear_routes();
        Ok(removed)
    }

    /// The cached route of `topic`, if there is one. Only topics that were
    /// validated (and trimmed) are ever cached, so a hit also says that
    /// `topic` is a valid topic as given: emitting checks the cache before it
    /// validates.
    pub(crate) fn cached_route(&self, topic: &str) -> Option<SharedRoute<T>> {
        self.routes
            .get(topic)
            .map(|route| Arc::clone(route.value()))
    }

    /// The listeners that hear `topic`, most specific pattern first.
    /// `topic` must be valid and trimmed (`validate_topic`): it is cached
    /// as such (see [`cached_route`](Self::cached_route)).
    pub(crate) fn route(&self, topic: &str) -> SharedRoute<T> {
        if let Some(route) = self.cached_route(topic) {
            return route;
        }
        let trie = self.read();
        let mut patterns = trie.matching(topic).patterns;
        patterns.sort_by_cached_key(|pattern| Specificity::of(pattern));
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
        if topic.len() <= ROUTE_CACHE_MAX_TOPIC_LEN {
            self.cache(topic, &route);
        }
        route
    }

    /// Caches a route computed under the trie's read lock, clearing the cache
    /// first when the route would take it over budget.
    fn cache(&self, topic: Arc<str>, route: &SharedRoute<T>) {
        let cost = route_cost(route);
        if cost > ROUTE_CACHE_BUDGET {
            return;
        }
        let mut bytes = lock(&self.cached_bytes);
        if *bytes + cost > ROUTE_CACHE_BUDGET {
            self.routes.clear();
            *bytes = 0;
        }
        // Another miss on the same topic may have cached it meanwhile.
        if let Some(replaced) = self.routes.insert(topic, Arc::clone(route)) {
            *bytes = bytes.saturating_sub(route_cost(&replaced));
        }
        *bytes += cost;
    }

    /// Called with the trie's write lock held, so that no miss is filling
    /// the cache.
    fn clear_routes(&self) {
        let mut bytes = lock(&self.cached_bytes);
        self.routes.clear();
        *bytes = 0;
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

/// No user code runs under the lock: a poisoned one is still consistent.
fn lock(bytes: &Mutex<usize>) -> std::sync::MutexGuard<'_, usize> {
    bytes
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The approximate bytes a cached route holds: its topic and listener list,
/// the two `Arc` allocations and the map's entry.
fn route_cost<T>(route: &SharedRoute<T>) -> usize {
    const ARC_COUNTS: usize = 2 * size_of::<usize>();
    route.topic.len()
        + route.listeners.capacity() * size_of::<Arc<T>>()
        + 2 * ARC_COUNTS
        + size_of::<CachePadded<Route<T>>>()
        + size_of::<(Arc<str>, SharedRoute<T>)>()
        + size_of::<usize>()
}

/// The result of a walk: matching patterns (possibly repeated) and the
/// number of (node, segment) steps taken, which tests bound.
struct Matches<'t> {
    patterns: Vec<&'t Arc<str>>,
    #[cfg_attr(not(test), allow(dead_code))]
    steps: usize,
}

impl<T> Trie<T> {
    fn insert_path(&mut self, pattern: &Arc<str>) {
        let mut node = ROOT;
        for segment in pattern.split('.') {
            let edge = Edge::of(segment);
            node = match self.child(node, edge) {
                Some(child) => child,
                None => {
                    let globstar = matches!(edge, Edge::Globstar);
                    let child = self.allocate(Node {
                        loops: globstar,
                        needs_one: globstar && node != ROOT,
                        ..Node::default()
                    });
                    let parent = &mut self.nodes[node];
                    match edge {
                        Edge::Star => parent.star = Some(child),
                        Edge::Globstar => parent.globstar = Some(child),
                        Edge::Literal(literal) => {
                            parent.literals.insert(literal.into(), child);
                        }
                    }
                    child
                }
            };
        }
        self.nodes[node].terminal = Some(Arc::clone(pattern));
    }

    /// Removes the pattern's terminal mark and prunes the nodes left empty,
    /// from the end of its path back towards the root.
    fn remove_path(&mut self, pattern: &str) {
        let mut path: Vec<(NodeId, Edge<'_>)> = Vec::new();
        let mut node = ROOT;
        for segment in pattern.split('.') {
            let edge = Edge::of(segment);
            let Some(child) = self.child(node, edge) else {
                return;
            };
            path.push((node, edge));
            node = child;
        }
        self.nodes[node].terminal = None;
        while let Some((parent, edge)) = path.pop() {
            if !self.nodes[node].is_empty() {
                break;
            }
            let owner = &mut self.nodes[parent];
            match edge {
                Edge::Star => owner.star = None,
                Edge::Globstar => owner.globstar = None,
                Edge::Literal(literal) => {
                    owner.literals.remove(literal);
                }
            }
            self.nodes[node] = Node::default();
            self.free.push(node);
            node = parent;
        }
        if self.nodes[ROOT].is_empty() {
            // Nothing registered: give the memory back.
            self.nodes.truncate(1);
            self.nodes.shrink_to_fit();
            self.free = Vec::new();
        }
    }

    fn child(&self, node: NodeId, edge: Edge<'_>) -> Option<NodeId> {
        let node = &self.nodes[node];
        match edge {
            Edge::Star => node.star,
            Edge::Globstar => node.globstar,
            Edge::Literal(literal) => node.literals.get(literal).copied(),
        }
    }

    fn allocate(&mut self, node: Node) -> NodeId {
        match self.free.pop() {
            Some(id) => {
                self.nodes[id] = node;
                id
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        }
    }

    /// Patterns that match `topic`, possibly with duplicates.
    ///
    /// An active state is a node, meaning "the pattern prefix leading here
    /// consumed the topic's segments read so far", with one bit: whether a
    /// `**` node consumed at least one segment itself (a trailing `**` after
    /// another segment must). Each step reads one segment and deduplicates
    /// the next states, so no state is expanded twice per segment.
    fn matching(&self, topic: &str) -> Matches<'_> {
        let mut active: Vec<usize> = Vec::new();
        let mut next: Vec<usize> = Vec::new();
        let mut steps = 0;
        self.enter(ROOT, &mut active);
        for segment in topic.split('.') {
            if active.is_empty() {
                break;
            }
            next.clear();
            for &state in &active {
                steps += 1;
                let id = state >> 1;
                let node = &self.nodes[id];
                if let Some(&child) = node.literals.get(segment) {
                    self.enter(child, &mut next);
                }
                if let Some(child) = node.star {
                    self.enter(child, &mut next);
                }
                if node.loops {
                    // The `**` consumes this segment too and stays active.
                    // The `**` nodes after it need no re-entering: they were
                    // entered with it, so they are active and loop as well.
                    next.push(id << 1 | CONSUMED);
                }
            }
            next.sort_unstable();
            next.dedup();
            std::mem::swap(&mut active, &mut next);
        }
        let patterns = active
            .iter()
            .filter_map(|&state| {
                let node = &self.nodes[state >> 1];
                let consumed = state & CONSUMED != 0;
                node.terminal
                    .as_ref()
                    .filter(|_| consumed || !node.needs_one)
            })
            .collect();
        Matches { patterns, steps }
    }

    /// Activates `node` and, through `**` edges consuming nothing yet, the
    /// `**` nodes after it.
    fn enter(&self, mut node: NodeId, states: &mut Vec<usize>) {
        states.push(node << 1);
        while let Some(globstar) = self.nodes[node].globstar {
            states.push(globstar << 1);
            node = globstar;
        }
    }
}

/// The state bit set once a `**` node consumed a segment itself.
const CONSUMED: usize = 1;

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

    /// Runs `f` on a thread with a 256 KiB stack: a walk, insert, remove or
    /// drop that recursed per segment would overflow it on the deep tries
    /// below.
    fn on_small_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(f)
            .expect("a thread")
            .join()
            .expect("no panic");
    }

    fn repeat(segment: &str, times: usize) -> String {
        vec![segment; times].join(".")
    }

    #[test]
    fn routing_steps_are_linear_in_the_topic_length() {
        // Far past the bus's limits: the index itself has none.
        let segments = 100_000;
        let topic = repeat("a", segments);
        let index = TopicIndex::default();
        let patterns = [
            ("**.x.**.y", false),
            ("a.**.a.**.a", true),
            ("**.**.**", true),
            ("a.*.**", true),
            ("**.a", true),
            ("**.a.**", true),
            ("a.**.b.**", false),
            ("*", false),
        ];
        for (pattern, _) in patterns {
            index.insert(pattern, Arc::new(pattern), |_| false).unwrap();
        }
        let trie = index.read();
        let matches = trie.matching(&topic);
        let mut found: Vec<&str> = matches.patterns.iter().map(|p| &***p).collect();
        found.sort_unstable();
        found.dedup();
        let mut expected: Vec<&str> = patterns
            .iter()
            .filter(|(_, matches)| *matches)
            .map(|(pattern, _)| *pattern)
            .collect();
        expected.sort_unstable();
        assert_eq!(found, expected);
        // Each segment expands each node (in both of its states) once at most.
        let bound = segments * 2 * trie.nodes.len();
        assert!(matches.steps <= bound, "{} steps > {bound}", matches.steps);
    }

    #[test]
    fn deep_tries_are_built_walked_pruned_and_dropped_without_recursion() {
        on_small_stack(|| {
            let deep = 50_000;
            let literal = repeat("a", deep);
            // Deep, with many `**`; walked with short topics only, since
            // every `**` entered stays active.
            let wild = format!("b.{}", repeat("**.*.b", deep / 3));
            let index = TopicIndex::default();
            for pattern in [&literal, &wild] {
                index.insert(pattern, Arc::new(0), |_| false).unwrap();
            }
            let shared_prefix = format!("{literal}.b");
            index
                .insert(&shared_prefix, Arc::new(1), |_| false)
                .unwrap();
            assert_eq!(*index.route(&literal).listeners[0], 0);
            assert_eq!(*index.route(&shared_prefix).listeners[0], 1);
            assert_eq!(index.route("b.x.y.b").listeners.len(), 0);
            index.remove(&literal, |_| true).unwrap();
            assert_eq!(index.route(&literal).listeners.len(), 0);
            index.remove(&shared_prefix, |_| true).unwrap();
            index.remove(&wild, |_| true).unwrap();
            assert_eq!(index.read().nodes.len(), 1, "every node was pruned");
            for pattern in [&literal, &wild] {
                index.insert(pattern, Arc::new(0), |_| false).unwrap();
            }
            drop(index);
        });
    }

    fn cached_bytes(index: &TopicIndex<&'static str>) -> usize {
        *lock(&index.cached_bytes)
    }

    fn recounted_bytes(index: &TopicIndex<&'static str>) -> usize {
        index
            .routes
            .iter()
            .map(|entry| route_cost(entry.value()))
            .sum()
    }

    #[test]
    fn the_route_cache_stays_within_its_byte_budget() {
        let index = TopicIndex::default();
        index.insert("**", Arc::new("all"), |_| false).unwrap();
        index.insert("t.*", Arc::new("t"), |_| false).unwrap();
        // Topics as long as are cached, enough of them to pass the budget
        // a few times.
        let distinct = 10_000;
        for i in 0..distinct {
            let topic = format!("t.{i:0>width$}", width = ROUTE_CACHE_MAX_TOPIC_LEN - 2);
            assert_eq!(topic.len(), ROUTE_CACHE_MAX_TOPIC_LEN);
            assert_eq!(listeners(&index, &topic), ["t", "all"]);
            assert!(cached_bytes(&index) <= ROUTE_CACHE_BUDGET);
            if i % 1_000 == 0 {
                assert_eq!(cached_bytes(&index), recounted_bytes(&index));
            }
        }
        assert_eq!(cached_bytes(&index), recounted_bytes(&index));
        assert!(index.routes.len() < distinct, "the cache was cleared");
        assert!(index.routes.len() > distinct / 10, "it held many routes");

        // Longer topics are routed but never cached.
        let held = index.routes.len();
        let long = "x".repeat(60 * 1024);
        for i in 0..1_000 {
            let topic = format!("t.{i}{long}");
            assert_eq!(listeners(&index, &topic), ["t", "all"]);
        }
        assert_eq!(index.routes.len(), held);
        assert_eq!(cached_bytes(&index), recounted_bytes(&index));

        // Changes clear the cache and its count.
        index.insert("u", Arc::new("u"), |_| false).unwrap();
        assert_eq!((index.routes.len(), cached_bytes(&index)), (0, 0));
    }

    #[test]
    fn a_route_cached_twice_is_counted_once() {
        let index = TopicIndex::default();
        index.insert("a", Arc::new("a"), |_| false).unwrap();
        let route = index.route("a");
        index.cache(Arc::clone(&route.topic), &route);
        assert_eq!(cached_bytes(&index), route_cost(&route));
        assert_eq!(cached_bytes(&index), recounted_bytes(&index));
    }
}
