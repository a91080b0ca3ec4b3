//! The soiree store traits, implemented the same way by both stores on
//! their shared core.

/// Implements `EventStore`, `EventQueue`, `HandlerDedup` and `EventHistory`
/// for a store type with `fn core(&self) -> &Arc<Core<_>>` and
/// `fn before_dequeue(&self)`.
macro_rules! store_traits {
    ($store:ty) => {
        #[soiree::async_trait]
        impl soiree::EventStore for $store {
            /// Appends the event to the log: the log is both the history and
            /// the queue, so a saved event is also delivered to the group.
            async fn save_event(&self, event: &soiree::StoredEvent) -> soiree::Result<()> {
                Ok(self.core().append(event).await?)
            }

            async fn save_handler_result(
                &self,
                result: &soiree::StoredResult,
            ) -> soiree::Result<()> {
                Ok(self.core().save_result(result).await?)
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
        }

        #[soiree::async_trait]
        impl soiree::EventQueue for $store {
            async fn enqueue(&self, event: &soiree::StoredEvent) -> soiree::Result<()> {
                Ok(self.core().append(event).await?)
            }

            async fn dequeue(
                &self,
                max: usize,
                wait: std::time::Duration,
            ) -> soiree::Result<Vec<soiree::Delivery>> {
                self.before_dequeue();
                Ok(self.core().dequeue(max, wait).await?)
            }

            async fn ack(&self, receipts: &[String]) -> soiree::Result<()> {
                Ok(self.core().ack(receipts).await?)
            }

            async fn backlog(&self) -> soiree::Result<u64> {
                Ok(self.core().backlog().await?)
            }
        }

        #[soiree::async_trait]
        impl soiree::HandlerDedup for $store {
            async fn handler_succeeded(
                &self,
                event_id: &str,
                handler_id: &str,
            ) -> soiree::Result<bool> {
                Ok(self.core().handler_succeeded(event_id, handler_id).await?)
            }
        }

        #[soiree::async_trait]
        impl soiree::EventHistory for $store {
            async fn events(
                &self,
                cursor: Option<&str>,
                limit: usize,
            ) -> soiree::Result<soiree::Page<soiree::StoredEvent>> {
                Ok(self.core().events(cursor, limit).await?)
            }

            async fn results(
                &self,
                cursor: Option<&str>,
                limit: usize,
            ) -> soiree::Result<soiree::Page<soiree::StoredResult>> {
                Ok(self.core().results(cursor, limit).await?)
            }
        }
    };
}

pub(crate) use store_traits;
