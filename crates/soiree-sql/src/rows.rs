//! The inspection listings' rows mapped to their structs, shared by the
//! backends: their statements differ, the order of their columns does not.
//!
//! [`ListingRow`] reads the rows of a backend ([`PgRow`](sqlx::postgres::PgRow),
//! [`SqliteRow`](sqlx::sqlite::SqliteRow)) by column position; the
//! constructors of [`Listing`] below name those columns for the listings
//! whose SQL is the same on both.

use soiree::StoredResult;
use sqlx::{ColumnIndex, Database, Decode, Row, Type};

use crate::backend::{
    ConsumerRow, Counts, Listing, PendingRow, Pos, RawEvent, Row as ListedRow, from_us,
};
use crate::{DeadLetter, Result};

/// A type that a column of database `DB` decodes to, whatever the row's
/// lifetime.
pub(crate) trait Decodes<DB: Database>: for<'r> Decode<'r, DB> + Type<DB> {}

impl<DB: Database, T: for<'r> Decode<'r, DB> + Type<DB>> Decodes<DB> for T {}

/// The listing of the results, read by [`ListingRow::result_row`];
/// `at_us` as [`Listing::at_us`].
pub(crate) const fn results(at_us: &'static str) -> Listing {
    Listing {
        columns: "id, AT_US, topic, event_id, handler_id, error, attempt",
        table: "soiree_results",
        at_us,
        grouped: false,
        event_id_nullable: false,
    }
}

/// The listing of the group's dead letters, read by
/// [`ListingRow::dead_letter`]; `at_us` as [`Listing::at_us`].
pub(crate) const fn dead_letters(at_us: &'static str) -> Listing {
    Listing {
        columns: "id, AT_US, topic, event_id, payload, properties, error, deliveries",
        table: "soiree_dead_letters",
        at_us,
        grouped: true,
        event_id_nullable: true,
    }
}

/// A row of a backend, mapped by column position to the structs of the
/// inspection listings.
pub(crate) trait ListingRow: Row
where
    usize: ColumnIndex<Self>,
    i64: Decodes<Self::Database>,
    String: Decodes<Self::Database>,
{
    /// The type of the counters (deliveries, attempts, kinds): a 4-byte
    /// `INTEGER` on PostgreSQL, SQLite's 8-byte one.
    type Counter: Decodes<Self::Database> + Into<i64>;

    /// A dead letter: `id, at_us, topic, event_id, payload, properties,
    /// error, deliveries`.
    fn dead_letter(&self) -> Result<DeadLetter> {
        let deliveries: Self::Counter = self.try_get(7)?;
        Ok(DeadLetter {
            id: self.try_get(0)?,
            at: self.try_get::<Option<i64>, _>(1)?.map(from_us),
            topic: self.try_get(2)?,
            event_id: self.try_get(3)?,
            payload: self.try_get(4)?,
            properties: self.try_get(5)?,
            error: self.try_get(6)?,
            deliveries: u32::try_from(deliveries.into()).unwrap_or(0),
        })
    }

    /// An event of the log: `id, at_us, topic, payload, properties`.
    fn event_row(&self) -> Result<ListedRow<RawEvent>> {
        let id = self.try_get(0)?;
        Ok(ListedRow {
            id,
            at_us: self.try_get(1)?,
            item: RawEvent {
                pos: Pos { tx: 0, id },
                topic: self.try_get(2)?,
                payload: self.try_get(3)?,
                properties: self.try_get(4)?,
                // Listings do not need it: only claims order by key.
                key: None,
            },
        })
    }

    /// A listener result: `id, at_us, topic, event_id, handler_id, error,
    /// attempt`.
    fn result_row(&self) -> Result<ListedRow<StoredResult>> {
        let attempt: Self::Counter = self.try_get(6)?;
        Ok(ListedRow {
            id: self.try_get(0)?,
            at_us: self.try_get(1)?,
            item: StoredResult {
                topic: self.try_get(2)?,
                event_id: self.try_get(3)?,
                handler_id: self.try_get(4)?,
                error: self.try_get(5)?,
                attempt: u32::try_from(attempt.into()).unwrap_or(0),
            },
        })
    }

    /// A pending delivery: `kind, id, consumer, idle_ms, deliveries,
    /// events, topic, payload, properties` (`kind` 1 for a retry row, whose
    /// event the last three columns hold), then `lo_tx, lo_id, hi_tx,
    /// hi_id, expires_ms, event_id, event_ids` (the lease's range, the time
    /// left, a retry row's event id, the ids of the events covered).
    fn pending_row(&self) -> Result<PendingRow> {
        let kind: Self::Counter = self.try_get(0)?;
        let id: i64 = self.try_get(1)?;
        let topic: Option<String> = self.try_get(6)?;
        Ok(PendingRow {
            retry: kind.into() == 1,
            id,
            consumer: self.try_get(2)?,
            idle_ms: self.try_get(3)?,
            deliveries: self.try_get(4)?,
            events: self.try_get(5)?,
            event: match topic {
                Some(topic) => Some(RawEvent {
                    pos: Pos { tx: 0, id },
                    topic,
                    payload: self.try_get(7)?,
                    properties: self.try_get(8)?,
                    key: None,
                }),
                None => None,
            },
            expires_ms: self.try_get(13)?,
            event_ids: self.try_get(15)?,
        })
    }

    /// A consumer: `name, pending, idle_ms`.
    fn consumer_row(&self) -> Result<ConsumerRow> {
        Ok(ConsumerRow {
            name: self.try_get(0)?,
            pending: self.try_get(1)?,
            idle_ms: self.try_get(2)?,
        })
    }

    /// The counts: `emitted, events, results, dead_letters, backlog,
    /// oldest_ms, in_flight, consumers`.
    fn counts(&self) -> Result<Counts> {
        Ok(Counts {
            emitted: self.try_get(0)?,
            events: self.try_get(1)?,
            results: self.try_get(2)?,
            dead_letters: self.try_get(3)?,
            backlog: self.try_get(4)?,
            oldest_ms: self.try_get(5)?,
            in_flight: self.try_get(6)?,
            consumers: self.try_get(7)?,
        })
    }
}

#[cfg(feature = "postgres")]
impl ListingRow for sqlx::postgres::PgRow {
    type Counter = i32;
}

#[cfg(feature = "sqlite")]
impl ListingRow for sqlx::sqlite::SqliteRow {
    type Counter = i64;
}
