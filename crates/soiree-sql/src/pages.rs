//! Paged reads through the store's core: the group's dead letters, the
//! event log and the listener results (`EventHistory`), with their cursors;
//! and replaying dead letters.

use soiree::{Page, StoredEvent, StoredResult};

use crate::backend::{Backend, Pos, RawEvent, Scan};
use crate::core::Core;
use crate::{Error, Result, SqlDeadLetter, SqlDeadLetterFilter};

impl<B: Backend> Core<B> {
    /// The group's dead letters, a page at a time (`cursor`: the `next` of
    /// the previous page).
    pub(crate) async fn dead_letters(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<SqlDeadLetter>> {
        let after = cursor
            .map(|c| {
                c.parse::<i64>()
                    .map_err(|_| Error::InvalidCursor(c.to_owned()))
            })
            .transpose()?
            .unwrap_or(0);
        let limit = limit.clamp(1, 10_000);
        let mut rows = self
            .backend
            .dead_letters(&Scan {
                cursor: Some(after),
                limit: limit + 1,
                ..Scan::default()
            })
            .await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = more
            .then(|| rows.last().map(|row| row.id.to_string()))
            .flatten();
        Ok(Page { items: rows, next })
    }

    /// Moves dead letters back to delivery (through the retry table), with
    /// their event ids; returns how many.
    pub(crate) async fn replay_dead_letters(&self, filter: &SqlDeadLetterFilter) -> Result<u64> {
        if let Some(topic) = &filter.topic {
            crate::topic::no_nul("the topic", topic)?;
        }
        if let Some(id) = &filter.event_id {
            crate::topic::no_nul("the event id", id)?;
        }
        let moved = self.backend.replay_dead(filter).await?;
        if moved > 0 {
            self.retries_queued();
        }
        Ok(moved)
    }

    pub(crate) async fn events(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<StoredEvent>> {
        let after = cursor.map(parse_pos).transpose()?;
        let limit = limit.clamp(1, 10_000);
        let mut rows = self.backend.events_page(after, limit + 1).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = more
            .then(|| rows.last().map(|row| format_pos(row.pos)))
            .flatten();
        // A row that is not an event is shown lossily rather than failing
        // the page (it is dead-lettered when delivered).
        let items = rows.iter().map(RawEvent::parse_lossy).collect();
        Ok(Page { items, next })
    }

    pub(crate) async fn results(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<StoredResult>> {
        self.flush_results().await?;
        let after = cursor
            .map(|c| {
                c.parse::<i64>()
                    .map_err(|_| Error::InvalidCursor(c.to_owned()))
            })
            .transpose()?;
        let limit = limit.clamp(1, 10_000);
        let mut rows = self.backend.results_page(after, limit + 1).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = more
            .then(|| rows.last().map(|(id, _)| id.to_string()))
            .flatten();
        Ok(Page {
            items: rows.into_iter().map(|(_, result)| result).collect(),
            next,
        })
    }
}

fn format_pos(pos: Pos) -> String {
    format!("{}.{}", pos.tx, pos.id)
}

fn parse_pos(cursor: &str) -> Result<Pos> {
    let invalid = || Error::InvalidCursor(cursor.to_owned());
    let (tx, id) = cursor.split_once('.').ok_or_else(invalid)?;
    Ok(Pos {
        tx: tx.parse().map_err(|_| invalid())?,
        id: id.parse().map_err(|_| invalid())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let pos = Pos { tx: 7, id: 42 };
        assert_eq!(parse_pos(&format_pos(pos)).unwrap(), pos);
        for bad in ["", "1", "x.1", "1.y", "1.2.3"] {
            assert!(
                matches!(parse_pos(bad), Err(Error::InvalidCursor(_))),
                "{bad:?}"
            );
        }
    }
}
