//! The end of a transactional listener's transaction: the fence (the
//! delivery's lease, or claimed retry row, still has the token it was
//! delivered under and has not expired) and the listener's success record,
//! both in the listener's transaction, just before it commits.
//!
//! When the listener settles its delivery (it is the event's last listener
//! to run, [`soiree::EventContext::settles_delivery`]), the acknowledgement
//! is written in the transaction too: the event is recorded as acknowledged
//! in its lease (`soiree_lease_acks`, which a lease taken over after a crash
//! leaves out) or its claimed retry row is deleted. The bus's own
//! acknowledgement later finds it done.
//!
//! On PostgreSQL the lease row is locked `FOR SHARE` by the check, so that
//! nobody takes it over between the check and the commit (a reclaim skips
//! locked rows; an extend or completion waits for the commit). On SQLite the
//! transaction holds the database's write lock from its start, which does
//! the same.

use crate::Result;
use crate::consumer::Receipt;

/// What the fence and the success record found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The lease holds and the success is recorded: commit.
    Recorded,
    /// The lease holds, but a success of this listener for this event was
    /// committed already (by an earlier delivery): roll back, the work is
    /// done.
    AlreadyHandled,
    /// The lease was taken over or expired: roll back.
    Fenced,
}

/// One transactional listener's delivery, to fence and record.
#[derive(Debug, Clone, Copy)]
pub struct TxFence<'a> {
    pub(crate) receipt: Receipt,
    pub(crate) group: &'a str,
    pub(crate) event_id: &'a str,
    pub(crate) handler_id: &'a str,
    /// Acknowledge the delivery in the transaction too.
    pub(crate) settles: bool,
}

impl TxFence<'_> {
    /// `(table, id, token)` of the row that fences the delivery.
    fn fencing_row(&self) -> (&'static str, i64, i64) {
        match self.receipt {
            Receipt::Log { lease, token, .. } => ("soiree_leases", lease, token),
            Receipt::Retry { id, token } => ("soiree_retries", id, token),
        }
    }

    /// The parameters of the acknowledgement: `(lease, row)` of a lease's
    /// event, `(id, token)` of a retry row.
    fn ack_params(&self) -> (i64, i64) {
        match self.receipt {
            Receipt::Log { lease, row, .. } => (lease, row),
            Receipt::Retry { id, token } => (id, token),
        }
    }
}

/// The fence and the success record on PostgreSQL, on the listener's
/// transaction; the store's tables are in `schema`.
#[cfg(feature = "postgres")]
pub(crate) async fn postgres(
    conn: &mut sqlx::PgConnection,
    schema: &str,
    fence: &TxFence<'_>,
) -> Result<Settle> {
    use sqlx::AssertSqlSafe;
    let (table, id, token) = fence.fencing_row();
    // Leases expire at `expires_at`, claimed retry rows at `run_at`;
    // `clock_timestamp()`, not `now()`: the transaction began when the
    // listener did.
    let expiry = if table == "soiree_leases" {
        "expires_at"
    } else {
        "run_at"
    };
    let check = format!(
        "SELECT 1 FROM \"{schema}\".{table} WHERE id = $1 AND token = $2 \
         AND group_name = $3 AND {expiry} > clock_timestamp() FOR SHARE"
    );
    let held = sqlx::query(AssertSqlSafe(check))
        .bind(id)
        .bind(token)
        .bind(fence.group)
        .fetch_optional(&mut *conn)
        .await?;
    if held.is_none() {
        return Ok(Settle::Fenced);
    }
    let record = format!(
        "INSERT INTO \"{schema}\".soiree_handled (event_id, group_name, handler_id) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
    );
    let inserted = sqlx::query(AssertSqlSafe(record))
        .bind(fence.event_id)
        .bind(fence.group)
        .bind(fence.handler_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if inserted != 1 {
        return Ok(Settle::AlreadyHandled);
    }
    if fence.settles {
        let ack = match fence.receipt {
            Receipt::Log { .. } => format!(
                "INSERT INTO \"{schema}\".soiree_lease_acks (lease_id, row_id) \
                 VALUES ($1, $2) ON CONFLICT DO NOTHING"
            ),
            Receipt::Retry { .. } => {
                format!("DELETE FROM \"{schema}\".soiree_retries WHERE id = $1 AND token = $2")
            }
        };
        let (first, second) = fence.ack_params();
        sqlx::query(AssertSqlSafe(ack))
            .bind(first)
            .bind(second)
            .execute(&mut *conn)
            .await?;
    }
    Ok(Settle::Recorded)
}

/// The fence and the success record on SQLite, on the listener's
/// transaction (which holds the write lock: `BEGIN IMMEDIATE`).
#[cfg(feature = "sqlite")]
pub(crate) async fn sqlite(
    conn: &mut sqlx::SqliteConnection,
    fence: &TxFence<'_>,
) -> Result<Settle> {
    let (table, id, token) = fence.fencing_row();
    // Both expiries are Unix milliseconds.
    let check = if table == "soiree_leases" {
        "SELECT 1 FROM soiree_leases WHERE id = ?1 AND token = ?2 AND group_name = ?3 \
         AND expires_at > ?4"
    } else {
        "SELECT 1 FROM soiree_retries WHERE id = ?1 AND token = ?2 AND group_name = ?3 \
         AND run_at > ?4"
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let held = sqlx::query(check)
        .bind(id)
        .bind(token)
        .bind(fence.group)
        .bind(now_ms)
        .fetch_optional(&mut *conn)
        .await?;
    if held.is_none() {
        return Ok(Settle::Fenced);
    }
    let inserted = sqlx::query(
        "INSERT OR IGNORE INTO soiree_handled (event_id, group_name, handler_id) \
         VALUES (?1, ?2, ?3)",
    )
    .bind(fence.event_id)
    .bind(fence.group)
    .bind(fence.handler_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted != 1 {
        return Ok(Settle::AlreadyHandled);
    }
    if fence.settles {
        let ack = match fence.receipt {
            Receipt::Log { .. } => {
                "INSERT OR IGNORE INTO soiree_lease_acks (lease_id, row_id) VALUES (?1, ?2)"
            }
            Receipt::Retry { .. } => "DELETE FROM soiree_retries WHERE id = ?1 AND token = ?2",
        };
        let (first, second) = fence.ack_params();
        sqlx::query(ack)
            .bind(first)
            .bind(second)
            .execute(&mut *conn)
            .await?;
    }
    Ok(Settle::Recorded)
}
