//! The hostile-row suite against the in-memory store, with and without its
//! queue: limits refused at emit and by the store, odd encodings and
//! numbers delivered intact, neighbours never harmed.

use std::sync::Arc;

use soiree::{EventStore, MemoryStore};
use soiree_test::conformance::{Conformance, Outcome, hostile};

fn memory() -> Arc<dyn EventStore> {
    Arc::new(MemoryStore::new())
}

fn memory_queue() -> Arc<dyn EventStore> {
    Arc::new(MemoryStore::queue())
}

macro_rules! hostile_tests {
    ($($check:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let outcome = hostile::$check(memory(), &Conformance::default()).await;
                    assert_eq!(outcome, Outcome::Passed);
                }
            )*
        }

        mod memory_queue {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let outcome = hostile::$check(memory_queue(), &Conformance::default()).await;
                    assert_eq!(outcome, Outcome::Passed);
                }
            )*
        }
    };
}

hostile_tests! {
    hostile_nesting_depth,
    hostile_odd_encodings,
    hostile_oversized_names,
    hostile_numbers,
    hostile_payload_sizes,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_runs_every_hostile_check() {
    hostile::run_all(|| async { memory_queue() }, &Conformance::default()).await;
}
