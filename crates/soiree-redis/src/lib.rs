//! A durable, at-least-once event queue for [`soiree`] on Redis Streams.
//!
//! [`RedisStore`] implements soiree's store traits ([`soiree::EventStore`],
//! [`soiree::EventQueue`], [`soiree::HandlerDedup`],
//! [`soiree::EventHistory`]) and [`soiree::Inspect`], through which the
//! `soiree` CLI and the dashboard list, count and repair what it holds. A bus with this store appends every emitted
//! event to a Redis stream; the bus's consumers read the stream through a
//! consumer group, run the listeners and acknowledge each event only after
//! all its listeners finished. Several processes with the same group share
//! the work; an event left unacknowledged by a crashed process is claimed by
//! another one after the claim timeout.
//!
//! # Durability
//!
//! | situation | what happens |
//! |---|---|
//! | `emit` | the emission ends once the event is appended, or yields a `Store` error; never success for an event not stored |
//! | a process dies mid-event | its entries stay pending; a live consumer claims them after the claim timeout (the same process, under its stable consumer name, re-reads them at once when it restarts) |
//! | a bus closes | entries read ahead and not run are handed back without counting a delivery; any consumer claims them at once |
//! | an event is delivered again | listeners registered with `on_named` that already succeeded for its event id are skipped |
//! | an entry keeps coming back | after `max_deliveries` it moves to the dead-letter stream with its last error |
//! | a listener still fails after its retries, or panics; a topic is invalid | the entry moves to the dead-letter stream with the error (see [`FailurePolicy`]) |
//! | an entry is not an event | it moves to the dead-letter stream alone, with a parse error naming its event id when readable; its neighbours are delivered |
//! | Redis restarts | emits fail with a `Store` error until it is back; consumers reconnect and recreate the group |
//! | Redis hangs | each emit fails within the response timeout with [`Error::Unanswered`] (naming `host:port`); `close` waits at most one response timeout after its listeners for its acknowledgements, then abandons them with a warning: their entries are delivered again |
//!
//! Delivery is at least once: write listeners so that running twice does no
//! harm, and register them with [`soiree::EventBus::on_named`] so that their
//! successes are remembered across processes.
//!
//! # Delayed events and unique keys
//!
//! An event due later waits in the sorted set `scheduled` (scored by its due
//! time) with its JSON in `scheduled:data`; before reading new entries a
//! consumer runs a script that moves the due ones (at most 500) into the
//! stream atomically, at least every 100 ms while some wait and every second
//! otherwise, so an event is late by about that much at most. They are
//! listed by [`soiree::Inspect::scheduled`], counted in `stats().scheduled`
//! and cancelled by event id ([`soiree::EventQueue::cancel_scheduled`]).
//! A unique key is `SET unique:<key> <event id> NX PX <window>` in the same
//! script as the append: atomic across processes.
//!
//! # Periodic events
//!
//! The store's [`soiree::LeaderLease`] is a hash per lease name,
//! `lease:<name>` (holder, fencing token, expiry in Unix ms, the last tick
//! fired), each operation one script that checks the holder and token and
//! measures expiry on the server's clock (`TIME`): on a bus over the store,
//! `bus.every`, `bus.cron` and `bus.schedule` fire each tick once across
//! processes (see [`soiree::Schedule`]). A hash that stays rather than a
//! `SET NX PX` key that expires: the next leader goes on from the token
//! count and the last tick fired, which an expired key would take with it.
//!
//! # Listener limits
//!
//! The store shares listener limits ([`soiree::SharedLimits`]) between
//! every process on it, for named listeners: a key's concurrency slots are
//! the sorted set `limit:slot:<key>` of holders scored by expiry (expired
//! holders removed, the rest counted and one added in one script; renewed
//! while the listener runs, so a killed process's slot frees at its
//! expiry), and a rate is the string `limit:rate:<key>` holding the
//! earliest next start. Both expire once unused.
//!
//! # Deferred deliveries
//!
//! A listener's long [`Snooze`](soiree::Snooze) is kept by the store
//! ([`EventQueue::defer`](soiree::EventQueue::defer)): the entry stays
//! pending in the group under the consumer name `soiree:deferred`, which
//! no bus reads as, with its delivery count one lower, and its due time
//! waits in the group's sorted set `deferred@…`. Once due, a consumer
//! makes it claimable at once and the next claim scan of any consumer of
//! the group delivers it, with the delivery count it had. An entry a claim
//! scan takes before it is due (deferred for longer than the claim
//! timeout) is parked again first: never delivered early. Inspection lists
//! it among the pending entries, under `soiree:deferred`.
//!
//! # Keys
//!
//! Every key is `{<prefix>}:<name>` (prefix default `soiree`): `events`
//! (stream, the queue), `results` (stream), `dead` (stream),
//! `done@<group length>:<group>:<event id>` (a string of the listeners that
//! succeeded, with a TTL: a group's successes are its own),
//! `dedup-legacy@<group length>:<group>` (until when the dedup sets of
//! earlier versions, `dedup:<event id>` and
//! `dedup@<group length>:<group>:<event id>`, are read), `error:<event id>` (the last
//! handler error, with a TTL), `scheduled`, `scheduled:data`,
//! `scheduled:owner`, `scheduled:by_id`, `scheduled:seq` (delayed events)
//! `unique:<key>` (unique keys, expiring with their window),
//! `lease:<name>` (leader leases, kept), `limit:slot:<key>` and
//! `limit:rate:<key>` (listener limits), `deferred@<group length>:<group>`
//! (a group's deferred deliveries). The braces delimit the prefix, so one
//! prefix's keys are never another's, and make it a Redis Cluster hash tag.
//!
//! # Example
//!
//! ```no_run
//! use futures::StreamExt;
//! use soiree::EventBus;
//! use soiree_redis::RedisStore;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder("redis://127.0.0.1:6379").prefix("shop").build().await?;
//! let bus = EventBus::builder().store(store.clone()).build()?;
//! bus.on_named("send-receipt", "order.paid", |ctx| async move {
//!     println!("receipt for {:?}", ctx.event_id());
//!     Ok(())
//! })?;
//! // Every listener is registered: start taking events from the stream.
//! bus.start()?;
//! // The emission ends once the event is appended to the stream.
//! let mut errors = bus.emit("order.paid", serde_json::json!({ "order": 42 }));
//! while let Some(err) = errors.next().await {
//!     eprintln!("not queued: {err}");
//! }
//! bus.wait_for_idle().await;
//! bus.close().await?;
//! # Ok(()) }
//! ```

#![doc(test(attr(deny(warnings))))]

mod builder;
mod dead_letter;
mod deferred;
mod entry;
mod error;
mod existing;
mod inspect;
mod keys;
mod leader;
mod limits;
mod metrics;
mod queue;
mod redact;
mod scheduled;
mod store;
mod successes;
mod writer;

pub use builder::{FailurePolicy, RedisStoreBuilder};
pub use dead_letter::DeadLetter;
pub use error::{Error, Result};
pub use inspect::PendingEntry;
pub use store::RedisStore;
