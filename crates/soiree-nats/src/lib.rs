//! A durable, at-least-once, replicated event queue for [`soiree`] on NATS
//! JetStream.
//!
//! [`NatsStore`] implements soiree's store traits ([`soiree::EventStore`],
//! [`soiree::EventQueue`], [`soiree::HandlerDedup`],
//! [`soiree::EventHistory`], [`soiree::LeaderLease`],
//! [`soiree::SharedLimits`]) and
//! [`soiree::Inspect`], so the bus, the
//! `soiree` CLI (`--store nats://…`) and the dashboard work on it
//! unchanged. Where the Redis and SQL stores live on one server, a
//! JetStream stream with 3 replicas keeps working when one of 3 servers
//! dies.
//!
//! # How soiree maps to JetStream
//!
//! | soiree | JetStream |
//! |---|---|
//! | a store (prefix `p`) | stream `SOIREE_p_EVENTS` over subjects `p.>`; dead letters in `SOIREE_p_DEAD`, results in `SOIREE_p_RESULTS`, listener successes in the KV bucket `SOIREE_p_DEDUP` |
//! | a topic `a.b` | the subject `p.a.b` ([`subject`]: characters subjects forbid are escaped reversibly) |
//! | emit, `persisted()` | a publish awaited until the stream acknowledges it (the replicated write); the event id is its `Nats-Msg-Id`, so a retried publish is stored once within the duplicate window |
//! | a consumer group | a durable pull consumer named after the group |
//! | the claim timeout | the consumer's AckWait |
//! | a lease extended while listeners run | an in-progress ack (`+WPI`) every third of the claim timeout |
//! | a failure, retried later | a NAK with delay ([`FailurePolicy::Redeliver`]) |
//! | a failure, or too many deliveries | an entry of the dead-letter stream with the error, the event and its id; then `+TERM` |
//! | an event emitted with a unique key ([`soiree::Event::unique_key`]) | the key reserved by a publish to `p_dedup.unique.<key>` that the stream accepts only while the key is free (`Nats-Expected-Last-Subject-Sequence`), then the event appended; a window lasts at most [`dedup_ttl`](NatsStoreBuilder::dedup_ttl) |
//! | listener results | the results saved since the last acknowledgement, as one message of `SOIREE_p_RESULTS` (a JSON array, on `p_results.<group>.<count>`) confirmed before the deliveries are acknowledged; a success also as a message on its event's subject of `SOIREE_p_DEDUP` |
//! | the bus asking whether a listener already succeeded | the successes of a dequeued batch's events, fetched with the batch (one request per event, all in flight at once: a direct get on a stream of one replica, else a message get answered by the stream's leader) |
//! | events with an ordering key, [`ordered_by_key`](NatsStoreBuilder::ordered_by_key)`(n)` | subjects `p_p<i>.<topic>`, `i` < `n` a hash of the key; one consumer `<group>~p<i>` per partition with `max_ack_pending = 1` |
//! | [`builder filter`](NatsStoreBuilder::filter) `order.*`, `order.**` | the consumer's filter subject `p.order.*`, `p.order.>` (a `**` inside a pattern is filtered by the store) |
//! | a delayed event (`emit_at`, `emit_after`, [`soiree::Event::deliver_at`]) | a message of the stream `SOIREE_p_SCHEDULED` on `p_sched.<event id in hex>` with its due time in the header `Soiree-Due`, moved into the events stream once due by one process (see [Time](#time)) |
//! | [`cancel_scheduled(id)`](soiree::EventQueue::cancel_scheduled) | a purge of the subject `p_sched.<id in hex>` |
//! | [`Inspect::scheduled`](soiree::Inspect::scheduled), `StoreStats::scheduled` | the scheduled stream read back, sorted by due time (the first 10,000 entries); its message count |
//! | a leader lease ([`soiree::LeaderLease`]: periodic events, the mover of delayed events) | a key of the KV bucket `SOIREE_p_LEASES` (the name in hex), whose JSON value is the grant; written only by compare-and-set on the key's revision |
//! | a listener's concurrency slots ([`soiree::SharedLimits`]: `max_concurrent`, `max_concurrent_per_key`) | a key `slot.<limit key in hex>` (a key over 512 bytes: `slot.h` and a 64-bit hash of it) of the KV bucket `SOIREE_p_LIMITS`, whose JSON value maps each holder to its expiry (Unix ms); taken, renewed and released by compare-and-set on the key's revision (see [Time](#time)) |
//! | a listener's rate (`rate(count, period)`) | a key `rate.<limit key in hex>` of `SOIREE_p_LIMITS` holding the earliest start of the next run (GCRA), moved by compare-and-set |
//! | [`Inspect::limit_slots`](soiree::Inspect::limit_slots) (`soiree limits list`, the dashboard) | the bucket's keys listed (the first 10,000), then each `slot.` key read |
//!
//! # Durability
//!
//! | situation | what happens |
//! |---|---|
//! | `emit` | the emission's `persisted()` resolves once the stream (all its replicas' quorum) acknowledged the event, or yields a `Store` error |
//! | a process dies mid-event | its deliveries come back to the group after the claim timeout |
//! | one server of a 3-replica cluster dies | publishes and deliveries go on through the others (the client reconnects); acknowledgements in flight may fail and their events come back: at least once |
//! | an event is delivered again | listeners registered with `on_named` that already succeeded for its event id in this group are skipped |
//! | a listener still fails after its retries | [`FailurePolicy`]: dead letter (default), redeliver with a delay, or acknowledge |
//! | an entry is delivered `max_deliveries` times without an acknowledgement | it moves to the dead letters with that reason |
//! | an entry is not an event | it moves to the dead letters alone; its neighbours are delivered |
//! | a bus closes | deliveries read ahead and not run are handed back (a NAK: JetStream counts it as a delivery) |
//!
//! # Time
//!
//! **Leader leases** ([`soiree::LeaderLease`], which
//! [`EventBus::schedule`](soiree::EventBus::schedule), `every` and `cron`
//! use so that one process fires each tick): every write of a lease's key
//! is a KV `update` that JetStream stores only while the key is still at
//! the revision read before it, so of two processes racing for a lease
//! one wins and the other reads the winner's grant: two holders are never
//! granted at once. A grant lasts its time to live from the **server's
//! timestamp** of its write (the stream leader's clock), compared with the
//! process's clock: keep the processes' and servers' clocks in step (NTP).
//! A process whose clock runs `d` ahead of the servers' may take an
//! unrenewed lease over up to `d` early; one whose clock is behind also
//! takes it over once it has seen the same grant unchanged for the time
//! to live on its own monotonic clock. Tokens are revisions (they only
//! grow); a released grant keeps its progress for the next holder.
//!
//! **Listener limits** ([`soiree::SharedLimits`]: `max_concurrent`,
//! `max_concurrent_per_key`, `rate` of listeners registered with a name)
//! hold across every process of the prefix, in the KV bucket
//! `SOIREE_p_LIMITS`, written by compare-and-set like the leases: a taker
//! reads a key's holders, drops the expired ones, adds itself if fewer than
//! the limit remain and writes back only if the key is still at the
//! revision it read, else reads again (8 times at most, then it answers "no
//! room" and the bus asks again shortly), so concurrent takers in any
//! number of processes never exceed the limit. A rate keeps the earliest
//! start of its next run, moved one interval (`period / count`) on each
//! admitted run. Slot expiries and rate times are the **calling process's
//! clock** (Unix milliseconds), as in the other stores: keep the
//! processes' clocks in step (NTP), as the leases ask already; a process
//! whose clock runs `d` ahead frees others' slots up to `d` early and
//! admits a rate's runs up to `d` early. The bucket keeps one small entry
//! per limit key used (an emptied slot set, a past rate time); nothing
//! expires them.
//!
//! Compare-and-set on a cluster: nats-server 2.9 checks a KV update's
//! expected revision against the replicated messages only, so two updates
//! from the same revision can both be stored while the first is in flight.
//! Every compare-and-set of the store (leases and limits) therefore also
//! carries the message id `<key>@<revision read>`, which the stream's
//! duplicate window (2 minutes) holds from the moment its leader takes the
//! write: of the writers from one revision only the first is stored.
//!
//! **Delayed events** wait in the stream `SOIREE_p_SCHEDULED`, which no
//! group reads, so none is delivered early. A *mover* republishes each one
//! into the events stream once due (its event id as `Nats-Msg-Id`, so a
//! repeated move within the duplicate window is stored once), then deletes
//! it from the scheduled stream (a crash between the two moves it again: at
//! least once). One mover runs per prefix, in the process holding the lease
//! `soiree.scheduled-mover`; every store handle that dequeues is a
//! candidate. Delayed events survive restarts of processes and servers (the
//! stream is replicated and on disk like the others).
//!
//! | delayed events | |
//! |---|---|
//! | delivered early | never, on the mover's clock (due times are the emitter's: keep clocks in step) |
//! | late | by at most 200 ms while a mover runs (it reads new entries every 200 ms and sleeps until the next due time); up to 6 s more after the mover's process dies, until another process takes its lease |
//! | cancelled ([`cancel_scheduled`](soiree::EventQueue::cancel_scheduled)) | by event id, for every group; a cancel that meets the move at the due time removes the moved event too unless a group already took it |
//!
//! Why not a NAK with the remaining delay (nats-server 2.9 has no
//! per-message TTL or scheduled messages): JetStream counts every NAK as a
//! delivery, so a long delay would use up `max_deliveries`, every group
//! would hold the event in flight, and nothing could list or cancel it.
//!
//! Inspection: JetStream counts a consumer's unacknowledged deliveries but
//! does not list them, so [`soiree::Inspect::pending`] gives one summary
//! entry per group; listings read the streams by sequence (a record's id is
//! its stream sequence).
//!
//! Delivery is at least once: write listeners so that running twice does no
//! harm, and register them with [`soiree::EventBus::on_named`].
//!
//! Per-key ordering: a durable consumer delivers in stream order, but the
//! bus runs deliveries concurrently. With
//! [`NatsStoreBuilder::ordered_by_key`]`(partitions)` events with the same
//! ordering key ([`PROPERTY_KEY`], `soiree.key`, as in `soiree-sql`) run one
//! at a time, in stream order, across every process of the group: keyed
//! events are published to `<prefix>_p<i>.<topic>` (partition `i` a stable
//! hash of the key), and each partition is read through a consumer of its
//! own with `max_ack_pending = 1`, so JetStream hands out its next event
//! only once the one before is settled; a redelivered event stays in front,
//! a dead-lettered one lets the next through.
//!
//! # Metrics
//!
//! The store reports soiree's shared store series ([`soiree::StoreMetrics`])
//! labelled `backend="nats"`, `store=<events stream>`, `group=<group>`, to
//! [`MetricsRegistry::global`](soiree::MetricsRegistry::global) or the
//! registry given to [`NatsStoreBuilder::metrics_registry`]: events
//! persisted (publishes the stream stored, not duplicates), dequeued and
//! redelivered, results saved, dead letters, and the queue length as of
//! the last backlog or stats. The oldest unconsumed age and the stale
//! acknowledgements stay at 0 (not measured yet).
//!
//! # Server settings
//!
//! Events up to soiree's limits (a 1 MiB payload and 64 KiB of properties)
//! need `max_payload` of at least 2 MB on the servers (the default is 1 MB);
//! with the default, larger events are refused at emit with a `Store` error
//! naming the limit, and nothing is stored. Subjects stay within 3 KiB (see
//! [`subject`]), inside the default `max_control_line`.
//!
//! # Example
//!
//! ```no_run
//! use soiree::EventBus;
//! use soiree_nats::NatsStore;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = NatsStore::builder("nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4222")
//!     .prefix("shop")
//!     .group("mailer")
//!     .replicas(3)
//!     .build()
//!     .await?;
//! let bus = EventBus::builder().store(store.clone()).build()?;
//! bus.on_named("send-receipt", "order.paid", |_ctx| async { Ok(()) })?;
//! bus.start()?;
//! bus.emit("order.paid", serde_json::json!({ "order": 42 })).persisted().await?;
//! bus.close().await?;
//! # Ok(()) }
//! ```

//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `sql-relay` | `Relay` (module `relay`): forwards the SQL outbox (`soiree-sql`, transactional `emit_in`) to JetStream, at least once, resumable after a crash |

#![doc(test(attr(deny(warnings))))]

mod bucket;
mod builder;
mod dead_letter;
mod dedup;
mod error;
mod inspect;
mod lease;
mod limits;
mod names;
mod partitions;
mod puller;
mod queue;
mod receipt;
mod redact;
#[cfg(feature = "sql-relay")]
pub mod relay;
mod scheduled;
mod store;
pub mod subject;
mod unique;
mod writes;

pub use builder::{FailurePolicy, NatsStoreBuilder};
pub use error::{Error, Result};
pub use partitions::{MAX_PARTITIONS, PROPERTY_KEY, partition_of};
#[cfg(feature = "sql-relay")]
pub use relay::Relay;
pub use store::NatsStore;
