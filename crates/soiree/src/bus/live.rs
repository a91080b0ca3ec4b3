//! The process-wide list of live buses, for `shutdown_all`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, Weak};

use super::{BusInner, EventBus};

fn live() -> MutexGuard<'static, HashMap<u64, Weak<BusInner>>> {
    static LIVE: OnceLock<Mutex<HashMap<u64, Weak<BusInner>>>> = OnceLock::new();
    LIVE.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn next_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub(crate) fn register(key: u64, bus: Weak<BusInner>) {
    live().insert(key, bus);
}

pub(crate) fn unregister(key: u64) {
    live().remove(&key);
}

/// Closes every bus of this process that is still open, waiting for each one's
/// work to finish, and returns how many it closed.
///
/// # Examples
///
/// ```
/// use soiree::EventBus;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bus = EventBus::new();
/// assert!(soiree::shutdown_all().await >= 1);
/// assert!(bus.is_closed());
/// # }
/// ```
///
/// # Cancel safety
///
/// Cancelling the wait leaves the buses closed that were closed so far.
pub async fn shutdown_all() -> usize {
    let buses: Vec<EventBus> = live()
        .values()
        .filter_map(Weak::upgrade)
        .map(EventBus::from_inner)
        .collect();
    let mut closed = 0;
    for bus in buses {
        if bus.close().await.is_ok() {
            closed += 1;
        }
    }
    closed
}
