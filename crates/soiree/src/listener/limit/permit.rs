//! A run's permit under its listener's limits: held while the listener
//! runs, given back when dropped.

use std::sync::Arc;

use super::local::Taken;
use super::shared::{Shared, release};
use crate::SlotHold;

/// The local permits and the shared slots of one run.
#[derive(Default)]
pub(crate) struct LimitPermit {
    _local: Taken,
    shared: Option<(Arc<Shared>, Vec<SlotHold>)>,
}

impl std::fmt::Debug for LimitPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitPermit").finish_non_exhaustive()
    }
}

impl LimitPermit {
    pub(super) fn local(local: Taken) -> Self {
        Self {
            _local: local,
            shared: None,
        }
    }

    pub(super) fn hold(&mut self, shared: Arc<Shared>, holds: Vec<SlotHold>) {
        self.shared = Some((shared, holds));
    }
}

impl Drop for LimitPermit {
    fn drop(&mut self) {
        if let Some((shared, holds)) = self.shared.take() {
            release(shared, holds);
        }
    }
}
