//! Reading a page of a stream by sequence, oldest or newest first.
//!
//! A message may hold several entries (the results stream's batches): an
//! entry's position is then its message's sequence and its index in the
//! message, spelled `seq.index`; an entry alone in its message is at
//! `seq`. A cursor is the position of the last entry a page looked at, so
//! that a page can end inside a message.

use std::fmt;
use std::time::SystemTime;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use soiree::{Page, Query};

use crate::NatsStore;

/// One entry read back: its position, its time, what it decoded to.
pub(crate) type Entry<T> = (Position, Option<SystemTime>, T);

/// Where an entry is in its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) seq: u64,
    /// Its index in a message of several entries.
    pub(crate) index: Option<usize>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "{}.{index}", self.seq),
            None => write!(f, "{}", self.seq),
        }
    }
}

impl Position {
    fn parse(text: &str) -> Option<Self> {
        match text.split_once('.') {
            Some((seq, index)) => Some(Self {
                seq: seq.parse().ok()?,
                index: Some(index.parse().ok()?),
            }),
            None => Some(Self {
                seq: text.parse().ok()?,
                index: None,
            }),
        }
    }
}

/// What a message decoded to.
pub(crate) enum Decoded<T> {
    /// Nothing readable.
    Nothing,
    /// One entry, alone in its message.
    One(T),
    /// The entries of a message of several.
    Many(Vec<T>),
}

impl<T> From<Option<T>> for Decoded<T> {
    fn from(item: Option<T>) -> Self {
        item.map_or(Self::Nothing, Self::One)
    }
}

impl<T> Decoded<T> {
    /// The entries with their indexes (`None` for one alone).
    fn into_entries(self) -> Vec<(Option<usize>, T)> {
        match self {
            Self::Nothing => Vec::new(),
            Self::One(item) => vec![(None, item)],
            Self::Many(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| (Some(i), item))
                .collect(),
        }
    }
}

impl NatsStore {
    /// The entries of `stream` selected by `query`: decoded by `decode`
    /// (entries it refuses are skipped), kept when `keep` says so, at most
    /// `query.limit` of them after reading at most `query.scan_budget()`
    /// messages.
    pub(crate) async fn read_page<T, D>(
        &self,
        stream: &Stream,
        query: &Query,
        decode: impl Fn(&StreamMessage) -> D,
        keep: impl Fn(&T, Option<SystemTime>) -> bool,
    ) -> soiree::Result<Page<Entry<T>>>
    where
        D: Into<Decoded<T>>,
    {
        let name = stream.cached_info().config.name.clone();
        let cursor = match &query.cursor {
            Some(cursor) => Some(Position::parse(cursor).ok_or_else(|| {
                self.err(
                    "read",
                    &name,
                    format!("cursor {cursor:?} is not a position in this stream"),
                )
            })?),
            None => None,
        };
        let budget = query.scan_budget();
        let mut items = Vec::new();
        let mut scanned = 0;
        // Takes the entries of `message` in reading order from `from` on
        // (an index; `None`: all), while the page has room; returns the
        // position of the last one looked at when some remain after it.
        let take = |message: &StreamMessage,
                    from: Option<usize>,
                    items: &mut Vec<Entry<T>>|
         -> Option<Position> {
            let at = Some(SystemTime::from(message.time));
            let mut entries = decode(message).into().into_entries();
            if query.newest_first {
                entries.reverse();
            }
            let mut entries = entries
                .into_iter()
                .filter(|(index, _)| match (from, index) {
                    (Some(from), Some(index)) if query.newest_first => *index < from,
                    (Some(from), Some(index)) => *index > from,
                    _ => true,
                })
                .peekable();
            while let Some((index, item)) = entries.next() {
                if keep(&item, at) {
                    items.push((
                        Position {
                            seq: message.sequence,
                            index,
                        },
                        at,
                        item,
                    ));
                }
                if items.len() >= query.limit && entries.peek().is_some() {
                    return Some(Position {
                        seq: message.sequence,
                        index,
                    });
                }
            }
            None
        };
        // A cursor inside a message: the rest of that message first.
        let inside = cursor.filter(|c| c.index.is_some());
        if query.newest_first {
            let info = self.stream_info(stream, &name).await?;
            let first = info.state.first_sequence.max(1);
            let mut seq = match cursor {
                Some(cursor) if cursor.index.is_some() => cursor.seq,
                Some(cursor) => cursor.seq.saturating_sub(1),
                None => info.state.last_sequence,
            };
            let mut from = inside.and_then(|c| c.index);
            while seq >= first && seq > 0 && items.len() < query.limit && scanned < budget {
                match stream.get_raw_message(seq).await {
                    Ok(message) => {
                        if let Some(stop) = take(&message, from.take(), &mut items) {
                            return Ok(Page {
                                items,
                                next: Some(stop.to_string()),
                            });
                        }
                    }
                    Err(err) if matches!(err.kind(), RawMessageErrorKind::NoMessageFound) => {}
                    Err(err) => return Err(self.err("get", &name, err).into()),
                }
                scanned += 1;
                seq -= 1;
            }
            let next = (seq >= first && seq > 0).then(|| (seq + 1).to_string());
            return Ok(Page { items, next });
        }
        let mut seq = match cursor {
            Some(cursor) if cursor.index.is_some() => cursor.seq,
            Some(cursor) => cursor.seq + 1,
            None => 1,
        };
        let mut from = inside.and_then(|c| c.index);
        loop {
            if items.len() >= query.limit || scanned >= budget {
                return Ok(Page {
                    items,
                    next: Some((seq - 1).to_string()),
                });
            }
            let message = stream
                .raw_message_builder()
                .sequence(seq)
                .next_by_subject(">")
                .send()
                .await;
            match message {
                Ok(message) => {
                    // A cursor's message may be gone (purged): its rest too.
                    let from = from.take().filter(|_| message.sequence == seq);
                    seq = message.sequence + 1;
                    scanned += 1;
                    if let Some(stop) = take(&message, from, &mut items) {
                        return Ok(Page {
                            items,
                            next: Some(stop.to_string()),
                        });
                    }
                }
                Err(err) if matches!(err.kind(), RawMessageErrorKind::NoMessageFound) => {
                    return Ok(Page { items, next: None });
                }
                Err(err) => return Err(self.err("get", &name, err).into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_back_as_spelled() {
        for text in ["7", "7.0", "12.3"] {
            assert_eq!(Position::parse(text).unwrap().to_string(), text);
        }
        for bad in ["", "a", "7.", ".1", "7.x", "-1"] {
            assert_eq!(Position::parse(bad), None, "{bad}");
        }
    }
}
