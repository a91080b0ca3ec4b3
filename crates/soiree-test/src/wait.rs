//! Bounded waits for tests: every wait of a test has a limit, and a test
//! that reaches it fails instead of hanging.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use soiree_test::wait::{eventually, within};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let answer = within(Duration::from_secs(5), "the answer", async { 42 }).await;
//! assert_eq!(answer, 42);
//! assert!(eventually(Duration::from_secs(5), || async { true }).await);
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

/// How often [`eventually`] checks again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` every 20 ms until it returns true, for at most `limit`
/// (checked once more at the limit); whether it did.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Awaits `future` for at most `limit`.
///
/// # Panics
///
/// When it takes longer, naming `what`.
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what} took longer than {limit:?}"),
    }
}

/// Waits until `store`'s group has nothing undelivered or unacknowledged
/// (its backlog is 0), for at most `limit`; every read bounded by `limit`
/// too.
///
/// # Panics
///
/// When the backlog is not empty by then, naming it "every delivery
/// settled", or a read fails.
pub async fn until_drained(limit: Duration, store: &impl soiree::EventQueue) {
    assert!(
        eventually(limit, || async {
            within(limit, "backlog", store.backlog()).await.unwrap() == 0
        })
        .await,
        "every delivery settled"
    );
}
