//! Soiree: an event bus for Rust services.
//!
//! Listeners register on topic patterns (`user.created`, `user.*`,
//! `audit.**`); each emitted event runs its matching listeners, most specific
//! pattern first and in registration order within a pattern, on a bounded
//! worker pool. Errors come back to the emitter as a stream, none dropped; a
//! panicking listener is caught and the others still run; failing listeners
//! are retried with backoff. With a durable store the bus becomes an
//! at-least-once event pipeline across processes.
//!
//! This is the Rust implementation of the Go package `soiree` (openlane
//! core), with the same concepts and metric names.
//!
//! # Quick start
//!
//! ```
//! use futures::StreamExt;
//! use soiree::{Event, EventBus};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
//! let bus = EventBus::new();
//! bus.on("user.created", |ctx| async move {
//!     let name = ctx.property_str("name").unwrap_or_default();
//!     println!("welcome {name}");
//!     Ok(())
//! })?;
//! // Every listener registered: start. With a queue store nothing is
//! // delivered before it; without one it does nothing.
//! bus.start()?;
//!
//! let event = Event::new("user.created", serde_json::json!({ "email": "user@example.com" }));
//! event.properties().set("name", "Ada Lovelace");
//! let mut errors = bus.emit("user.created", event);
//! while let Some(err) = errors.next().await {
//!     eprintln!("listener error: {err}");
//! }
//! # Ok(()) }
//! ```
//!
//! # Concepts
//!
//! | concept | type | what it does |
//! |---|---|---|
//! | bus | [`EventBus`] | owns topics and listeners, dispatches on a [`Pool`] |
//! | topics | [`topic_matches`] | `*` is one segment, `**` zero or more |
//! | listeners | [`Listener`], [`EventContext`] | async functions of an event context |
//! | batch listeners | [`EventBus::on_batch`], [`Batch`], [`BatchOutcome`] | one call for up to N events, an outcome per event |
//! | emissions | [`Emission`] | a stream of one emission's errors |
//! | context | [`Context`] | cancellation, deadline, extensions, tracing span |
//! | typed topics | [`TypedTopic`], [`bind_listener`] | listeners that take a typed payload |
//! | retries | [`RetryPolicy`], [`Backoff`], [`Permanent`] | attempts and delays for failing listeners |
//! | time and flow | [`EventBus::emit_at`], [`Event::deliver_at`], [`Snooze`], [`Event::unique_key`], [`EventBus::schedule`], [`Schedule`] | delayed events, snoozes, unique keys at emit, periodic and cron events fired once across processes |
//! | listener limits | [`ListenerBinding::max_concurrent`], [`ListenerBinding::max_concurrent_per_key`], [`ListenerBinding::rate`], [`SharedLimits`] | concurrency and rate limits per listener, across processes on durable stores |
//! | testing | [`testing::TestBus`], [`testing::RecordingEmitter`] | a bus run to idle under a paused clock; an emitter double |
//! | stores | [`EventStore`], [`EventQueue`], [`HandlerDedup`], [`EventHistory`], [`LeaderLease`] | persistence, queueing, de-duplication, leader election |
//! | metrics | [`MetricsRegistry`], [`StoreMetrics`] | Prometheus pool, listener and store metrics |
//! | workflows | `workflow` (feature `workflow`) | the workflow topics and payloads of the Go package |
//!
//! # Topics
//!
//! A topic is a dot-separated name such as `user.created`; listeners register
//! on patterns, where `*` matches exactly one segment and `**` zero or more,
//! except that a trailing `**` after another segment needs at least one
//! (`event.**` does not match `event`; a lone `**` matches everything). Names
//! are trimmed; empty segments, `?` and `[` are rejected, and so is any name
//! with more than [`MAX_TOPIC_SEGMENTS`] (256) segments or more than
//! [`MAX_TOPIC_LEN`] (64 KiB) bytes: [`EventBus::on`], [`EventBus::off`] and
//! [`EventBus::emit`] return [`Error::InvalidTopicName`] (whose `name` keeps
//! the first 64 characters), and [`topic_matches`] reports no match.
//! Matching an emitted topic costs time linear in its segments, whatever the
//! patterns, and the per-topic route cache is bounded in bytes.
//!
//! # Batch listeners
//!
//! A listener that is cheaper per event when it handles many at once (a
//! bulk insert, one request to a remote API) registers with
//! [`EventBus::on_batch`]: it gets a [`Batch`] of up to `max_items` events,
//! gathered for at most `max_wait`, and returns a [`BatchOutcome`] with an
//! outcome per event. Each event keeps its own delivery: only the failed
//! ones are retried or dead-lettered, and a store records a result per
//! event, so a redelivery skips the events already handled.
//!
//! ```
//! use std::time::Duration;
//! use futures::StreamExt;
//! use soiree::{Batch, EventBus};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let bus = EventBus::new();
//! bus.on_batch("count", "tick", 5, Duration::from_millis(10), |batch: Batch| async move {
//!     assert!(batch.len() <= 5);
//!     Ok(batch.succeeded())
//! }).unwrap();
//! let errors: Vec<_> = bus.emit("tick", ()).collect().await;
//! assert!(errors.is_empty());
//! # }
//! ```
//!
//! # Limits
//!
//! What one entry point accepts, every store keeps and every consumer reads
//! back: the bus's emit with a store, every store's `enqueue` and
//! `save_event`, and the SQL store's transactional emits check the same
//! [`limits`] before anything is written, and refuse an event past one
//! with a typed error, leaving the events around it alone.
//!
//! | limit | value | error |
//! |---|---|---|
//! | topic length, segments | [`MAX_TOPIC_LEN`] (64 KiB), [`MAX_TOPIC_SEGMENTS`] (256) | [`Error::InvalidTopicName`] |
//! | NUL in a topic, an event id | refused | [`Error::InvalidTopicName`], [`Error::InvalidEventId`] |
//! | event id length | [`limits::MAX_EVENT_ID_LEN`] (256 bytes) | [`Error::LimitExceeded`] |
//! | nesting of the payload, of each property value | [`limits::MAX_JSON_DEPTH`] (64) | [`Error::LimitExceeded`] |
//! | payload size | [`limits::MAX_PAYLOAD_LEN`] (1 MiB of JSON) | [`Error::LimitExceeded`] |
//! | property key length | [`limits::MAX_PROPERTY_KEY_LEN`] (256 bytes) | [`Error::LimitExceeded`] |
//! | properties size | [`limits::MAX_PROPERTIES_LEN`] (64 KiB of JSON) | [`Error::LimitExceeded`] |
//! | numbers JSON cannot hold (NaN, infinities, integers past 64 bits) | refused | [`Error::Serialization`] |
//!
//! Depth is counted while the payload's JSON is made, sizes on the bytes a
//! store writes: no event is parsed twice. Without a store the bus makes no
//! JSON and checks only the topic.
//!
//! # Listener limits
//!
//! A listener may be limited to `n` runs at once
//! ([`ListenerBinding::max_concurrent`]), to `n` runs at once per value of
//! an event property ([`ListenerBinding::max_concurrent_per_key`]: a tenant,
//! an account), and to `count` starts per period, evenly spaced
//! ([`ListenerBinding::rate`]). A run whose limit has no room is *parked*:
//! it leaves its worker and waits in a small task of its own, the event's
//! other listeners run meanwhile, and with a queue store the delivery
//! leaves the consumer's count of deliveries in flight (its lease is kept),
//! so other events go on. When room frees, the run goes back to the pool
//! holding its permit; the emission ends (and a delivery is acknowledged)
//! when its last parked run ends. A parked run waits until its limit has
//! room, the emit's [`Context`] ends or the bus closes (then it is reported
//! as [`Error::Cancelled`], and a delivery is handed back to be delivered
//! again). At most [`EventBusBuilder::max_parked`] runs (4096) wait parked;
//! past that a run waits on its worker. The time parked runs wait is the
//! histogram `soiree_listener_limit_wait_seconds{pool, pattern, listener}`.
//!
//! With a store that has [`SharedLimits`] ([`EventStore::limits`]: the SQL
//! and Redis stores, and the [`MemoryStore`] between the buses sharing it),
//! the limits of a listener registered under a stable name hold across
//! every process of the store: concurrency slots live in the store with an
//! expiry that the bus renews while the run goes on (a process killed
//! holding one frees it after [`ListenerBinding::limit_slot_ttl`], 30 s by
//! default), rates are a timestamp per listener. Without such a store, or
//! for an unnamed listener, each process enforces the limits alone: `n`
//! processes run up to `n` times the limit.
//!
//! ```
//! use std::time::Duration;
//! use soiree::{EventBus, ListenerBinding, MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
//! let bus = EventBus::builder().store(MemoryStore::queue()).build()?;
//! // At most 2 reports rendered at once, in every process of the store.
//! ListenerBinding::new("report.requested", |_ctx| async { Ok(()) })
//!     .named("render-report")
//!     .max_concurrent(2)
//!     .register(&bus)?;
//! // One sync per tenant at a time; other tenants go on.
//! ListenerBinding::new("invoice.issued", |_ctx| async { Ok(()) })
//!     .named("sync-ledger")
//!     .max_concurrent_per_key("tenant", 1)
//!     .register(&bus)?;
//! // At most 10 messages a second to the gateway.
//! ListenerBinding::new("sms.send", |_ctx| async { Ok(()) })
//!     .named("sms-gateway")
//!     .rate(10, Duration::from_secs(1))
//!     .register(&bus)?;
//! bus.start()?;
//! bus.close().await
//! # }
//! ```
//!
//! # Features of the design
//!
//! | | Go package | Soiree for Rust |
//! |---|---|---|
//! | listener errors | dropped past the channel buffer | every one delivered |
//! | a panicking listener | skips the remaining listeners | the others still run |
//! | matching | scans every pattern per emit | segment trie and per-topic cache |
//! | queue store | pops without acknowledgement | acknowledged after dispatch, redelivered on crash |
//! | `wait_for_idle` | busy-spins | sleeps until notified; waits only for earlier emissions |
//! | a fast producer | unbounded queue | bounded queue: [`EventBus::emit_async`] waits, [`EventBus::emit`] yields [`Error::QueueFull`] |
//! | emit with a store | persists on the listeners' workers | persists on a path of its own, then dispatches ([`Emission::persisted`]) |
//! | a failed delivery from a queue | lost | handed to [`EventQueue::fail`] (dead letters) |
//! | a listener awaiting its own bus | can deadlock | runs the awaited work itself |
//! | exit with work queued | silent loss | a warning with the counts; `close` persists and drains |

//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `metrics` | yes | Prometheus metrics (`prometheus-client`): [`MetricsRegistry`], the pool, bus and listener counters; off, every counter compiles to nothing |
//! | `workflow` | yes | [`workflow`]: the Go package's workflow topics, payloads and enums |
//! | `otel` | no | trace context across processes: an event emitted to a store carries its emitter's OpenTelemetry context (W3C `traceparent` in the properties `soiree.traceparent`/`soiree.tracestate`), and a consumer's listener spans continue that trace (under a `soiree.delivery` span); needs a `tracing-opentelemetry` layer |
//!
//! The library asks tokio only for `rt`, `sync`, `time` and `macros`: it
//! runs on whichever runtime the application builds (current-thread or
//! multi-thread), and never starts one of its own.

#![doc(test(attr(deny(warnings))))]

mod bus;
mod context;
mod error;
mod event;
pub mod limits;
mod listener;
mod metrics;
pub mod mutation;
mod periodic;
mod pool;
mod retry;
mod schedule;
mod store;
pub mod testing;
mod topic;
mod typed;
pub mod workflow;

pub use async_trait::async_trait;
pub use bus::{
    Emission, Emitter, ErrorHandler, EventBus, EventBusBuilder, IdGenerator, PanicHandler,
    Periodic, UnheardDeliveries, shutdown_all,
};
pub use context::Context;
pub use error::{BoxError, Error, Permanent, Result, permanent};
pub use event::{Event, IntoEvent, PROPERTY_EVENT_ID, Payload, Properties, StoredEvent, event_id};
pub use listener::{
    Batch, BatchOutcome, EventContext, Listener, ListenerBinding, ListenerId, ListenerLimits,
    ListenerPanic,
};
#[cfg(feature = "metrics")]
pub use metrics::{MetricsRegistry, StoreMetrics};
pub use periodic::{
    DEFAULT_LEASE_TTL, MIN_LEASE_TTL, MissedTicks, PROPERTY_SCHEDULE, PROPERTY_TICK, Schedule,
};
pub use pool::{DEFAULT_QUEUE_CAPACITY, Pool, PoolOptions};
pub use retry::{Backoff, RetryPolicy};
pub use schedule::{Appended, PROPERTY_DUE_AT, SNOOZED_PREFIX, Snooze};
pub use store::{
    ConsumerInfo, DeadLetter, DeadLetterSelection, DeferredDelivery, Delivery, EventDetail,
    EventHistory, EventQueue, EventStore, FailedDelivery, Filter, HandlerDedup, Inspect,
    LeaderLease, Lease, LeaseInfo, LimitSlot, MAX_LEASE_NAME_LEN, MemoryStore, Page,
    PendingDelivery, Query, Rates, Record, ScheduledEvent, SharedLimits, SlotHold, StoreInfo,
    StoreStats, StoredResult, inspect, kit,
};
/// Re-exported: [`Context::with_cancellation`] takes one.
pub use tokio_util::sync::CancellationToken;
pub use topic::{MAX_TOPIC_LEN, MAX_TOPIC_SEGMENTS, topic_matches, validate_pattern};
pub use typed::{
    ObservabilitySpec, TypedListener, TypedTopic, bind_listener, bind_typed_listener,
    unwrap_payload,
};
