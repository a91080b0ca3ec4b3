//! Limits kept in the store, shared by every process: slots with an
//! expiry, renewed while their runs go on, and a GCRA rate.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use super::ListenerLimits;
use crate::store::EventStore;
use crate::{SharedLimits, SlotHold};

/// The pause before asking again after the store failed to answer.
const AFTER_ERROR: Duration = Duration::from_millis(100);

/// One listener's limits in a shared store.
pub(super) struct Shared {
    store: Arc<dyn EventStore>,
    /// The listener's id, length-prefixed: keys of two listeners never meet.
    scope: String,
    ttl: Duration,
    /// Slots held by runs of this process, renewed until released; `true`
    /// while a renewal task runs.
    held: Mutex<(HashSet<SlotHold>, bool)>,
}

impl Shared {
    pub(super) fn new(store: Arc<dyn EventStore>, listener: &str, ttl: Duration) -> Self {
        Self {
            store,
            scope: format!("{}:{listener}", listener.len()),
            ttl,
            held: Mutex::default(),
        }
    }

    fn limits(&self) -> &dyn SharedLimits {
        self.store
            .limits()
            .expect("a shared limiter is made only for a store with limits")
    }

    /// Takes the listener's slot and the key's: `Err` with how long to
    /// wait (`None`: until a run ends) when one is full.
    pub(super) async fn take_slots(
        self: &Arc<Self>,
        options: &ListenerLimits,
        key: Option<&str>,
    ) -> Result<Vec<SlotHold>, Option<Duration>> {
        let holder = ulid::Ulid::generate().to_string();
        let mut wanted = Vec::new();
        if let Some(limit) = options.max_concurrent {
            wanted.push((self.scope.clone(), limit));
        }
        if let (Some((_, limit)), Some(key)) = (&options.per_key, key) {
            wanted.push((format!("{}/key:{key}", self.scope), *limit));
        }
        let mut taken = Vec::new();
        for (key, limit) in wanted {
            let hold = SlotHold {
                key,
                holder: holder.clone(),
            };
            let outcome = self
                .limits()
                .acquire_slot(&hold.key, limit, &hold.holder, self.ttl)
                .await;
            match outcome {
                Ok(true) => taken.push(hold),
                Ok(false) => {
                    release(Arc::clone(self), taken);
                    return Err(None);
                }
                Err(err) => {
                    tracing::warn!(%err, key = hold.key, "taking a listener limit's slot failed; retrying");
                    release(Arc::clone(self), taken);
                    return Err(Some(AFTER_ERROR));
                }
            }
        }
        if !taken.is_empty() {
            self.keep(&taken);
        }
        Ok(taken)
    }

    /// Counts a run under the listener's rate.
    pub(super) async fn take_rate(
        &self,
        count: u32,
        period: Duration,
    ) -> Result<(), Option<Duration>> {
        match self.limits().take_rate(&self.scope, count, period).await {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(Some(wait)),
            Err(err) => {
                tracing::warn!(%err, key = self.scope, "taking a listener rate failed; retrying");
                Err(Some(AFTER_ERROR))
            }
        }
    }

    /// Renews `holds` until they are released.
    fn keep(self: &Arc<Self>, holds: &[SlotHold]) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.0.extend(holds.iter().cloned());
        if !held.1
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            held.1 = true;
            drop(runtime.spawn(renew(Arc::downgrade(self))));
        }
    }

    /// Stops renewing `holds`.
    pub(super) fn forget(&self, holds: &[SlotHold]) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        for hold in holds {
            held.0.remove(hold);
        }
    }
}

/// Frees slots in the background (they expire anyway if this fails).
pub(super) fn release(shared: Arc<Shared>, holds: Vec<SlotHold>) {
    if holds.is_empty() {
        return;
    }
    shared.forget(&holds);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    drop(runtime.spawn(async move {
        for hold in &holds {
            let released =
                tokio::time::timeout(shared.ttl, shared.limits().release_slot(hold)).await;
            if !matches!(released, Ok(Ok(()))) {
                tracing::warn!(
                    key = hold.key,
                    "releasing a listener limit's slot failed: it expires on its own"
                );
            }
        }
    }));
}

/// Renews the held slots every third of their time to live, until none is
/// held (then the task ends; the next hold starts another).
async fn renew(shared: Weak<Shared>) {
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let every = strong.ttl / 3;
        drop(strong);
        tokio::time::sleep(every).await;
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let holds: Vec<SlotHold> = {
            let mut held = strong.held.lock().unwrap_or_else(PoisonError::into_inner);
            if held.0.is_empty() {
                held.1 = false;
                return;
            }
            held.0.iter().cloned().collect()
        };
        let renewed =
            tokio::time::timeout(every, strong.limits().renew_slots(&holds, strong.ttl)).await;
        match renewed {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(%err, count = holds.len(), "renewing listener limit slots failed")
            }
            Err(_) => tracing::warn!(
                count = holds.len(),
                "renewing listener limit slots timed out"
            ),
        }
    }
}
