//! The store's background services, one per file (as river's
//! `internal/maintenance`): the consumer's heartbeat, retention with the
//! queue gauges, and the notifier that wakes other processes. Each runs
//! while the store lives and holds it only weakly.

pub(crate) mod heartbeat;
pub(crate) mod notifier;
pub(crate) mod retention;
