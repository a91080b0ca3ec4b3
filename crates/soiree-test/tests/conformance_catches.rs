//! The conformance suite fails stores that break its promises: each test runs
//! a check against a store with one deliberate flaw and expects the check's
//! panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use soiree::{
    Delivery, EventHistory, EventQueue, EventStore, HandlerDedup, MemoryStore, Page, Result,
    StoredEvent, StoredResult, async_trait,
};
use soiree_test::conformance::{self, Conformance};

/// The one thing a [`Flawed`] store gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// None: the store is a faithful wrapper.
    None,
    /// Saves events without their ordinary properties.
    DropsProperties,
    /// Pages overlap: the next cursor repeats the page's last item.
    OverlappingPages,
    /// Forgets failed results.
    DropsFailures,
    /// Counts a success of any listener for every listener of the event.
    DedupIgnoresHandler,
    /// Counts a listener's success in any consumer group for every group.
    DedupIgnoresGroup,
    /// Returns each dequeued batch newest first.
    ReversesBatches,
    /// Leaves deliveries in flight out of the backlog.
    BacklogIgnoresInFlight,
    /// Returns one more delivery than asked for.
    ExceedsMax,
    /// Gives a limit's slots one holder more than the limit.
    SlotsPastTheLimit,
}

/// A [`MemoryStore`] queue with one flaw.
#[derive(Debug)]
struct Flawed {
    inner: MemoryStore,
    flaw: Flaw,
    in_flight: AtomicU64,
}

fn flawed(flaw: Flaw) -> Arc<dyn EventStore> {
    Arc::new(Flawed {
        inner: MemoryStore::queue(),
        flaw,
        in_flight: AtomicU64::new(0),
    })
}

/// Two handles on one flawed store, for two consumer groups.
fn flawed_groups(flaw: Flaw) -> (Arc<dyn EventStore>, Arc<dyn EventStore>) {
    let first = MemoryStore::queue();
    let second = first.in_group("second");
    let wrap = |inner| -> Arc<dyn EventStore> {
        Arc::new(Flawed {
            inner,
            flaw,
            in_flight: AtomicU64::new(0),
        })
    };
    (wrap(first), wrap(second))
}

#[async_trait]
impl EventStore for Flawed {
    async fn save_event(&self, event: &StoredEvent) -> Result<()> {
        let mut event = event.clone();
        if self.flaw == Flaw::DropsProperties {
            event
                .properties
                .retain(|key, _| key == soiree::PROPERTY_EVENT_ID);
        }
        self.inner.save_event(&event).await
    }

    async fn save_handler_result(&self, result: &StoredResult) -> Result<()> {
        if self.flaw == Flaw::DropsFailures && !result.succeeded() {
            return Ok(());
        }
        self.inner.save_handler_result(result).await
    }

    fn queue(&self) -> Option<&dyn EventQueue> {
        Some(self)
    }

    fn dedup(&self) -> Option<&dyn HandlerDedup> {
        Some(self)
    }

    fn history(&self) -> Option<&dyn EventHistory> {
        Some(self)
    }

    fn limits(&self) -> Option<&dyn soiree::SharedLimits> {
        Some(self)
    }
}

#[async_trait]
impl soiree::SharedLimits for Flawed {
    async fn acquire_slot(
        &self,
        key: &str,
        limit: u32,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let limit = if self.flaw == Flaw::SlotsPastTheLimit {
            limit + 1
        } else {
            limit
        };
        self.inner.acquire_slot(key, limit, holder, ttl).await
    }

    async fn renew_slots(&self, held: &[soiree::SlotHold], ttl: Duration) -> Result<()> {
        self.inner.renew_slots(held, ttl).await
    }

    async fn release_slot(&self, held: &soiree::SlotHold) -> Result<()> {
        self.inner.release_slot(held).await
    }

    async fn take_rate(&self, key: &str, count: u32, period: Duration) -> Result<Option<Duration>> {
        self.inner.take_rate(key, count, period).await
    }
}

#[async_trait]
impl EventQueue for Flawed {
    async fn enqueue(&self, event: &StoredEvent) -> Result<()> {
        EventQueue::enqueue(&self.inner, event).await
    }

    async fn dequeue(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let asked = if self.flaw == Flaw::ExceedsMax {
            max + 1
        } else {
            max
        };
        let mut deliveries = self.inner.dequeue(asked, wait).await?;
        if self.flaw == Flaw::ReversesBatches {
            deliveries.reverse();
        }
        self.in_flight
            .fetch_add(deliveries.len() as u64, Ordering::Relaxed);
        Ok(deliveries)
    }

    async fn ack(&self, receipts: &[String]) -> Result<()> {
        self.in_flight
            .fetch_sub(receipts.len() as u64, Ordering::Relaxed);
        self.inner.ack(receipts).await
    }

    async fn backlog(&self) -> Result<u64> {
        if self.flaw == Flaw::BacklogIgnoresInFlight {
            let in_flight = self.in_flight.load(Ordering::Relaxed);
            return Ok(self.inner.backlog().await?.saturating_sub(in_flight));
        }
        self.inner.backlog().await
    }
}

#[async_trait]
impl HandlerDedup for Flawed {
    async fn handler_succeeded(&self, event_id: &str, handler_id: &str) -> Result<bool> {
        if self.flaw == Flaw::DedupIgnoresHandler {
            let results = self.inner.results();
            return Ok(results
                .iter()
                .any(|result| result.event_id == event_id && result.succeeded()));
        }
        if self.flaw == Flaw::DedupIgnoresGroup {
            // The results of every group, as a dedup table without a group.
            let results = self.inner.results();
            return Ok(results.iter().any(|result| {
                result.event_id == event_id && result.handler_id == handler_id && result.succeeded()
            }));
        }
        self.inner.handler_succeeded(event_id, handler_id).await
    }
}

#[async_trait]
impl EventHistory for Flawed {
    async fn events(&self, cursor: Option<&str>, limit: usize) -> Result<Page<StoredEvent>> {
        let mut page = EventHistory::events(&self.inner, cursor, limit).await?;
        if self.flaw == Flaw::OverlappingPages && limit > 1 {
            page.next = page
                .next
                .and_then(|next| next.parse::<usize>().ok())
                .map(|next| (next - 1).to_string());
        }
        Ok(page)
    }

    async fn results(&self, cursor: Option<&str>, limit: usize) -> Result<Page<StoredResult>> {
        EventHistory::results(&self.inner, cursor, limit).await
    }
}

fn config() -> Conformance {
    Conformance {
        timeout: Duration::from_secs(5),
        ..Conformance::default()
    }
}

#[tokio::test]
#[should_panic(expected = "a saved event's properties changed")]
async fn catches_lost_properties() {
    conformance::saved_events_read_back_identical(flawed(Flaw::DropsProperties), &config()).await;
}

#[tokio::test]
#[should_panic(expected = "gave a different listing than one page")]
async fn catches_overlapping_pages() {
    conformance::event_history_pages_cover_all_events(flawed(Flaw::OverlappingPages), &config())
        .await;
}

#[tokio::test]
#[should_panic(expected = "another handler's success counted")]
async fn catches_dedup_that_ignores_the_handler() {
    conformance::dedup_is_scoped_per_event_and_handler(
        flawed(Flaw::DedupIgnoresHandler),
        &config(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(
    expected = "the second group's listener \"conformance-groups\" ran for 0 of 20 events"
)]
async fn catches_dedup_that_ignores_the_group() {
    let (first, second) = flawed_groups(Flaw::DedupIgnoresGroup);
    conformance::groups_each_run_every_event(first, second, &config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faithful_groups_pass() {
    let (first, second) = flawed_groups(Flaw::None);
    let outcome = conformance::groups_each_run_every_event(first, second, &config()).await;
    assert_eq!(outcome, conformance::Outcome::Passed);
}

#[tokio::test]
#[should_panic(expected = "not dequeued in the order enqueued")]
async fn catches_a_queue_that_is_not_fifo() {
    conformance::queue_is_fifo_for_one_consumer(flawed(Flaw::ReversesBatches), &config()).await;
}

#[tokio::test]
#[should_panic(expected = "does not count delivered, unacknowledged events")]
async fn catches_a_backlog_without_deliveries_in_flight() {
    conformance::queue_ack_removes_from_backlog(flawed(Flaw::BacklogIgnoresInFlight), &config())
        .await;
}

#[tokio::test]
#[should_panic(expected = "dequeue(1) returned 2 deliveries")]
async fn catches_a_dequeue_past_max() {
    conformance::queue_dequeue_respects_max(flawed(Flaw::ExceedsMax), &config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "for one failed attempt")]
async fn catches_lost_failures() {
    conformance::bus_reports_listener_errors(flawed(Flaw::DropsFailures), &config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "a third holder took one of 2 slots")]
async fn catches_slots_past_the_limit() {
    conformance::shared_limits_bound_slots_and_rates(flawed(Flaw::SlotsPastTheLimit), &config())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faithful_wrapper_passes_everything_it_can() {
    // Without a flaw the wrapper is a MemoryStore queue and passes: the
    // flaws above are what the checks catch.
    // It does not forward the optional scheduling, deferral, unique-key and lease
    // primitives, so those checks skip for that declared lack.
    let report = config().run_all(|| async { flawed(Flaw::None) }).await;
    let lacks = [
        conformance::Ability::Scheduling,
        conformance::Ability::Deferral,
        conformance::Ability::UniqueKeys,
        conformance::Ability::Leases,
    ];
    let skipped = report.skipped();
    assert!(
        skipped
            .iter()
            .any(|(_, reason)| *reason == "redelivery_after is not set"),
        "the opt-in redelivery check is skipped: {skipped:?}"
    );
    for (check, reason) in &skipped {
        assert!(
            *reason == "redelivery_after is not set"
                || lacks.iter().any(|ability| ability.missing() == *reason),
            "{check} skipped for an undeclared reason: {reason}"
        );
    }
    assert_eq!(
        report.passed().len() + skipped.len(),
        conformance::Check::ALL.len()
    );
}
