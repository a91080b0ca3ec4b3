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

            /// Settles failed deliveries as the store's
            /// [`FailurePolicy`](crate::FailurePolicy) says: by default they
            /// move to the dead letters with their errors.
            async fn fail(&self, failures: &[soiree::FailedDelivery]) -> soiree::Result<()> {
                Ok(self.core().fail(failures).await?)
            }

            /// As the store's [`FailurePolicy`](crate::FailurePolicy) says.
            fn dead_letters_failure(&self, delivery_count: u32) -> bool {
                self.core().dead_letters_failure(delivery_count)
            }

            /// Hands back the deliveries read ahead and those the bus took but
            /// did not run, without counting a delivery.
            async fn release(&self, receipts: &[String]) -> soiree::Result<()> {
                Ok(self.core().release(receipts).await?)
            }

            /// A third of the lease timeout.
            fn lease_interval(&self) -> Option<std::time::Duration> {
                Some(self.core().lease_interval())
            }

            /// Extends the leases of the running deliveries and of those read
            /// ahead, until a delivery has been out for `max_handler_time`.
            async fn extend(&self, receipts: &[String]) -> soiree::Result<()> {
                Ok(self.core().extend(receipts).await?)
            }

            async fn backlog(&self) -> soiree::Result<u64> {
                Ok(self.core().backlog().await?)
            }
        }

        impl $store {
            /// Removes the events that every consumer group's cursor passed,
            /// that no lease covers and that are older than `older_than`;
            /// returns how many. The store does it by itself with the
            /// builder's `retention`. SQLite deletes them in batches of
            /// 10,000; PostgreSQL truncates and drops whole partitions of the
            /// log (see `partition_size`; it creates the next partitions
            /// first) and deletes in batches only from its DEFAULT partition.
            ///
            /// # Examples
            ///
            /// ```no_run
            /// # #[allow(dead_code)]
            #[doc = concat!("# async fn demo(store: soiree_sql::", stringify!($store), ") -> soiree_sql::Result<()> {")]
            /// let deleted = store
            ///     .prune_consumed(std::time::Duration::from_secs(7 * 86_400))
            ///     .await?;
            /// println!("{deleted} consumed events older than a week deleted");
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            ///
            /// [`Error::Database`](crate::Error::Database) when a delete fails
            /// (the batches and partitions before it stay removed). On
            /// PostgreSQL a partition whose lock is not had in time is left
            /// for a later call, without an error.
            pub async fn prune_consumed(
                &self,
                older_than: std::time::Duration,
            ) -> crate::Result<u64> {
                self.core().prune_consumed(older_than).await
            }

            /// The group's backlog, the age of its oldest unconsumed event
            /// and, on PostgreSQL, the xmin lag; also sets the matching
            /// gauges (a consumer store refreshes them by itself every 15 s,
            /// or every quarter of the retention window).
            ///
            /// # Examples
            ///
            /// ```no_run
            /// # #[allow(dead_code)]
            #[doc = concat!("# async fn demo(store: soiree_sql::", stringify!($store), ") -> soiree_sql::Result<()> {")]
            /// let stats = store.stats().await?;
            /// println!("{} waiting, oldest {:?}", stats.backlog, stats.oldest_unconsumed_age);
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            ///
            /// [`Error::Database`](crate::Error::Database) when a read fails.
            pub async fn stats(&self) -> crate::Result<crate::QueueStats> {
                self.core().stats().await
            }

            /// A page of the group's dead letters, oldest first; pass the
            /// page's `next` to get the following one.
            ///
            /// # Examples
            ///
            /// ```no_run
            /// # #[allow(dead_code)]
            #[doc = concat!("# async fn demo(store: soiree_sql::", stringify!($store), ") -> soiree_sql::Result<()> {")]
            /// let mut cursor = None;
            /// loop {
            ///     let page = store.dead_letters(cursor.as_deref(), 100).await?;
            ///     for dead in &page.items {
            ///         println!("{:?} {:?}: {}", dead.event_id, dead.topic, dead.error);
            ///     }
            ///     match page.next {
            ///         Some(next) => cursor = Some(next),
            ///         None => break,
            ///     }
            /// }
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            ///
            /// [`Error::InvalidCursor`](crate::Error::InvalidCursor) for a
            /// cursor this store did not issue,
            /// [`Error::Database`](crate::Error::Database) when the read fails.
            pub async fn dead_letters(
                &self,
                cursor: Option<&str>,
                limit: usize,
            ) -> crate::Result<soiree::Page<crate::SqlDeadLetter>> {
                self.core().dead_letters(cursor, limit).await
            }

            /// Replays the dead letters of one event (by its
            /// `soiree.event_id`): they are delivered to the group again
            /// with the same event id, and listeners registered with
            /// `on_named` that already succeeded for it are skipped. Returns
            /// how many were replayed. To deliver an event again from the
            /// log (one that succeeded, or whose letters are gone), use
            /// [`soiree::Inspect::replay`].
            ///
            /// # Examples
            ///
            /// ```no_run
            /// # #[allow(dead_code)]
            #[doc = concat!("# async fn demo(store: soiree_sql::", stringify!($store), ") -> soiree_sql::Result<()> {")]
            /// let replayed = store.replay("01J9ZQ0V6Y8P3N5Q7R2S4T6V8X").await?;
            /// println!("{replayed} dead letters delivered again");
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            ///
            /// [`Error::NotFound`](crate::Error::NotFound) when no dead letter
            /// of the group has this id,
            /// [`Error::NulCharacter`](crate::Error::NulCharacter) for an id
            /// with a NUL, [`Error::PermissionDenied`](crate::Error::PermissionDenied)
            /// when the role or file may not write,
            /// [`Error::Database`](crate::Error::Database) when the write fails
            /// (nothing was replayed).
            pub async fn replay(&self, event_id: &str) -> crate::Result<u64> {
                let core = self.core();
                let filter = crate::SqlDeadLetterFilter::all().event_id(event_id);
                match core
                    .privileged(crate::privileges::REPLAY, core.replay_dead_letters(&filter))
                    .await?
                {
                    0 => Err(crate::Error::NotFound(event_id.to_owned())),
                    n => Ok(n),
                }
            }

            /// Replays the dead letters chosen by `filter` (oldest first):
            /// they are delivered to the group again with their event ids.
            /// Returns how many.
            ///
            /// # Examples
            ///
            /// ```no_run
            /// # #[allow(dead_code)]
            #[doc = concat!("# async fn demo(store: soiree_sql::", stringify!($store), ") -> soiree_sql::Result<()> {")]
            /// use soiree_sql::SqlDeadLetterFilter;
            /// let replayed = store
            ///     .replay_dead_letters(&SqlDeadLetterFilter::all().topic("order.paid"))
            ///     .await?;
            /// println!("{replayed} dead letters delivered again");
            /// # Ok(()) }
            /// ```
            ///
            /// # Errors
            ///
            /// As for [`replay`](Self::replay), but none matching is `Ok(0)`.
            pub async fn replay_dead_letters(
                &self,
                filter: &crate::SqlDeadLetterFilter,
            ) -> crate::Result<u64> {
                let core = self.core();
                core.privileged(crate::privileges::REPLAY, core.replay_dead_letters(filter))
                    .await
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
