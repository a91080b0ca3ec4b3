//! Multi-row `INSERT … VALUES` statements with bound parameters, for the
//! store's hot writes (events appended, results saved).
//!
//! A batch is written in chunks whose sizes are powers of two, largest
//! first and in order, each size a statement of its own that the
//! connection prepares once: at most a dozen statements for a batch of a
//! thousand rows. Bound columns cost SQLite nothing to parse. The single
//! JSON array these statements once took (`value->>n` over `json_each`)
//! was rendered and parsed again for every column of every row: about a
//! third of the instructions of a SQLite run.

use std::sync::OnceLock;

use sqlx::Sqlite;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnection};

use crate::Result;

/// Rows in the largest chunk: 512 rows of at most 6 parameters stay far
/// below SQLite's limit on a statement's parameters (32766).
const MAX_CHUNK_LOG2: usize = 9;

/// A statement with its bound values.
pub(crate) type SqliteQuery = Query<'static, Sqlite, SqliteArguments>;

/// One multi-row insert: `head`, then `row` once per item. Its parameters
/// are anonymous (`?`): sqlx looks up the name of every parameter it
/// binds, which SQLite finds by a walk through the statement's named
/// ones (quadratic in a statement of numbered ones).
#[derive(Debug)]
pub(crate) struct MultiInsert {
    head: &'static str,
    row: &'static str,
    /// The statement of exactly `n` rows at `n` (up to the largest chunk),
    /// written on first use: a write of a hundred events formatted its
    /// statement anew on every call, and sqlx copied it.
    exact: [OnceLock<String>; EXACT],
}

/// Statements of exactly `n` rows kept, `n` up to the largest chunk.
const EXACT: usize = (1 << MAX_CHUNK_LOG2) + 1;

impl MultiInsert {
    pub(crate) const fn new(head: &'static str, row: &'static str) -> Self {
        Self {
            head,
            row,
            exact: [const { OnceLock::new() }; EXACT],
        }
    }

    /// The statement of exactly `n` rows, `n` at most the largest chunk.
    fn exact_text(&'static self, n: usize) -> &'static str {
        self.exact[n].get_or_init(|| format!("{}{}", self.head, vec![self.row; n].join(", ")))
    }

    /// The statement of `2^k` rows.
    fn text(&'static self, k: usize) -> &'static str {
        self.exact_text(1 << k)
    }

    /// The unbound statement of exactly `n` rows when they fit in one
    /// (`n` from 1 to the largest chunk): atomic by itself.
    pub(crate) fn one_statement(&'static self, n: usize) -> Option<SqliteQuery> {
        (1..EXACT)
            .contains(&n)
            .then(|| sqlx::query(self.exact_text(n)))
    }

    /// [`run`](Self::run) as one write: up to the largest chunk one
    /// statement, a larger batch in a transaction of its own (a savepoint
    /// inside the caller's).
    pub(crate) async fn run_atomic<T>(
        &'static self,
        conn: &mut SqliteConnection,
        items: &[T],
        bind: impl Fn(SqliteQuery, &T) -> SqliteQuery,
    ) -> Result<()> {
        if let Some(query) = self.one_statement(items.len()) {
            // One statement of exactly these rows: atomic by itself, and one
            // round trip to the connection's thread where chunks and a
            // savepoint take five for a hundred rows. Prepared once per size
            // (the connection caches its statements).
            bound(query, items, &bind).execute(&mut *conn).await?;
            return Ok(());
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        self.run(&mut tx, items, bind).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Inserts `items` in order on `conn`, a statement per chunk (the
    /// caller's transaction makes them one write): `bind` binds an item's
    /// parameters.
    pub(crate) async fn run<T>(
        &'static self,
        conn: &mut SqliteConnection,
        items: &[T],
        bind: impl Fn(SqliteQuery, &T) -> SqliteQuery,
    ) -> Result<()> {
        let mut rest = items;
        while !rest.is_empty() {
            let k = rest.len().ilog2().min(MAX_CHUNK_LOG2 as u32) as usize;
            let (chunk, after) = rest.split_at(1 << k);
            let query = bound(sqlx::query(self.text(k)), chunk, &bind);
            query.execute(&mut *conn).await?;
            rest = after;
        }
        Ok(())
    }
}

/// `query` with the parameters of `items`, in order.
fn bound<T>(
    query: SqliteQuery,
    items: &[T],
    bind: &impl Fn(SqliteQuery, &T) -> SqliteQuery,
) -> SqliteQuery {
    items.iter().fold(query, bind)
}

#[cfg(test)]
mod tests {
    use super::*;

    static PAIRS: MultiInsert = MultiInsert::new("INSERT INTO t (a, b) VALUES ", "(?, ?)");

    #[test]
    fn a_statement_holds_a_power_of_two_rows() {
        assert_eq!(PAIRS.text(0), "INSERT INTO t (a, b) VALUES (?, ?)");
        assert_eq!(PAIRS.text(1), "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)");
        assert_eq!(PAIRS.text(MAX_CHUNK_LOG2).matches('(').count(), 513);
    }

    #[test]
    fn an_exact_statement_holds_its_rows() {
        assert_eq!(
            PAIRS.exact_text(3),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
        );
        assert_eq!(PAIRS.exact_text(100).matches('(').count(), 101);
        assert_eq!(PAIRS.exact_text(EXACT - 1).matches('(').count(), EXACT);
    }
}
