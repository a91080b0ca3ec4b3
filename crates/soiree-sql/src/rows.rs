//! The rows of the inspection listings mapped to their structs, shared by
//! the backends: their statements differ, the order of their columns does
//! not.
//!
//! The one difference in decoding is the type of the counters stored as a
//! 4-byte `INTEGER` on PostgreSQL (`i32`) and as SQLite's `INTEGER` (`i64`):
//! the functions take it as the type parameter `N`.

use soiree::StoredResult;
use sqlx::{ColumnIndex, Database, Decode, Row, Type};

use crate::DeadLetter;
use crate::Result;
use crate::backend::{ConsumerRow, Counts, PendingRow, Pos, RawEvent, Row as ListedRow, from_us};

/// A type that a column of database `DB` decodes to, whatever the row's
/// lifetime.
pub(crate) trait Decodes<DB: Database>: for<'r> Decode<'r, DB> + Type<DB> {}

impl<DB: Database, T: for<'r> Decode<'r, DB> + Type<DB>> Decodes<DB> for T {}

/// Row of `DEAD_LETTERS`: `id, at_us, topic, event_id, payload, properties,
/// error, deliveries`.
pub(crate) fn dead_letter<R, N>(row: &R) -> Result<DeadLetter>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decodes<R::Database>,
    String: Decodes<R::Database>,
    N: Decodes<R::Database> + Into<i64>,
{
    let deliveries: N = row.try_get(7)?;
    Ok(DeadLetter {
        id: row.try_get(0)?,
        at: row.try_get::<Option<i64>, _>(1)?.map(from_us),
        topic: row.try_get(2)?,
        event_id: row.try_get(3)?,
        payload: row.try_get(4)?,
        properties: row.try_get(5)?,
        error: row.try_get(6)?,
        deliveries: u32::try_from(deliveries.into()).unwrap_or(0),
    })
}

/// Row of `EVENTS`: `id, at_us, topic, payload, properties`.
pub(crate) fn event_row<R>(row: &R) -> Result<ListedRow<RawEvent>>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decodes<R::Database>,
    String: Decodes<R::Database>,
{
    let id = row.try_get(0)?;
    Ok(ListedRow {
        id,
        at_us: row.try_get(1)?,
        item: RawEvent {
            pos: Pos { tx: 0, id },
            topic: row.try_get(2)?,
            payload: row.try_get(3)?,
            properties: row.try_get(4)?,
            // Listings do not need it: only claims order by key.
            key: None,
        },
    })
}

/// Row of `RESULTS`: `id, at_us, topic, event_id, handler_id, error,
/// attempt`.
pub(crate) fn result_row<R, N>(row: &R) -> Result<ListedRow<StoredResult>>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decodes<R::Database>,
    String: Decodes<R::Database>,
    N: Decodes<R::Database> + Into<i64>,
{
    let attempt: N = row.try_get(6)?;
    Ok(ListedRow {
        id: row.try_get(0)?,
        at_us: row.try_get(1)?,
        item: StoredResult {
            topic: row.try_get(2)?,
            event_id: row.try_get(3)?,
            handler_id: row.try_get(4)?,
            error: row.try_get(5)?,
            attempt: u32::try_from(attempt.into()).unwrap_or(0),
        },
    })
}

/// Row of the pending deliveries: `kind, id, consumer, idle_ms, deliveries,
/// events, topic, payload, properties` (`kind` 1 for a retry row, whose
/// event the last three columns hold).
pub(crate) fn pending_row<R, N>(row: &R) -> Result<PendingRow>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decodes<R::Database>,
    String: Decodes<R::Database>,
    N: Decodes<R::Database> + Into<i64>,
{
    let kind: N = row.try_get(0)?;
    let id: i64 = row.try_get(1)?;
    let topic: Option<String> = row.try_get(6)?;
    Ok(PendingRow {
        retry: kind.into() == 1,
        id,
        consumer: row.try_get(2)?,
        idle_ms: row.try_get(3)?,
        deliveries: row.try_get(4)?,
        events: row.try_get(5)?,
        event: match topic {
            Some(topic) => Some(RawEvent {
                pos: Pos { tx: 0, id },
                topic,
                payload: row.try_get(7)?,
                properties: row.try_get(8)?,
                key: None,
            }),
            None => None,
        },
    })
}

/// Row of the consumers: `name, pending, idle_ms`.
pub(crate) fn consumer_row<R>(row: &R) -> Result<ConsumerRow>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decodes<R::Database>,
    String: Decodes<R::Database>,
{
    Ok(ConsumerRow {
        name: row.try_get(0)?,
        pending: row.try_get(1)?,
        idle_ms: row.try_get(2)?,
    })
}

/// The row of the counts: `emitted, events, results, dead_letters,
/// backlog, oldest_ms, in_flight, consumers`.
pub(crate) fn counts<R>(row: &R) -> Result<Counts>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decodes<R::Database>,
{
    Ok(Counts {
        emitted: row.try_get(0)?,
        events: row.try_get(1)?,
        results: row.try_get(2)?,
        dead_letters: row.try_get(3)?,
        backlog: row.try_get(4)?,
        oldest_ms: row.try_get(5)?,
        in_flight: row.try_get(6)?,
        consumers: row.try_get(7)?,
    })
}
