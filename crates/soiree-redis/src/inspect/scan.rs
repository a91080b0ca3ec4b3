//! Paged reads of a stream: entry ids as cursors, ranges narrowed by a
//! [`Query`]'s cursor and time range, bounded scans with a filter.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use soiree::{Filter, Page, Query};

use crate::entry::{self, Entry};
use crate::{Error, RedisStore, Result};

/// Entries read per round trip by a filtered scan (more when the page's
/// limit is larger).
const SCAN_CHUNK: usize = 500;

/// A stream entry id, `<ms>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StreamId {
    ms: u64,
    seq: u64,
}

impl StreamId {
    const MIN: Self = Self { ms: 0, seq: 0 };
    const MAX: Self = Self {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// Parses `<ms>-<seq>`, or `<ms>` (sequence 0).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let number = |part: &str| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse().ok())
                .flatten()
        };
        match text.split_once('-') {
            Some((ms, seq)) => Some(Self {
                ms: number(ms)?,
                seq: number(seq)?,
            }),
            None => Some(Self {
                ms: number(text)?,
                seq: 0,
            }),
        }
    }

    /// Parses a cursor given by a caller.
    pub(crate) fn cursor(text: &str) -> Result<Self> {
        Self::parse(text).ok_or_else(|| Error::InvalidCursor(text.to_owned()))
    }

    /// When the entry was added: its millisecond part.
    pub(crate) fn time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.ms)
    }

    /// The smallest id after this one.
    pub(crate) fn next(self) -> Option<Self> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(Self { seq, ..self }),
            None => Some(Self {
                ms: self.ms.checked_add(1)?,
                seq: 0,
            }),
        }
    }

    /// The largest id before this one.
    pub(crate) fn prev(self) -> Option<Self> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(Self { seq, ..self }),
            None => Some(Self {
                ms: self.ms.checked_sub(1)?,
                seq: u64::MAX,
            }),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// When the entry with this id was added, if the id is one.
pub(crate) fn entry_time(id: &str) -> Option<SystemTime> {
    StreamId::parse(id).map(StreamId::time)
}

/// The ids a read covers, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) low: StreamId,
    pub(crate) high: StreamId,
}

impl Range {
    /// The whole stream.
    pub(crate) const ALL: Self = Self {
        low: StreamId::MIN,
        high: StreamId::MAX,
    };

    /// The ids a query can select: after (newest first: before) its cursor
    /// — what `XRANGE key (cursor +` reads — and inside its filter's time
    /// range, as entry ids are millisecond times. `None` when no id can be
    /// selected.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCursor`] when the cursor is not an entry id.
    pub(crate) fn of(query: &Query) -> Result<Option<Self>> {
        let mut range = Self::ALL;
        if let Some(cursor) = &query.cursor {
            let cursor = StreamId::cursor(cursor)?;
            let bound = if query.newest_first {
                cursor.prev().map(|high| range.high = high)
            } else {
                cursor.next().map(|low| range.low = low)
            };
            if bound.is_none() {
                return Ok(None);
            }
        }
        Ok(range.within(&query.filter))
    }

    /// Narrowed to the filter's time range: `since` <= time < `until`,
    /// where an entry's time is its id's millisecond part.
    fn within(mut self, filter: &Filter) -> Option<Self> {
        let ms = |time: SystemTime| time.duration_since(UNIX_EPOCH).ok();
        if let Some(since) = filter.since
            && let Some(since) = ms(since)
        {
            // The first whole millisecond at or after `since`.
            let first = u64::try_from(since.as_millis())
                .ok()?
                .checked_add(u64::from(since.subsec_nanos() % 1_000_000 != 0))?;
            self.low = self.low.max(StreamId { ms: first, seq: 0 });
        }
        if let Some(until) = filter.until {
            // The last whole millisecond before `until`.
            let until = ms(until)?;
            let last = u64::try_from(until.as_millis())
                .unwrap_or(u64::MAX)
                .checked_sub(u64::from(until.subsec_nanos() % 1_000_000 == 0))?;
            self.high = self.high.min(StreamId {
                ms: last,
                seq: u64::MAX,
            });
        }
        (self.low <= self.high).then_some(self)
    }

    fn bounds(self) -> (String, String) {
        let low = if self.low == StreamId::MIN {
            "-".to_owned()
        } else {
            self.low.to_string()
        };
        let high = if self.high == StreamId::MAX {
            "+".to_owned()
        } else {
            self.high.to_string()
        };
        (low, high)
    }
}

impl RedisStore {
    /// Up to `count` entries of the stream at `key` inside `range`, oldest
    /// first (`XRANGE`) or newest first (`XREVRANGE`).
    pub(crate) async fn read_range(
        &self,
        key: &str,
        range: Range,
        count: usize,
        newest_first: bool,
    ) -> Result<Vec<Entry>> {
        let (low, high) = range.bounds();
        let cmd = if newest_first {
            redis::Cmd::xrevrange_count(key, high, low, count)
        } else {
            redis::Cmd::xrange_count(key, low, high, count)
        };
        entry::entries(self.query(&cmd).await?)
    }

    /// One page of a stream for `query`: reads entries in the query's
    /// order from its cursor, in chunks, keeping those `pick` returns
    /// something for (it gets each entry with its time), until the page
    /// holds `query.limit` items or `query.scan_budget()` entries were
    /// read. `next` is the id of the last entry read when more follow.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCursor`] for a cursor that is not an entry id,
    /// [`Error::Redis`] when Redis cannot be read.
    pub(crate) async fn scan_page<T>(
        &self,
        key: &str,
        query: &Query,
        mut pick: impl FnMut(&Entry, SystemTime) -> Option<T>,
    ) -> Result<Page<T>> {
        let mut items = Vec::new();
        let Some(mut range) = Range::of(query)? else {
            return Ok(Page { items, next: None });
        };
        let limit = query.limit.max(1);
        let budget = query.scan_budget().max(1);
        let mut scanned = 0;
        loop {
            let remaining = budget - scanned;
            // Unfiltered, every entry read is kept: read the page at once.
            let chunk = if query.filter.is_empty() {
                remaining
            } else {
                remaining.min(SCAN_CHUNK.max(limit))
            };
            // One more than the chunk: whether more follow.
            let entries = self
                .read_range(key, range, chunk.saturating_add(1), query.newest_first)
                .await?;
            let mut entries = entries.iter();
            let mut last = None;
            let mut full = false;
            for entry in entries.by_ref().take(chunk) {
                let id = StreamId::parse(&entry.id).ok_or_else(|| {
                    Error::UnexpectedReply(format!("{:?} is not a stream entry id", entry.id))
                })?;
                scanned += 1;
                last = Some(id);
                if let Some(item) = pick(entry, id.time()) {
                    items.push(item);
                }
                if items.len() >= limit || scanned >= budget {
                    full = true;
                    break;
                }
            }
            let more = entries.next().is_some();
            let (Some(last), true) = (last, more) else {
                return Ok(Page { items, next: None });
            };
            if full {
                return Ok(Page {
                    items,
                    next: Some(last.to_string()),
                });
            }
            let narrowed = if query.newest_first {
                last.prev().map(|high| range.high = high)
            } else {
                last.next().map(|low| range.low = low)
            };
            if narrowed.is_none() {
                return Ok(Page { items, next: None });
            }
        }
    }

    /// Visits every entry of a stream inside `range`, oldest first (newest
    /// first when asked), until `visit` returns false.
    pub(crate) async fn visit(
        &self,
        key: &str,
        mut range: Range,
        newest_first: bool,
        mut visit: impl FnMut(&Entry) -> bool,
    ) -> Result<()> {
        const PAGE: usize = 500;
        loop {
            let entries = self.read_range(key, range, PAGE, newest_first).await?;
            for entry in &entries {
                if !visit(entry) {
                    return Ok(());
                }
            }
            let last = match entries.last() {
                Some(last) if entries.len() == PAGE => StreamId::parse(&last.id),
                _ => None,
            };
            let narrowed = last.and_then(|last| {
                if newest_first {
                    last.prev().map(|high| range.high = high)
                } else {
                    last.next().map(|low| range.low = low)
                }
            });
            if narrowed.is_none() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_step() {
        let id = StreamId::parse("1700000000000-3").unwrap();
        assert_eq!(id.to_string(), "1700000000000-3");
        assert_eq!(StreamId::parse("42"), Some(StreamId { ms: 42, seq: 0 }));
        for bad in ["", "-", "1-", "-1", "a-1", "1-2-3", "+1-0", " 1-0", "1-0 "] {
            assert_eq!(StreamId::parse(bad), None, "{bad:?}");
        }
        assert!(matches!(
            StreamId::cursor("nope"),
            Err(Error::InvalidCursor(_))
        ));
        assert_eq!(
            StreamId {
                ms: 5,
                seq: u64::MAX
            }
            .next(),
            Some(StreamId { ms: 6, seq: 0 })
        );
        assert_eq!(
            StreamId { ms: 5, seq: 0 }.prev(),
            Some(StreamId {
                ms: 4,
                seq: u64::MAX
            })
        );
        assert_eq!(StreamId::MIN.prev(), None);
        assert_eq!(StreamId::MAX.next(), None);
    }

    #[test]
    fn ranges_follow_cursors_and_times() {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        let oldest = Query::oldest(10).after("100-5");
        let range = Range::of(&oldest).unwrap().unwrap();
        assert_eq!(range.bounds(), ("100-6".to_owned(), "+".to_owned()));
        let newest = Query::newest(10).after("100-0");
        let range = Range::of(&newest).unwrap().unwrap();
        assert_eq!(range.bounds(), ("-".to_owned(), format!("99-{}", u64::MAX)));
        assert_eq!(Range::of(&Query::newest(10).after("0-0")).unwrap(), None);
        assert!(Range::of(&Query::oldest(10).after("x")).is_err());

        // since inclusive, until exclusive, by whole milliseconds.
        let timed = Query::oldest(10).filter(Filter::default().since(at(200)).until(at(300)));
        let range = Range::of(&timed).unwrap().unwrap();
        assert_eq!(range.low, StreamId { ms: 200, seq: 0 });
        assert_eq!(
            range.high,
            StreamId {
                ms: 299,
                seq: u64::MAX
            }
        );
        let fraction = Duration::from_micros(500);
        let timed = Query::oldest(10).filter(
            Filter::default()
                .since(at(200) + fraction)
                .until(at(300) + fraction),
        );
        let range = Range::of(&timed).unwrap().unwrap();
        assert_eq!(range.low, StreamId { ms: 201, seq: 0 });
        assert_eq!(
            range.high,
            StreamId {
                ms: 300,
                seq: u64::MAX
            }
        );
        // A cursor past the time range: nothing.
        let past = Query::oldest(10)
            .filter(Filter::default().until(at(300)))
            .after("400-0");
        assert_eq!(Range::of(&past).unwrap(), None);
        let empty = Query::oldest(10).filter(Filter::default().until(at(0)));
        assert_eq!(Range::of(&empty).unwrap(), None);
    }
}
