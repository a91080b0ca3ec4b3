//! A SQL outbox store for [`soiree`]: transactional emit on PostgreSQL, and
//! SQLite as the embedded durable default.
//!
//! # Getting started: SQLite, no server
//!
//! One SQLite file holds your tables and the event log. The order row and
//! its `order.placed` event are written in one transaction
//! ([`SqliteStore::begin`], [`SqliteStore::emit_in`],
//! [`SqliteStore::commit`]): both or neither. The process stops before any
//! listener ran; after the restart a second store on the same file picks the
//! event up. A wildcard listener ([`soiree::EventBus::on_named`]) confirms
//! the order, a failing one sends the event to the dead letters, and the bus
//! delivers nothing until [`soiree::EventBus::start`], called once every
//! listener is registered. This is `examples/getting_started.rs`
//! (`cargo run -p soiree-sql --example getting-started`):
//!
#![cfg_attr(
    feature = "sqlite",
    doc = concat!("```\n", include_str!("../examples/getting_started.rs"), "```")
)]
//!
//! The dead letter, from a shell, with the `soiree` command (crate
//! `soiree-cli`): `soiree dead-letters list --store sqlite:///tmp/shop-….db`.
//!
//! **The same on PostgreSQL** changes only how the store is opened:
//! `PostgresStore::builder("postgres://app@127.0.0.1/app").build().await?`
//! ([`PostgresStore::builder`]) in place of `SqliteStore::open(&path).await?`
//! (both times), and `PostgresStore` in the `use soiree_sql::…` line; the
//! SQL above runs unchanged on both (`$1` placeholders).
//!
//! # What the stores are
//!
//! [`PostgresStore`] implements soiree's store traits
//! ([`soiree::EventStore`], [`soiree::EventQueue`], [`soiree::HandlerDedup`],
//! [`soiree::EventHistory`]), and [`soiree::Inspect`] for the `soiree` CLI
//! and dashboard, on an append-only event log read through a cursor per
//! consumer group:
//!
//! - every event is one row of `soiree_events`, appended in batches
//!   (by the bus's `emit`) or inside your own transaction
//!   ([`PostgresStore::emit_in`]): committed with your data, or not at all;
//! - a consumer claims a range of the log as a *lease* (with a fencing token
//!   and an expiry), reads it outside the lock, hands its events to the bus,
//!   and drops the lease once every event of it is acknowledged. A stale
//!   token cannot acknowledge;
//! - on PostgreSQL the log is read only below the oldest running transaction
//!   (`pg_snapshot_xmin`), so a transaction that inserts early and commits
//!   late is never skipped;
//! - a consumer that dies leaves its leases to expire: another consumer
//!   claims them again (one more delivery); from the third delivery a lease
//!   is split into one lease per event, and past `max_deliveries` its events
//!   go to the dead letters;
//! - handler results and successes (dedup) are written in batches.
//!
//! # Durability
//!
//! | situation | what happens |
//! |---|---|
//! | `emit` on a bus with the store | the emission ends once the event is committed to the log, or yields a `Store` error |
//! | `emit_in` in your transaction | the event exists if and only if the transaction commits; consumers see it after the commit |
//! | a consumer process dies | its leases expire after `lease_timeout`; their unacknowledged events are delivered again |
//! | an event is delivered again | listeners registered with `on_named` that already succeeded for its id are skipped |
//! | an event past a [limit](soiree::limits) (`emit`, `emit_in`, `emit_all_in`, `record`) | refused with a typed error before anything is written; the others of the batch or transaction are not affected |
//! | a mutation trigger's row image too large for the payload | left out of the event, which says so (`soiree.row_omitted`); the write goes on ([`triggers`]) |
//! | a row is not an event | it moves to the dead letters with a parse error |
//! | the database restarts | emits fail with a `Store` error until it is back; consumers retry and carry on |
//!
//! Delivery is at least once: write listeners so that running twice does no
//! harm, and register them with [`soiree::EventBus::on_named`].
//!
//! # Delayed events and unique keys
//!
//! An event due later (`bus.emit_at`, `emit_after`, [`soiree::Event::deliver_at`])
//! is stored in `soiree_scheduled`, not in the log: it never holds back a
//! group's cursor and no group can claim it early. Consumers move due rows
//! into the log (at most 500 per claim, every poll interval at most, `FOR
//! UPDATE SKIP LOCKED` on PostgreSQL), where every group gets them as new
//! events, so an event is late by about a poll interval at most. It survives
//! restarts, is listed by [`soiree::Inspect::scheduled`] and counted in
//! [`soiree::Inspect::stats`]`.scheduled` (not in the backlog until due), and
//! [`soiree::EventQueue::cancel_scheduled`] deletes it by event id.
//! `emit_in` and `emit_all_in` write a delayed event into
//! `soiree_scheduled` in your transaction: it waits there once committed,
//! and is gone with a rollback. The outbox statements of
//! [`outbox`] (for data layers that run their own SQL) write into the log
//! only, and refuse a delayed event.
//!
//! A unique key ([`soiree::Event::unique_key`]) is claimed in
//! `soiree_unique_keys` by `INSERT … ON CONFLICT` in the transaction that
//! stores the event: concurrent emits of one key in any number of processes
//! store one event, and the others get its id. An expired key is replaced;
//! retention deletes expired keys. Replays and redeliveries do not go
//! through the key.
//!
//! # Periodic events
//!
//! The store's [`soiree::LeaderLease`] is a row per lease name in
//! `soiree_leader_leases` (holder, fencing token, expiry in Unix ms, the
//! last tick fired), granted, renewed and released by one statement each:
//! on a bus over the store, `bus.every`, `bus.cron` and `bus.schedule` fire
//! each tick once across processes (see [`soiree::Schedule`]). PostgreSQL
//! measures expiry on the server's clock (`clock_timestamp()`), SQLite on
//! the clock of the process that writes (the processes of one machine).
//! A row rather than a PostgreSQL advisory lock: an advisory lock belongs
//! to one connection, so the leader would pin a pooled connection (and
//! lose the lock when the pool recycles it, or be unable to take it
//! behind a transaction-pooling proxy), a hung holder would keep it
//! forever, and it carries neither a fencing token nor the last tick
//! fired.
//!
//! # Listener limits
//!
//! The store shares listener limits ([`soiree::SharedLimits`]) between
//! every process on its database: a named listener's
//! [`max_concurrent`](soiree::ListenerBinding::max_concurrent),
//! [`max_concurrent_per_key`](soiree::ListenerBinding::max_concurrent_per_key)
//! and [`rate`](soiree::ListenerBinding::rate) hold over all of them. A
//! running listener holds a row of `soiree_limit_slots` (key, holder,
//! expiry), renewed while it runs and deleted when it returns; a process
//! killed with one in flight frees it at its expiry
//! ([`limit_slot_ttl`](soiree::ListenerBinding::limit_slot_ttl), 30 s by
//! default). A slot is counted and taken in one serialized step (SQLite's
//! one writer under `BEGIN IMMEDIATE`; a transaction-scoped advisory lock
//! of the key on PostgreSQL), so concurrent takers never pass the limit. A
//! rate is one row of `soiree_limit_rates` with the earliest next start,
//! moved by one conditional `INSERT … ON CONFLICT`. Retention deletes
//! expired slots and past rates.
//!
//! ```
//! use soiree::{EventBus, ListenerBinding};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("soiree-doc-limits-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let store = soiree_sql::SqliteStore::open(dir.join("shop.db")).await?;
//! let bus = EventBus::builder().store(store).build()?;
//! // At most 2 at once over every process on this database.
//! ListenerBinding::new("report.requested", |_ctx| async { Ok(()) })
//!     .named("render-report")
//!     .max_concurrent(2)
//!     .register(&bus)?;
//! bus.start()?;
//! bus.close().await?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `postgres` | on | [`PostgresStore`], with TLS (rustls, the system's roots): `?sslmode=verify-full&sslrootcert=ca.pem` in the URL |
//! | `sqlite` | on | [`SqliteStore`] |
//!
//! # Example
//!
//! ```no_run
//! use soiree::EventBus;
//! use soiree_sql::PostgresStore;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::builder("postgres://app@127.0.0.1/app")
//!     .group("mailer")
//!     .build()
//!     .await?;
//! let bus = EventBus::builder().store(store.clone()).build()?;
//! bus.on_named("send-receipt", "order.paid", |ctx| async move {
//!     println!("receipt for {:?}", ctx.event_id());
//!     Ok(())
//! })?;
//! // Every listener is registered: start taking events from the log.
//! bus.start()?;
//! let mut tx = store.begin().await?;
//! store.emit_in(&mut tx, "order.paid", serde_json::json!({ "order": 42 })).await?;
//! store.commit(tx).await?;
//! bus.wait_for_idle().await;
//! bus.close().await?;
//! # Ok(()) }
//! ```
//!
//! # One store, two databases
//!
//! [`SqlStore<DB>`](SqlStore) is one store over a sealed [`Driver`]:
//! [`PostgresStore`] is `SqlStore<Postgres>` and [`SqliteStore`] is
//! `SqlStore<Sqlite>` (sqlx's database types, re-exported here), as sqlx's
//! `PgPool` is `Pool<Postgres>`. `begin`, `emit_in`, `emit_all_in`,
//! `record`, `commit` and the soiree traits are the same on both; options
//! that only one database has are on its builder (`schema`, `listen`,
//! `partition_size` on PostgreSQL; `busy_timeout`, `durable_commits` on
//! SQLite). An application that supports both writes its outbox code once:
//!
//! ```
//! use soiree_sql::{Driver, SqlStore, sqlx};
//!
//! /// Inserts an order and emits `order.placed` in one transaction, on
//! /// either database.
//! async fn place_order<DB: Driver>(store: &SqlStore<DB>, order: i64) -> soiree_sql::Result<String>
//! where
//!     for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
//!     i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
//! {
//!     let mut tx = store.begin().await?;
//!     sqlx::query("INSERT INTO orders (id) VALUES ($1)")
//!         .bind(order)
//!         .execute(&mut *tx)
//!         .await?;
//!     let id = store
//!         .emit_in(&mut tx, "order.placed", serde_json::json!({ "order": order }))
//!         .await?;
//!     store.commit(tx).await?;
//!     Ok(id)
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("soiree-doc-generic-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let store = soiree_sql::SqliteStore::open(dir.join("shop.db")).await?;
//! sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY)").execute(store.pool()).await?;
//! place_order(&store, 42).await?;
//! // The same function on PostgreSQL:
//! // place_order(&soiree_sql::PostgresStore::connect(url).await?, 42).await?;
//! # drop(store);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
//!
//! # Transactional listeners
//!
//! A listener registered with [`SqlStore::on_tx`] runs inside a transaction
//! on the store's database ([`Tx`]): its writes, the events it emits in it
//! ([`Tx::emit`]) and its success record commit together, or not at all.
//! Before the commit the store checks, in the same transaction, that the
//! delivery's lease still has the fencing token it was delivered under and
//! has not expired: a listener whose lease was taken over (it outlived
//! `lease_timeout` and `max_handler_time`) cannot commit; it rolls back and
//! fails with [`Error::LeaseLost`], and the consumer that took the event
//! over runs it. A redelivered event finds the success record and skips the
//! listener, so its database writes happen once, crashes included.
//!
//! When the listener is the event's last one to run for the group
//! ([`soiree::EventContext::settles_delivery`]: the listeners before it
//! succeeded, none follows it), its transaction also acknowledges the
//! delivery: the event is recorded as done in its lease (a lease taken over
//! after a crash delivers only its other events) or its retry row is
//! deleted. A crash between the commit and the bus's acknowledgement then
//! delivers the event to nobody again; the bus's acknowledgement that
//! follows finds it done. Otherwise (other listeners of the event run after
//! it, or one before it failed) the bus acknowledges after the listeners
//! ran, and a crash in between redelivers the event, which the success
//! record then skips. [`SqlStore::on_tx`] refuses a bus that does not run
//! on this store ([`Error::NotThisStore`]).
//!
//! ```
//! use std::time::Duration;
//! use soiree::EventBus;
//! use soiree_sql::SqliteStore;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("soiree-doc-tx-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let store = SqliteStore::open(dir.join("shop.db")).await?;
//! sqlx::query("CREATE TABLE invoices (event_id TEXT PRIMARY KEY)")
//!     .execute(store.pool())
//!     .await?;
//! let bus = EventBus::builder().store(store.clone()).build()?;
//! store.on_tx(&bus, "invoicing", "order.paid", |ctx, mut tx| async move {
//!     // On `tx`, never on the pool: it commits with the success record.
//!     sqlx::query("INSERT INTO invoices (event_id) VALUES ($1)")
//!         .bind(ctx.event_id())
//!         .execute(&mut *tx)
//!         .await?;
//!     tx.emit("invoice.created", serde_json::json!({ "for": ctx.event_id() })).await?;
//!     Ok(tx)
//! })?;
//! bus.start()?;
//! bus.emit("order.paid", serde_json::json!({ "order": 42 })).persisted().await?;
//! let mut invoices = 0;
//! for _ in 0..200 {
//!     invoices = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM invoices")
//!         .fetch_one(store.pool())
//!         .await?;
//!     if invoices == 1 {
//!         break;
//!     }
//!     tokio::time::sleep(Duration::from_millis(50)).await;
//! }
//! assert_eq!(invoices, 1);
//! bus.close().await?;
//! # drop(store);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
//!
//! ## Delivery guarantees
//!
//! | store | listener | guarantee | what it costs |
//! |---|---|---|---|
//! | none (in-process bus) | any | at most once: queued in memory, lost if the process dies | nothing |
//! | any durable store (SQL, Redis, NATS) | [`on`](soiree::EventBus::on) | at least once: a crash or an expired lease runs it again | the store's append, claim and ack, batched |
//! | any durable store | [`on_named`](soiree::EventBus::on_named) | at least once; a redelivered event skips it once its success is recorded, but a crash between its side effect and that record (written in batches, behind) runs it again | one success row per event and listener, batched with the others |
//! | any durable store | a listener recording its runs in an [`Inbox`] (`store.inbox(group)` on a SQL store's database, [`Inbox::new`] elsewhere) | effectively once for its writes in the transaction that records the receipt; the event itself is still delivered again after a crash (and skipped) | one inbox row per event and listener, in the application's transaction; rows are kept until the application deletes them |
//! | SQL stores | [`SqlStore::on_tx`] | effectively once for its writes to the store's database and its emits in the transaction; its other side effects (HTTP calls, mails) remain at least once | one transaction per run: `BEGIN`, the fence read (`FOR SHARE` on PostgreSQL), the success row, `COMMIT` (a synchronous commit per event instead of batched records); on SQLite the store's writes wait while the listener runs (`BEGIN IMMEDIATE` on the single writer) |
//! | SQL stores | [`SqlStore::on_tx`], the event's last listener | the above, and the acknowledgement commits with it: a crash after the commit delivers the event to nobody again | in the same transaction one more row (an acknowledgement row in the lease, deleted with it; or the retry row's delete), and before it the results of the event's earlier listeners are written (one round trip when any wait); a lease taken over reads its events past its acknowledged ones |
//!
//! Tested by killing consumers with `kill -9` at random points of 1,000
//! deliveries (`tests/tx_crash.rs`: every event's row exists exactly once),
//! by a listener that outlives its lease while another consumer takes the
//! event over (`tests/tx_fencing.rs`: one commit, the slow run fenced), and
//! by a consumer killed right after its listener's commit, before the bus's
//! acknowledgement (`tests/tx_ack.rs`: a second consumer delivers nothing,
//! for an event of the log and for a retry row; in one process the bus's
//! acknowledgement that follows is neither stale nor a redelivery).

#![doc(test(attr(deny(warnings))))]

mod backend;
mod builder;
mod consumer;
mod core;
mod dead_letters;
mod driver;
mod emit;
mod error;
mod existing;
mod fence;
mod identity;
mod inbox;
mod inspect;
mod leader;
mod limits;
mod maintenance;
mod metrics;
mod migration_log;
pub mod mutation;
mod options;
mod ordering;
pub mod outbox;
mod pages;
#[cfg(feature = "postgres")]
mod postgres;
mod privileges;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod rows;
mod scheduled;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod topic;
mod traits;
pub mod triggers;
mod tx_listener;
mod unique;

pub use builder::SqlStoreBuilder;
pub use dead_letters::{QueueStats, SqlDeadLetter, SqlDeadLetterFilter};

/// The old name of [`SqlDeadLetter`], which sat beside
/// [`soiree::DeadLetter`] (what [`soiree::Inspect`] lists, for every store).
#[deprecated(
    since = "0.1.0",
    note = "renamed `SqlDeadLetter`; `soiree::DeadLetter` is the store-neutral one that `soiree::Inspect` lists"
)]
pub type DeadLetter = SqlDeadLetter;

/// The old name of [`SqlDeadLetterFilter`], which sat beside
/// [`soiree::DeadLetterSelection`] (what [`soiree::Inspect`] replays and
/// purges, for every store).
#[deprecated(
    since = "0.1.0",
    note = "renamed `SqlDeadLetterFilter`; `soiree::DeadLetterSelection` is the store-neutral one that `soiree::Inspect` takes"
)]
pub type DeadLetterFilter = SqlDeadLetterFilter;
pub use driver::Driver;
pub use error::{Error, Result};
pub use inbox::Inbox;
pub use options::FailurePolicy;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, SqliteStoreBuilder};
/// The sqlx this crate is built with. Write your transactions with it
/// (`soiree_sql::sqlx::query(…)`, `soiree_sql::sqlx::Transaction`) rather
/// than a `sqlx` of your own, so that the two versions cannot drift apart:
/// with two, `&mut tx` of one is not an executor of the other
/// (`multiple different versions of crate sqlx_core`).
pub use sqlx;
/// The database types a [`SqlStore`] is generic over (sqlx's own).
#[cfg(feature = "postgres")]
pub use sqlx::Postgres;
/// The database types a [`SqlStore`] is generic over (sqlx's own).
#[cfg(feature = "sqlite")]
pub use sqlx::Sqlite;
pub use store::SqlStore;
pub use tx_listener::Tx;

/// The name of the table recording which of the store's migrations were
/// applied (in the store's schema on PostgreSQL): not sqlx's default, which
/// an application may use for its own migrations.
pub const MIGRATIONS_TABLE: &str = "_soiree_migrations";

/// The property holding an event's ordering key, stored in the log's `key`
/// column.
pub const PROPERTY_KEY: &str = "soiree.key";

/// A database URL with its password masked, for messages and `Debug`.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn redact(url: &str) -> String {
    match password_span(url) {
        Some((start, end)) => format!("{}***{}", &url[..start], &url[end..]),
        None => url.to_owned(),
    }
}

/// `text` with the password of `url` masked wherever it appears.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn redact_in(text: &str, url: &str) -> String {
    match password_span(url) {
        Some((start, end)) if end > start => text.replace(&url[start..end], "***"),
        _ => text.to_owned(),
    }
}

/// Where the password of `scheme://user:password@host` is, if it has one.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn password_span(url: &str) -> Option<(usize, usize)> {
    let authority_start = url.find("://")? + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let at = authority.rfind('@')?;
    let colon = authority[..at].find(':')?;
    Some((authority_start + colon + 1, authority_start + at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            redact("postgres://u:p%40ss@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            redact_in("bad p%40ss here", "postgres://u:p%40ss@h/db"),
            "bad *** here"
        );
    }
}
