//! The rows of both backends mapped to their structs (leases, events,
//! retry rows, the inspection listings): their statements differ, the
//! order of their columns does not (a log position is `tx, id` on
//! PostgreSQL, `id` on SQLite).
//!
//! [`ListingRow`] reads the rows of a backend ([`PgRow`](sqlx::postgres::PgRow),
//! [`SqliteRow`](sqlx::sqlite::SqliteRow)) by column position; the
//! constructors of [`Listing`] below name those columns for the listings
//! whose SQL is the same on both.
//!
//! Every text column is read with [`ListingRow::text`]: SQLite does not
//! check that a `TEXT` value is UTF-8, so a row holding other bytes is read
//! lossily (and, as an event, marked with a flaw so that it is
//! dead-lettered alone) instead of failing its whole listing or claim.

use soiree::StoredResult;
use sqlx::{ColumnIndex, Database, Decode, Row, Type};

use crate::backend::{
    ConsumerRow, Counts, LeaseRow, Listing, PendingRow, Pos, RawEvent, RetryRow, Row as ListedRow,
    from_us,
};
use crate::scheduled::ScheduledRow;
use crate::{Result, SqlDeadLetter};

/// A type that a column of database `DB` decodes to, whatever the row's
/// lifetime.
pub(crate) trait Decodes<DB: Database>: for<'r> Decode<'r, DB> + Type<DB> {}

impl<DB: Database, T: for<'r> Decode<'r, DB> + Type<DB>> Decodes<DB> for T {}

/// The three inspection listings of one backend: their SQL differs only by
/// the time expression and the event columns' casts.
#[derive(Debug, Clone, Copy)]
pub struct Listings {
    /// The log, read by [`Listed::event_row`].
    pub(crate) events: Listing,
    /// The results, read by [`Listed::result_row`].
    pub(crate) results: Listing,
    /// The group's dead letters, read by [`Listed::dead_letter`].
    pub(crate) dead_letters: Listing,
}

/// The listings of a backend: `at_us` as [`Listing::at_us`],
/// `event_columns` the log's `id, AT_US, topic, payload, properties`
/// (with the casts the database needs).
pub(crate) const fn listings(at_us: &'static str, event_columns: &'static str) -> Listings {
    Listings {
        events: Listing {
            columns: event_columns,
            table: "soiree_events",
            at_us,
            grouped: false,
            event_id_nullable: true,
        },
        results: results(at_us),
        dead_letters: dead_letters(at_us),
    }
}

/// A row of a listing, mapped to its struct: [`ListingRow`]'s mappings
/// without its bounds on the database, so that [`Backend`](crate::backend::Backend)
/// can name its row type.
pub trait Listed: Send {
    /// As [`ListingRow::dead_letter`].
    fn dead_letter(&self) -> Result<SqlDeadLetter>;
    /// As [`ListingRow::event_row`].
    fn event_row(&self) -> Result<ListedRow<RawEvent>>;
    /// As [`ListingRow::result_row`].
    fn result_row(&self) -> Result<ListedRow<StoredResult>>;
    /// As [`ListingRow::scheduled_row`].
    fn scheduled_row(&self) -> Result<ScheduledRow>;
    /// Integer column `index` (a count).
    fn int(&self, index: usize) -> Result<i64>;
    /// Integer column `index`, or NULL.
    fn maybe_int(&self, index: usize) -> Result<Option<i64>>;
    /// Text column `index`.
    fn string(&self, index: usize) -> Result<String>;
    /// Text column `index`, lossily (NULL reads as empty).
    fn text_lossy(&self, index: usize) -> Result<String>;
}

impl<R: ListingRow + Send> Listed for R
where
    usize: ColumnIndex<R>,
    i64: Decodes<R::Database>,
    String: Decodes<R::Database>,
{
    fn dead_letter(&self) -> Result<SqlDeadLetter> {
        ListingRow::dead_letter(self)
    }

    fn event_row(&self) -> Result<ListedRow<RawEvent>> {
        ListingRow::event_row(self)
    }

    fn result_row(&self) -> Result<ListedRow<StoredResult>> {
        ListingRow::result_row(self)
    }

    fn scheduled_row(&self) -> Result<ScheduledRow> {
        ListingRow::scheduled_row(self)
    }

    fn int(&self, index: usize) -> Result<i64> {
        Ok(self.try_get(index)?)
    }

    fn maybe_int(&self, index: usize) -> Result<Option<i64>> {
        Ok(self.try_get(index)?)
    }

    fn string(&self, index: usize) -> Result<String> {
        Ok(self.try_get(index)?)
    }

    fn text_lossy(&self, index: usize) -> Result<String> {
        Ok(ListingRow::text(self, index)?.0.unwrap_or_default())
    }
}

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

/// A delivery count as the structs hold it, saturating (a count beyond
/// `i32` is past any `max_deliveries`).
fn counter_i32(counter: impl Into<i64>) -> i32 {
    i32::try_from(counter.into()).unwrap_or(i32::MAX)
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

    /// Text column `index` (`None` when NULL), and whether it had to be
    /// decoded lossily (it is not UTF-8). PostgreSQL's text always is.
    fn text(&self, index: usize) -> Result<(Option<String>, bool)> {
        Ok((self.try_get(index)?, false))
    }

    /// Text column `index`, lossily; its `name` is added to `flaws` when
    /// it is not UTF-8.
    fn text_noting(
        &self,
        index: usize,
        name: &'static str,
        flaws: &mut Vec<&'static str>,
    ) -> Result<Option<String>> {
        let (text, lossy) = self.text(index)?;
        if lossy {
            flaws.push(name);
        }
        Ok(text)
    }

    /// A position in the log from column `index` on (`id`; PostgreSQL:
    /// `tx, id`), and the index of the column after it.
    fn pos_at(&self, index: usize) -> Result<(Pos, usize)> {
        let id = self.try_get(index)?;
        Ok((Pos { tx: 0, id }, index + 1))
    }

    /// A lease: `id, token, lo, hi, events, deliveries`, the positions as
    /// [`pos_at`](Self::pos_at) reads them.
    fn lease(&self) -> Result<LeaseRow> {
        let (lo, next) = self.pos_at(2)?;
        let (hi, next) = self.pos_at(next)?;
        let deliveries: Self::Counter = self.try_get(next + 1)?;
        Ok(LeaseRow {
            id: self.try_get(0)?,
            token: self.try_get(1)?,
            lo,
            hi,
            events: self.try_get(next)?,
            deliveries: counter_i32(deliveries),
        })
    }

    /// An event of the log to deliver: its position, then `topic, payload,
    /// properties, key`.
    fn raw_event(&self) -> Result<RawEvent> {
        let (pos, next) = self.pos_at(0)?;
        self.raw_event_at(next, pos, true)
    }

    /// A claimed row of the retry table: `id, token, deliveries`, its
    /// event's position, then `topic, payload, properties, key`.
    fn retry_row(&self) -> Result<RetryRow> {
        let (pos, next) = self.pos_at(3)?;
        let deliveries: Self::Counter = self.try_get(2)?;
        Ok(RetryRow {
            id: self.try_get(0)?,
            token: self.try_get(1)?,
            deliveries: counter_i32(deliveries),
            event: self.raw_event_at(next, pos, true)?,
        })
    }

    /// An event's `topic, payload, properties` from column `first` on, and
    /// its `key` after them when `keyed`; read lossily, with a flaw naming
    /// the columns that are not UTF-8.
    fn raw_event_at(&self, first: usize, pos: Pos, keyed: bool) -> Result<RawEvent> {
        let mut flaws = Vec::new();
        let topic = self.text_noting(first, "topic", &mut flaws)?;
        let payload = self.text_noting(first + 1, "payload", &mut flaws)?;
        let properties = self.text_noting(first + 2, "properties", &mut flaws)?;
        let key = if keyed {
            self.text_noting(first + 3, "key", &mut flaws)?
        } else {
            None
        };
        Ok(RawEvent {
            pos,
            topic: topic.unwrap_or_default(),
            payload,
            properties,
            key,
            flaw: (!flaws.is_empty()).then(|| {
                format!(
                    "decode error: not valid UTF-8 in {} (kept lossily)",
                    flaws.join(", ")
                )
            }),
        })
    }

    /// A dead letter: `id, at_us, topic, event_id, payload, properties,
    /// error, deliveries`; texts that are not UTF-8 read lossily.
    fn dead_letter(&self) -> Result<SqlDeadLetter> {
        let deliveries: Self::Counter = self.try_get(7)?;
        Ok(SqlDeadLetter {
            id: self.try_get(0)?,
            at: self.try_get::<Option<i64>, _>(1)?.map(from_us),
            topic: self.text(2)?.0,
            event_id: self.text(3)?.0,
            payload: self.text(4)?.0,
            properties: self.text(5)?.0,
            error: self.text(6)?.0.unwrap_or_default(),
            deliveries: u32::try_from(deliveries.into()).unwrap_or(0),
        })
    }

    /// An event of the log: `id, at_us, topic, payload, properties`.
    fn event_row(&self) -> Result<ListedRow<RawEvent>> {
        let id = self.try_get(0)?;
        Ok(ListedRow {
            id,
            at_us: self.try_get(1)?,
            // Listings do not need the key: only claims order by key.
            item: self.raw_event_at(2, Pos { tx: 0, id }, false)?,
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
                topic: self.text(2)?.0.unwrap_or_default(),
                event_id: self.text(3)?.0.unwrap_or_default(),
                handler_id: self.text(4)?.0.unwrap_or_default(),
                error: self.text(5)?.0,
                attempt: u32::try_from(attempt.into()).unwrap_or(0),
            },
        })
    }

    /// A delayed event: `id, due_ms, topic, payload, properties`.
    fn scheduled_row(&self) -> Result<ScheduledRow> {
        let id = self.try_get(0)?;
        Ok(ScheduledRow {
            id,
            due_ms: self.try_get(1)?,
            event: self.raw_event_at(2, Pos { tx: 0, id }, false)?,
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
        let retry = kind.into() == 1;
        Ok(PendingRow {
            retry,
            id,
            consumer: self.text(2)?.0.unwrap_or_default(),
            idle_ms: self.try_get(3)?,
            deliveries: self.try_get(4)?,
            events: self.try_get(5)?,
            event: if retry {
                Some(self.raw_event_at(6, Pos { tx: 0, id }, false)?)
            } else {
                None
            },
            expires_ms: self.try_get(13)?,
            event_ids: self.try_get(15)?,
        })
    }

    /// A consumer: `name, pending, idle_ms`.
    fn consumer_row(&self) -> Result<ConsumerRow> {
        Ok(ConsumerRow {
            name: self.text(0)?.0.unwrap_or_default(),
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

    /// `tx, id`: the writing transaction's id, then the row id.
    fn pos_at(&self, index: usize) -> Result<(Pos, usize)> {
        let pos = Pos {
            tx: self.try_get(index)?,
            id: self.try_get(index + 1)?,
        };
        Ok((pos, index + 2))
    }
}

#[cfg(feature = "sqlite")]
impl ListingRow for sqlx::sqlite::SqliteRow {
    type Counter = i64;

    fn text(&self, index: usize) -> Result<(Option<String>, bool)> {
        let Some(bytes) = self.try_get::<Option<&[u8]>, _>(index)? else {
            return Ok((None, false));
        };
        Ok(match std::str::from_utf8(bytes) {
            Ok(text) => (Some(text.to_owned()), false),
            Err(_) => (Some(String::from_utf8_lossy(bytes).into_owned()), true),
        })
    }
}
