//! The Inspect checks against MemoryStore: the checks themselves hold for a
//! store that keeps the trait's promises.

use std::sync::Arc;

use soiree::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_inspect_checks() {
    soiree_test::inspect::check_inspect(|| async { Arc::new(MemoryStore::queue()) }).await;
}
