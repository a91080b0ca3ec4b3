//! Reading a page of a stream by sequence, oldest or newest first.

use std::time::SystemTime;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use soiree::{Page, Query};

use crate::NatsStore;

/// One entry read back: its sequence, its time, what it decoded to.
pub(crate) type Entry<T> = (u64, Option<SystemTime>, T);

impl NatsStore {
    /// The entries of `stream` selected by `query`: decoded by `decode`
    /// (entries it refuses are skipped), kept when `keep` says so, at most
    /// `query.limit` of them after reading at most `query.scan_budget()`.
    pub(crate) async fn read_page<T>(
        &self,
        stream: &Stream,
        query: &Query,
        decode: impl Fn(&StreamMessage) -> Option<T>,
        keep: impl Fn(&T, Option<SystemTime>) -> bool,
    ) -> soiree::Result<Page<Entry<T>>> {
        let name = stream.cached_info().config.name.clone();
        let cursor = match &query.cursor {
            Some(cursor) => Some(cursor.parse::<u64>().map_err(|_| {
                self.err(
                    "read",
                    &name,
                    format!("cursor {cursor:?} is not a sequence of this stream"),
                )
            })?),
            None => None,
        };
        let budget = query.scan_budget();
        let mut items = Vec::new();
        let mut scanned = 0;
        let take = |message: &StreamMessage, items: &mut Vec<Entry<T>>| {
            let at = Some(SystemTime::from(message.time));
            if let Some(item) = decode(message)
                && keep(&item, at)
            {
                items.push((message.sequence, at, item));
            }
        };
        if query.newest_first {
            let info = self.stream_info(stream, &name).await?;
            let first = info.state.first_sequence.max(1);
            let mut seq = match cursor {
                Some(cursor) => cursor.saturating_sub(1),
                None => info.state.last_sequence,
            };
            while seq >= first && seq > 0 && items.len() < query.limit && scanned < budget {
                match stream.get_raw_message(seq).await {
                    Ok(message) => take(&message, &mut items),
                    Err(err) if matches!(err.kind(), RawMessageErrorKind::NoMessageFound) => {}
                    Err(err) => return Err(self.err("get", &name, err).into()),
                }
                scanned += 1;
                seq -= 1;
            }
            let next = (seq >= first && seq > 0).then(|| (seq + 1).to_string());
            return Ok(Page { items, next });
        }
        let mut seq = cursor.map_or(1, |c| c + 1);
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
                    seq = message.sequence + 1;
                    take(&message, &mut items);
                    scanned += 1;
                }
                Err(err) if matches!(err.kind(), RawMessageErrorKind::NoMessageFound) => {
                    return Ok(Page { items, next: None });
                }
                Err(err) => return Err(self.err("get", &name, err).into()),
            }
        }
    }
}
