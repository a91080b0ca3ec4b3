//! The notifier: tells other processes that events arrived (PostgreSQL's
//! `NOTIFY`), throttled to once per interval however many arrive.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::backend::Backend;
use crate::core::Core;

/// Tells other processes that events arrived, at most once per `interval`,
/// while the store lives.
pub(crate) async fn notifier<B: Backend>(
    core: Weak<Core<B>>,
    poke: Arc<Notify>,
    interval: Duration,
) {
    loop {
        if tokio::time::timeout(Duration::from_secs(1), poke.notified())
            .await
            .is_err()
        {
            if core.strong_count() == 0 {
                return;
            }
            continue;
        }
        let Some(strong) = core.upgrade() else { return };
        if let Err(err) = strong.backend.notify_others().await {
            tracing::debug!(%err, "cannot notify other processes");
        }
        drop(strong);
        tokio::time::sleep(interval).await;
    }
}
