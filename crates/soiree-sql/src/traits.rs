//! The soiree store traits, implemented once for both databases on the
//! shared core.

use std::time::Duration;

use soiree::{Delivery, FailedDelivery, Page, StoredEvent, StoredResult};

use crate::{Driver, SqlStore};

#[soiree::async_trait]
impl<DB: Driver> soiree::EventStore for SqlStore<DB> {
    /// Appends the event to the log: the log is both the history and the
    /// queue, so a saved event is also delivered to the group.
    async fn save_event(&self, event: &StoredEvent) -> soiree::Result<()> {
        Ok(self.core.append(event).await?)
    }

    async fn save_handler_result(&self, result: &StoredResult) -> soiree::Result<()> {
        Ok(self.core.save_result(result).await?)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    /// Atomic across processes: the key is claimed in the transaction that
    /// stores the event (see the crate's "Delayed events and unique keys").
    async fn append_unique(
        &self,
        event: &StoredEvent,
        key: &str,
        window: Duration,
    ) -> soiree::Result<soiree::Appended> {
        Ok(self.core.append_unique::<DB>(event, key, window).await?)
    }

    fn queue(&self) -> Option<&dyn soiree::EventQueue> {
        Some(self)
    }

    fn dedup(&self) -> Option<&dyn soiree::HandlerDedup> {
        Some(self)
    }

    fn history(&self) -> Option<&dyn soiree::EventHistory> {
        Some(self)
    }

    /// Listener limits hold across every process of the store (see the
    /// crate's "Listener limits").
    fn limits(&self) -> Option<&dyn soiree::SharedLimits> {
        Some(self)
    }

    fn leases(&self) -> Option<&dyn soiree::LeaderLease> {
        Some(self)
    }
}

/// A row per lease name (see the crate's "Periodic events"): one statement
/// per call, expiry on PostgreSQL's clock or SQLite's process clock.
#[soiree::async_trait]
impl<DB: Driver> soiree::LeaderLease for SqlStore<DB> {
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> soiree::Result<Option<soiree::Lease>> {
        self.core.acquire_lease(name, holder, ttl).await
    }

    async fn renew(
        &self,
        lease: &soiree::Lease,
        ttl: Duration,
        progress: Option<i64>,
    ) -> soiree::Result<bool> {
        self.core.renew_lease(lease, ttl, progress).await
    }

    async fn release(&self, lease: &soiree::Lease) -> soiree::Result<bool> {
        self.core.release_lease(lease).await
    }
}

#[soiree::async_trait]
impl<DB: Driver> soiree::EventQueue for SqlStore<DB> {
    async fn enqueue(&self, event: &StoredEvent) -> soiree::Result<()> {
        Ok(self.core.append(event).await?)
    }

    /// Delayed events wait out of the log until due; consumers move them
    /// into it (every poll interval at most), so they are never early.
    fn schedules(&self) -> bool {
        true
    }

    async fn cancel_scheduled(&self, event_id: &str) -> soiree::Result<bool> {
        Ok(self.core.cancel_scheduled(event_id).await?)
    }

    async fn dequeue(&self, max: usize, wait: Duration) -> soiree::Result<Vec<Delivery>> {
        DB::before_dequeue(self);
        Ok(self.core.dequeue(max, wait).await?)
    }

    async fn ack(&self, receipts: &[String]) -> soiree::Result<()> {
        Ok(self.core.ack(receipts).await?)
    }

    /// Settles failed deliveries as the store's
    /// [`FailurePolicy`](crate::FailurePolicy) says: by default they move
    /// to the dead letters with their errors.
    async fn fail(&self, failures: &[FailedDelivery]) -> soiree::Result<()> {
        Ok(self.core.fail(failures).await?)
    }

    /// As the store's [`FailurePolicy`](crate::FailurePolicy) says.
    fn dead_letters_failure(&self, delivery_count: u32) -> bool {
        self.core.dead_letters_failure(delivery_count)
    }

    /// Deferred deliveries become rows of the retry table due at their
    /// time, with their delivery count kept: durable, claimed by any
    /// consumer of the group once due, measured on the database's clock.
    fn defers(&self) -> bool {
        true
    }

    async fn defer(&self, deferrals: &[soiree::DeferredDelivery]) -> soiree::Result<()> {
        Ok(self.core.defer(deferrals).await?)
    }

    /// Hands back the deliveries read ahead and those the bus took but did
    /// not run, without counting a delivery.
    async fn release(&self, receipts: &[String]) -> soiree::Result<()> {
        Ok(self.core.release(receipts).await?)
    }

    /// A third of the lease timeout.
    fn lease_interval(&self) -> Option<Duration> {
        Some(self.core.lease_interval())
    }

    /// Extends the leases of the running deliveries and of those read
    /// ahead, until a delivery has been out for `max_handler_time`.
    async fn extend(&self, receipts: &[String]) -> soiree::Result<()> {
        Ok(self.core.extend(receipts).await?)
    }

    async fn backlog(&self) -> soiree::Result<u64> {
        Ok(self.core.backlog().await?)
    }
}

#[soiree::async_trait]
impl<DB: Driver> soiree::HandlerDedup for SqlStore<DB> {
    async fn handler_succeeded(&self, event_id: &str, handler_id: &str) -> soiree::Result<bool> {
        Ok(self.core.handler_succeeded(event_id, handler_id).await?)
    }
}

#[soiree::async_trait]
impl<DB: Driver> soiree::EventHistory for SqlStore<DB> {
    async fn events(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> soiree::Result<Page<StoredEvent>> {
        Ok(self.core.events(cursor, limit).await?)
    }

    async fn results(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> soiree::Result<Page<StoredResult>> {
        Ok(self.core.results(cursor, limit).await?)
    }
}
