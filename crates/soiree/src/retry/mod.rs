//! Retrying failed listeners: a policy (how many attempts, which errors) and a
//! backoff (how long to wait between them). A listener's error marked
//! [`Permanent`](crate::Permanent) is not retried.
//!
//! Waits are async sleeps: a listener waiting to retry does not block a worker
//! thread. With jitter off, delays are deterministic, and tests can drive them
//! with tokio's paused clock.

mod backoff;
mod policy;

pub use backoff::Backoff;
pub use policy::RetryPolicy;
