//! The databases a [`SqlStore`](crate::SqlStore) runs on: a sealed trait,
//! implemented by sqlx's [`Postgres`](sqlx::Postgres) and
//! [`Sqlite`](sqlx::Sqlite), as sqlx's `Pool<DB>` is generic over them.

use async_trait::async_trait;
use sqlx::{Pool, Transaction};

use crate::backend::{Backend, NewEvent, Param};
use crate::{Result, SqlStore};

mod sealed {
    /// Only this crate's databases are drivers: the store's SQL is theirs.
    pub trait Sealed {}
}

/// A database a [`SqlStore`](crate::SqlStore) runs on: `sqlx::Postgres`
/// ([`PostgresStore`](crate::PostgresStore), feature `postgres`) or
/// `sqlx::Sqlite` ([`SqliteStore`](crate::SqliteStore), feature `sqlite`).
/// Sealed: the store's SQL is written per database in this crate.
///
/// Write code that emits into the outbox once, generic over the database,
/// with `DB: Driver` (see [the crate docs](crate#one-store-two-databases)).
#[async_trait]
// `Arguments: IntoArguments` is implied wherever `DB: Driver` is: generic
// code runs `sqlx::query(…)` without saying it.
pub trait Driver: sqlx::Database<Arguments: sqlx::IntoArguments<Self>> + sealed::Sealed {
    /// The SQL of the queue operations on this database.
    #[doc(hidden)]
    type Backend: Backend;
    /// The builder's settings that only this database has.
    #[doc(hidden)]
    type Settings: std::fmt::Debug + Send + Sync + 'static;
    /// The store's kind: `postgres` or `sqlite` (the `StoreInfo::kind` and
    /// the metrics' `backend` label).
    #[doc(hidden)]
    const KIND: &'static str;

    /// The pool for the application's own statements: PostgreSQL's pool,
    /// SQLite's single writer connection.
    #[doc(hidden)]
    fn pool(backend: &Self::Backend) -> &Pool<Self>;

    /// Begins a transaction for `emit_in` (SQLite: `BEGIN IMMEDIATE`).
    #[doc(hidden)]
    async fn begin(backend: &Self::Backend) -> Result<Transaction<'static, Self>>;

    /// The event `INSERT` of this database, run on the caller's connection.
    #[doc(hidden)]
    async fn insert(
        backend: &Self::Backend,
        conn: &mut Self::Connection,
        events: &[NewEvent],
    ) -> Result<()>;

    /// [`insert`](Self::insert) of rows the caller is done with: SQLite
    /// hands their strings to its statement instead of copying each.
    #[doc(hidden)]
    async fn insert_owned(
        backend: &Self::Backend,
        conn: &mut Self::Connection,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        Self::insert(backend, conn, &events).await
    }

    /// Stores delayed events, each with its due time (Unix ms), in
    /// `soiree_scheduled` on the caller's connection.
    #[doc(hidden)]
    async fn schedule_in(
        backend: &Self::Backend,
        conn: &mut Self::Connection,
        events: &[(NewEvent, i64)],
    ) -> Result<()> {
        for (event, due_ms) in events {
            let params = crate::scheduled::schedule_params(event, *due_ms);
            Self::execute_in(backend, conn, Self::Backend::COMMON.schedule, params).await?;
        }
        Ok(())
    }

    /// Runs `sql` (the store's tables unqualified, as for
    /// `Backend::execute`) with `params` on the caller's connection; how
    /// many rows it changed.
    #[doc(hidden)]
    async fn execute_in(
        backend: &Self::Backend,
        conn: &mut Self::Connection,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<u64>;

    /// Runs `sql` (as for [`execute_in`](Self::execute_in)) on the
    /// caller's connection; its rows.
    #[doc(hidden)]
    async fn fetch_in(
        backend: &Self::Backend,
        conn: &mut Self::Connection,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<<Self::Backend as Backend>::ListedRow>>;

    /// The event `INSERT` with the store's tables in `schema`, and its
    /// parameters as text, for data layers that run their own statements.
    #[doc(hidden)]
    fn outbox_statement(schema: &str, events: &[NewEvent])
    -> Result<(String, Vec<Option<String>>)>;

    /// Commits, reporting a transaction a failed statement aborted
    /// (PostgreSQL would roll it back at `COMMIT` without an error).
    #[doc(hidden)]
    async fn commit(tx: Transaction<'_, Self>) -> Result<()>;

    /// A transactional listener's fence and success record, on its
    /// transaction, before the commit (see `fence.rs`).
    #[doc(hidden)]
    async fn fence_in(
        backend: &Self::Backend,
        conn: &mut Self::Connection,
        fence: &crate::fence::TxFence<'_>,
    ) -> Result<crate::fence::Settle>;

    /// Runs before each dequeue: PostgreSQL starts listening for other
    /// processes' notifications, once.
    #[doc(hidden)]
    fn before_dequeue(store: &SqlStore<Self>) {
        let _ = store;
    }
}

#[cfg(feature = "postgres")]
impl sealed::Sealed for sqlx::Postgres {}
#[cfg(feature = "sqlite")]
impl sealed::Sealed for sqlx::Sqlite {}
