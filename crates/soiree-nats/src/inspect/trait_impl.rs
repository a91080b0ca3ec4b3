//! The [`Inspect`] trait on [`NatsStore`].

use std::time::SystemTime;

use async_trait::async_trait;
use soiree::inspect::{LOOKUP_SCAN_LIMIT, event_id_text};
use soiree::{
    ConsumerInfo, DeadLetter, DeadLetterSelection, Inspect, Page, PendingDelivery, Query, Record,
    StoreInfo, StoreStats, StoredEvent, StoredResult,
};

use crate::NatsStore;
use crate::dead_letter::{Envelope, unreadable};
use crate::inspect::page::Decoded;

impl NatsStore {
    /// The dead letters a selection names, with their sequences.
    async fn selected(
        &self,
        selection: &DeadLetterSelection,
    ) -> soiree::Result<Vec<(u64, DeadLetter)>> {
        let mut out = Vec::new();
        match selection {
            DeadLetterSelection::Ids(ids) => {
                for id in ids {
                    if let Some(letter) = self.dead_letter(id).await? {
                        out.push((id.parse().unwrap_or_default(), letter));
                    }
                }
            }
            DeadLetterSelection::Matching(filter) => {
                let mut query = Query::oldest(Query::MAX_LIMIT).filter(filter.clone());
                let mut scanned = 0;
                while scanned < LOOKUP_SCAN_LIMIT {
                    let page = self.dead_letters(&query).await?;
                    scanned += query.scan_budget();
                    for letter in page.items {
                        out.push((letter.id.parse().unwrap_or_default(), letter));
                    }
                    match page.next {
                        Some(next) => query.cursor = Some(next),
                        None => break,
                    }
                }
            }
            _ => {}
        }
        Ok(out)
    }
}

/// The results of a message of the results stream: one (a JSON object),
/// or a flush's batch (a JSON array, see `writes`).
fn decode_results(payload: &[u8]) -> Decoded<StoredResult> {
    match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice::<Vec<StoredResult>>(payload)
            .map_or(Decoded::Nothing, Decoded::Many),
        _ => serde_json::from_slice::<StoredResult>(payload).ok().into(),
    }
}

impl NatsStore {
    /// The results in the results stream of `messages` messages: a
    /// batch's subject ends in its number of results (`writes`), a single
    /// result's in its group.
    async fn result_count(&self, messages: u64) -> soiree::Result<u64> {
        use futures::TryStreamExt;
        if messages == 0 {
            return Ok(0);
        }
        let names = &self.inner.names;
        let filter = format!("{}_results.>", names.prefix);
        let mut subjects = self
            .inner
            .results
            .info_with_subjects(&filter)
            .await
            .map_err(|err| self.err("stream info", &names.results_stream, err))?;
        let mut count = 0u64;
        while let Some((subject, messages)) = subjects
            .try_next()
            .await
            .map_err(|err| self.err("stream info", &names.results_stream, err))?
        {
            let per_message = match subject.split('.').nth(2) {
                Some(n) => n.parse::<u64>().unwrap_or(1),
                None => 1,
            };
            count += per_message * messages as u64;
        }
        Ok(count)
    }
}

fn dead_letter_of(message: &async_nats::jetstream::message::StreamMessage) -> DeadLetter {
    let at = Some(SystemTime::from(message.time));
    match serde_json::from_slice::<Envelope>(&message.payload) {
        Ok(envelope) => envelope.into_dead_letter(message.sequence, at),
        Err(err) => unreadable(message.sequence, &message.payload, &err).at(at),
    }
}

#[async_trait]
impl Inspect for NatsStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new(
            "nats",
            format!(
                "{} (stream {})",
                self.inner.location, self.inner.names.events_stream
            ),
            Some(self.inner.names.group.clone()),
        )
    }

    async fn stats(&self) -> soiree::Result<StoreStats> {
        let names = &self.inner.names;
        let inner = &self.inner;
        let events = self
            .stream_info(&inner.events, &names.events_stream)
            .await?;
        let results = self
            .stream_info(&inner.results, &names.results_stream)
            .await?;
        let dead = self.stream_info(&inner.dead, &names.dead_stream).await?;
        let mut consumer = self.inner.consumer.clone();
        let info = consumer
            .info()
            .await
            .map_err(|err| self.err("consumer info", &names.group, err))?
            .clone();
        let mut stats = StoreStats::default();
        stats.taken_at = Some(SystemTime::now());
        stats.emitted = events.state.last_sequence;
        stats.events = events.state.messages;
        stats.results = self.result_count(results.state.messages).await?;
        stats.backlog = info.num_pending + info.num_ack_pending as u64;
        stats.in_flight = info.num_ack_pending as u64;
        // Dead letters of every group of the prefix: they share the stream.
        stats.dead_letters = dead.state.messages;
        stats.scheduled = self.scheduled_count().await?;
        stats.consumers = events.state.consumer_count as u64;
        self.inner
            .metrics
            .queue_length
            .set(i64::try_from(stats.backlog).unwrap_or(i64::MAX));
        Ok(stats)
    }

    async fn events(&self, query: &Query) -> soiree::Result<Page<Record<StoredEvent>>> {
        let page = self
            .read_page(
                &self.inner.events,
                query,
                |m| serde_json::from_slice::<StoredEvent>(&m.payload).ok(),
                |event, at| query.filter.matches_event(event, at),
            )
            .await?;
        Ok(records(page))
    }

    async fn results(&self, query: &Query) -> soiree::Result<Page<Record<StoredResult>>> {
        // Read what this handle wrote.
        self.flush_writes().await?;
        let page = self
            .read_page(
                &self.inner.results,
                query,
                |m| decode_results(&m.payload),
                |result, at| query.filter.matches_result(result, at),
            )
            .await?;
        Ok(records(page))
    }

    async fn pending(&self, query: &Query) -> soiree::Result<Page<PendingDelivery>> {
        // JetStream counts a consumer's unacknowledged deliveries but does
        // not list them: one summary entry for the group.
        if query.cursor.is_some() {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        let mut consumer = self.inner.consumer.clone();
        let info = consumer
            .info()
            .await
            .map_err(|err| self.err("consumer info", &self.inner.names.group, err))?
            .clone();
        let items = if info.num_ack_pending == 0 {
            Vec::new()
        } else {
            vec![
                PendingDelivery::new(
                    self.inner.names.group.clone(),
                    self.inner.names.group.clone(),
                    std::time::Duration::ZERO,
                    1,
                )
                .events(info.num_ack_pending as u64),
            ]
        };
        Ok(Page { items, next: None })
    }

    async fn consumers(&self) -> soiree::Result<Vec<ConsumerInfo>> {
        let mut consumer = self.inner.consumer.clone();
        let info = consumer
            .info()
            .await
            .map_err(|err| self.err("consumer info", &self.inner.names.group, err))?
            .clone();
        Ok(vec![ConsumerInfo::new(
            info.name.clone(),
            info.num_ack_pending as u64,
            None,
        )])
    }

    /// The delayed events of the scheduled stream, sorted by due time
    /// (of its first 10,000 entries).
    async fn scheduled(&self, query: &Query) -> soiree::Result<Page<soiree::ScheduledEvent>> {
        self.scheduled_page(query).await
    }

    /// The lease bucket's keys listed (the first 10,000), then each read;
    /// held: unreleased and unexpired on this process's clock.
    async fn leader_leases(&self, limit: usize) -> soiree::Result<Vec<soiree::LeaseInfo>> {
        Ok(self
            .lease_bucket()?
            .lease_infos(limit.clamp(1, Query::MAX_LIMIT))
            .await?)
    }

    /// The bucket's keys listed (the first 10,000), then each slot key
    /// read.
    async fn limit_slots(&self, limit: usize) -> soiree::Result<Vec<soiree::LimitSlot>> {
        Ok(self
            .limits_bucket()?
            .slot_infos(limit.clamp(1, Query::MAX_LIMIT))
            .await?)
    }

    async fn dead_letters(&self, query: &Query) -> soiree::Result<Page<DeadLetter>> {
        let page = self
            .read_page(
                &self.inner.dead,
                query,
                |m| Some(dead_letter_of(m)),
                |letter, at| {
                    let topic = letter.topic().unwrap_or("");
                    let id = letter.event_id();
                    query.filter.topic.is_none()
                        && query.filter.event_id.is_none()
                        && query.filter.matches("", None, at)
                        || query.filter.matches(topic, id.as_deref(), at)
                },
            )
            .await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|(_, _, letter)| letter)
                .collect(),
            next: page.next,
        })
    }

    async fn dead_letter(&self, id: &str) -> soiree::Result<Option<DeadLetter>> {
        let Ok(seq) = id.parse::<u64>() else {
            return Ok(None);
        };
        match self.inner.dead.get_raw_message(seq).await {
            Ok(message) => Ok(Some(dead_letter_of(&message))),
            Err(err)
                if matches!(
                    err.kind(),
                    async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound
                ) =>
            {
                Ok(None)
            }
            Err(err) => Err(self.err("get", &self.inner.names.dead_stream, err).into()),
        }
    }

    async fn replay_dead_letters(&self, selection: &DeadLetterSelection) -> soiree::Result<u64> {
        let mut replayed = 0;
        for (seq, letter) in self.selected(selection).await? {
            let Some(event) = &letter.event else { continue };
            // The same replay retried is stored once.
            let msg_id = format!("~dead:{}:{seq}", self.inner.names.dead_stream);
            self.publish(event, Some(msg_id)).await?;
            self.inner
                .dead
                .delete_message(seq)
                .await
                .map_err(|err| self.err("delete", &self.inner.names.dead_stream, err))?;
            replayed += 1;
        }
        Ok(replayed)
    }

    async fn purge_dead_letters(&self, selection: &DeadLetterSelection) -> soiree::Result<u64> {
        let mut purged = 0;
        for (seq, _) in self.selected(selection).await? {
            let deleted = self
                .inner
                .dead
                .delete_message(seq)
                .await
                .map_err(|err| self.err("delete", &self.inner.names.dead_stream, err))?;
            purged += u64::from(deleted);
        }
        Ok(purged)
    }

    async fn replay(&self, event_id: &str) -> soiree::Result<()> {
        let event = match Inspect::event(self, event_id).await? {
            Some(detail) => Some(detail.event.item),
            None => {
                let selection =
                    DeadLetterSelection::Matching(soiree::Filter::default().event_id(event_id));
                self.selected(&selection)
                    .await?
                    .into_iter()
                    .find_map(|(_, letter)| letter.event)
            }
        };
        let Some(event) = event else {
            return Err(soiree::Error::NotFound {
                what: "event",
                id: event_id.to_owned(),
            });
        };
        debug_assert_eq!(event_id_text(&event).as_deref(), Some(event_id));
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        self.publish(&event, Some(format!("~replay:{nanos}"))).await
    }
}

fn records<T>(page: Page<crate::inspect::page::Entry<T>>) -> Page<Record<T>> {
    Page {
        items: page
            .items
            .into_iter()
            .map(|(seq, at, item)| Record {
                id: seq.to_string(),
                at,
                item,
            })
            .collect(),
        next: page.next,
    }
}
