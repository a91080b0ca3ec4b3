//! [`Inspect`] for the in-memory store.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{Letter, MemoryStore, Stamped};
use crate::store::inspect::{
    ConsumerInfo, DeadLetter, DeadLetterSelection, Filter, Inspect, PendingDelivery, Query, Record,
    ScheduledEvent, StoreInfo, StoreStats, TopicCounts, event_id_text,
};
use crate::store::{Page, StoredResult};
use crate::{Error, Result, StoredEvent};

/// The name the store gives the bus consumer of this process.
const CONSUMER: &str = "this-process";

#[async_trait]
impl Inspect for MemoryStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new(
            "memory",
            "this process",
            self.as_queue.then(|| self.group.to_string()),
        )
    }

    async fn stats(&self) -> Result<StoreStats> {
        let mut state = self.lock();
        let (emitted, results) = (state.events.len() as u64, state.results.len() as u64);
        let group = self.group_of(&mut state);
        let now = tokio::time::Instant::now();
        let oldest_pending_age = group
            .in_flight
            .values()
            .map(|(_, since)| now.duration_since(*since))
            .max();
        Ok(StoreStats {
            taken_at: Some(SystemTime::now()),
            emitted,
            events: emitted,
            results,
            backlog: (group.ready.len() + group.in_flight.len()) as u64,
            scheduled: group.scheduled.len() as u64,
            in_flight: group.in_flight.len() as u64,
            dead_letters: group.dead_letters.len() as u64,
            consumers: u64::from(self.as_queue),
            oldest_pending_age,
        })
    }

    async fn events(&self, query: &Query) -> Result<Page<Record<StoredEvent>>> {
        let state = self.lock();
        select(
            &state.events,
            query,
            |index, _| index as u64,
            |stamped| query.filter.matches_event(&stamped.item, Some(stamped.at)),
        )
        .map(|page| records(page, &state.events))
    }

    async fn topic_counts(&self, window: usize) -> Result<TopicCounts> {
        let state = self.lock();
        let mut counts = std::collections::HashMap::<&str, u64>::new();
        let newest = state.events.iter().rev().take(window);
        let mut scanned = 0;
        for stamped in newest {
            scanned += 1;
            *counts.entry(stamped.item.topic.as_str()).or_default() += 1;
        }
        Ok(TopicCounts::new(
            scanned,
            counts
                .into_iter()
                .map(|(topic, count)| (topic.to_owned(), count)),
        ))
    }

    async fn results(&self, query: &Query) -> Result<Page<Record<StoredResult>>> {
        let state = self.lock();
        select(
            &state.results,
            query,
            |index, _| index as u64,
            |stamped| query.filter.matches_result(&stamped.item, Some(stamped.at)),
        )
        .map(|page| records(page, &state.results))
    }

    async fn pending(&self, query: &Query) -> Result<Page<PendingDelivery>> {
        let mut state = self.lock();
        let now = tokio::time::Instant::now();
        let mut pending: Vec<(u64, PendingDelivery)> = self
            .group_of(&mut state)
            .in_flight
            .iter()
            .filter_map(|(receipt, (queued, since))| {
                let key = receipt.parse::<u64>().ok()?;
                let delivery = PendingDelivery::new(
                    receipt.clone(),
                    CONSUMER,
                    now.duration_since(*since),
                    queued.deliveries,
                )
                .event(Some(queued.event.clone()));
                Some((key, delivery))
            })
            .collect();
        pending.sort_by_key(|(key, _)| *key);
        let page = select(&pending, query, |_, (key, _)| *key, |_| true)?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|i| pending[i].1.clone())
                .collect(),
            next: page.next,
        })
    }

    async fn consumers(&self) -> Result<Vec<ConsumerInfo>> {
        if !self.as_queue {
            return Ok(Vec::new());
        }
        let pending = self.group_of(&mut self.lock()).in_flight.len() as u64;
        Ok(vec![ConsumerInfo::new(
            CONSUMER,
            pending,
            Some(Duration::ZERO),
        )])
    }

    async fn dead_letters(&self, query: &Query) -> Result<Page<DeadLetter>> {
        let mut state = self.lock();
        let letters = &self.group_of(&mut state).dead_letters;
        let page = select(
            letters,
            query,
            |_, letter| letter.id,
            |letter| letter_matches(letter, &query.filter),
        )?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|i| dead_letter(&letters[i]))
                .collect(),
            next: page.next,
        })
    }

    async fn scheduled(&self, query: &Query) -> Result<Page<ScheduledEvent>> {
        self.require_queue()?;
        let mut state = self.lock();
        let listed: Vec<(u64, &super::Queued)> = self
            .group_of(&mut state)
            .scheduled
            .iter()
            .map(|((_, seq), queued)| (*seq, queued))
            .collect();
        let page = select(
            &listed,
            query,
            |index, _| index as u64,
            |(_, queued)| query.filter.matches_event(&queued.event, None),
        )?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|i| {
                    let event = listed[i].1.event.clone();
                    let due = event
                        .due_at()
                        .ok()
                        .flatten()
                        .unwrap_or(SystemTime::UNIX_EPOCH);
                    ScheduledEvent::new(i.to_string(), due, event)
                })
                .collect(),
            next: page.next,
        })
    }

    async fn leader_leases(&self, limit: usize) -> Result<Vec<crate::LeaseInfo>> {
        Ok(self.lease_infos(limit.clamp(1, Query::MAX_LIMIT)))
    }

    async fn limit_slots(&self, limit: usize) -> Result<Vec<crate::LimitSlot>> {
        Ok(self.slot_infos(limit.clamp(1, Query::MAX_LIMIT)))
    }

    async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>> {
        Ok(self
            .group_of(&mut self.lock())
            .dead_letters
            .iter()
            .find(|letter| letter.id.to_string() == id)
            .map(dead_letter))
    }

    async fn replay_dead_letters(&self, selection: &DeadLetterSelection) -> Result<u64> {
        self.require_queue()?;
        let chosen = take_letters(&mut self.group_of(&mut self.lock()).dead_letters, selection);
        let replayed = chosen.len() as u64;
        for letter in chosen {
            self.append_for_group(letter.event);
        }
        if replayed > 0 {
            self.arrived.notify_waiters();
        }
        Ok(replayed)
    }

    async fn purge_dead_letters(&self, selection: &DeadLetterSelection) -> Result<u64> {
        Ok(take_letters(&mut self.group_of(&mut self.lock()).dead_letters, selection).len() as u64)
    }

    async fn replay(&self, event_id: &str) -> Result<()> {
        self.require_queue()?;
        let event = {
            let mut state = self.lock();
            let found = state
                .events
                .iter()
                .rev()
                .map(|stamped| &stamped.item)
                .find(|event| event_id_text(event).as_deref() == Some(event_id))
                .cloned();
            found.or_else(|| {
                self.group_of(&mut state)
                    .dead_letters
                    .iter()
                    .map(|letter| &letter.event)
                    .find(|event| event_id_text(event).as_deref() == Some(event_id))
                    .cloned()
            })
        };
        let event = event.ok_or_else(|| Error::NotFound {
            what: "event",
            id: event_id.to_owned(),
        })?;
        // Only this group gets it again, as with the durable stores.
        self.append_for_group(event);
        Ok(())
    }
}

impl MemoryStore {
    fn require_queue(&self) -> Result<()> {
        if self.as_queue {
            Ok(())
        } else {
            Err(Error::store(
                "replay and scheduled listings need a queue: this MemoryStore dispatches in process (use MemoryStore::queue())",
            ))
        }
    }
}

fn letter_matches(letter: &Letter, filter: &Filter) -> bool {
    filter.matches_event(&letter.event, Some(letter.at))
}

fn dead_letter(letter: &Letter) -> DeadLetter {
    DeadLetter::new(
        letter.id.to_string(),
        letter.event.clone(),
        letter.error.clone(),
        letter.deliveries,
    )
    .at(Some(letter.at))
}

/// Removes and returns the selected letters, oldest first.
fn take_letters(letters: &mut Vec<Letter>, selection: &DeadLetterSelection) -> Vec<Letter> {
    let chosen = |letter: &Letter| match selection {
        DeadLetterSelection::Ids(ids) => ids.iter().any(|id| *id == letter.id.to_string()),
        DeadLetterSelection::Matching(filter) => letter_matches(letter, filter),
        #[allow(unreachable_patterns)]
        _ => false,
    };
    let (taken, kept): (Vec<Letter>, Vec<Letter>) = letters.drain(..).partition(chosen);
    *letters = kept;
    taken
}

/// Turns a page of positions into records.
fn records<T: Clone>(page: Page<usize>, items: &[Stamped<T>]) -> Page<Record<T>> {
    Page {
        items: page
            .items
            .into_iter()
            .map(|index| Record {
                id: index.to_string(),
                at: Some(items[index].at),
                item: items[index].item.clone(),
            })
            .collect(),
        next: page.next,
    }
}

/// Picks a page of positions in `items` (sorted by `key`, increasing):
/// after (or, newest first, before) the cursor key, scanning at most the
/// query's budget.
pub(super) fn select<T>(
    items: &[T],
    query: &Query,
    key: impl Fn(usize, &T) -> u64,
    keep: impl Fn(&T) -> bool,
) -> Result<Page<usize>> {
    let cursor = match &query.cursor {
        None => None,
        Some(cursor) => Some(
            cursor
                .parse::<u64>()
                .map_err(|_| Error::store(format!("invalid cursor {cursor:?}")))?,
        ),
    };
    let key = &key;
    let positions: Box<dyn Iterator<Item = usize>> = if query.newest_first {
        Box::new(
            (0..items.len())
                .rev()
                .filter(move |&i| cursor.is_none_or(|c| key(i, &items[i]) < c)),
        )
    } else {
        Box::new((0..items.len()).filter(move |&i| cursor.is_none_or(|c| key(i, &items[i]) > c)))
    };
    let mut found = Vec::new();
    let mut scanned = 0;
    let mut last = None;
    let mut positions = positions.peekable();
    for i in positions.by_ref() {
        scanned += 1;
        last = Some(key(i, &items[i]));
        if keep(&items[i]) {
            found.push(i);
        }
        if found.len() >= query.limit || scanned >= query.scan_budget() {
            break;
        }
    }
    let more = positions.peek().is_some();
    Ok(Page {
        items: found,
        next: if more {
            last.map(|k| k.to_string())
        } else {
            None
        },
    })
}
