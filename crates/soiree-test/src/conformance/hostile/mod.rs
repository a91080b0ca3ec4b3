//! The hostile-row suite: events at and past the [`soiree::limits`], odd
//! encodings and numbers, emitted through a bus on the store between two
//! ordinary events.
//!
//! Each check asserts, for every hostile event, one of two outcomes: it is
//! refused loudly at emit with its typed error (and never delivered), or it
//! is stored and delivered intact with its event id. Either way the
//! ordinary events emitted just before and after it are delivered intact,
//! and the store's history (if any) still reads. What is refused is the
//! same for every store: the limits are soiree's, not the store's.
//!
//! [`conformance_suite!`](crate::conformance_suite) runs each check as its
//! own test, with the rest of the suite; a check can also be called alone,
//! or all of them in sequence with [`run_all`]:
//!
//! ```no_run
//! use std::sync::Arc;
//! use soiree::MemoryStore;
//! use soiree_test::conformance::{Conformance, hostile};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! let config = Conformance::default();
//! hostile::hostile_nesting_depth(Arc::new(MemoryStore::queue()), &config).await;
//! hostile::run_all(|| async { Arc::new(MemoryStore::new()) }, &config).await;
//! # }
//! ```

mod cases;
mod harness;

use std::future::Future;

pub use cases::{
    hostile_nesting_depth, hostile_numbers, hostile_odd_encodings, hostile_oversized_names,
    hostile_payload_sizes,
};

use super::{Conformance, IntoStore};

/// Runs every hostile check, each against a fresh store from `make_store`.
///
/// # Panics
///
/// When the store fails a check.
///
/// # Cancel safety
///
/// Dropping the future abandons the run; the store may hold part of its
/// data.
pub async fn run_all<F, Fut>(mut make_store: F, config: &Conformance)
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: IntoStore,
{
    hostile_nesting_depth(make_store().await.into_store(), config).await;
    hostile_odd_encodings(make_store().await.into_store(), config).await;
    hostile_oversized_names(make_store().await.into_store(), config).await;
    hostile_numbers(make_store().await.into_store(), config).await;
    hostile_payload_sizes(make_store().await.into_store(), config).await;
}
