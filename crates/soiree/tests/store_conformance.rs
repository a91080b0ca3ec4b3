//! The store conformance suite, hostile rows included, against the in-memory
//! store with its queue and without: one test per check.

use std::sync::Arc;
use std::time::Duration;

use soiree::MemoryStore;
use soiree_test::conformance::Conformance;

/// Short enough for the redelivery check to be quick, long enough that no
/// other check's deliveries time out on a loaded machine.
const VISIBILITY: Duration = Duration::from_secs(2);

fn config() -> Conformance {
    Conformance {
        redelivery_after: Some(VISIBILITY),
        ..Conformance::default()
    }
}

fn queue() -> MemoryStore {
    match MemoryStore::queue().with_visibility_timeout(VISIBILITY) {
        Ok(store) => store,
        Err(err) => panic!("a positive visibility timeout was rejected: {err}"),
    }
}

/// Two handles on one store, for two consumer groups.
fn groups(first: MemoryStore) -> (Arc<MemoryStore>, Arc<MemoryStore>) {
    let second = first.in_group("second");
    (Arc::new(first), Arc::new(second))
}

mod memory_queue {
    use super::*;
    soiree_test::conformance_suite! {
        store: Arc::new(queue()), groups: groups(queue()), inspect: Arc::new(queue()),
        config: config(),
    }
}

mod memory {
    use super::*;
    soiree_test::conformance_suite! {
        store: Arc::new(MemoryStore::new()), lacks: [Queue, Scheduling],
        groups: groups(MemoryStore::new()), config: config(),
    }
}
