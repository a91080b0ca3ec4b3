//! A live tail built on paged reads: start at the newest event, then poll
//! for what follows.

use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};

use super::{Filter, Inspect, Query, Record};
use crate::{Result, StoredEvent};

/// The shortest polling interval.
const MIN_EVERY: Duration = Duration::from_millis(10);

/// Where a tail is.
enum State {
    /// Not yet positioned at the newest event.
    Start,
    /// After this record id (`None`: the store was empty at the start).
    After(Option<String>),
}

pub(super) fn tail<S: Inspect + ?Sized>(
    store: &S,
    filter: Filter,
    every: Duration,
) -> BoxStream<'_, Result<Record<StoredEvent>>> {
    let every = every.max(MIN_EVERY);
    stream::unfold(State::Start, move |state| {
        let filter = filter.clone();
        async move {
            let (items, next): (Vec<Result<Record<StoredEvent>>>, State) = match state {
                State::Start => match store.events(&Query::newest(1)).await {
                    Ok(page) => (
                        Vec::new(),
                        State::After(page.items.into_iter().next().map(|record| record.id)),
                    ),
                    Err(err) => {
                        tokio::time::sleep(every).await;
                        (vec![Err(err)], State::Start)
                    }
                },
                State::After(cursor) => {
                    let mut query = Query::oldest(1_000).filter(filter);
                    query.cursor = cursor.clone();
                    match store.events(&query).await {
                        Ok(page) => {
                            let at = page
                                .next
                                .clone()
                                .or_else(|| page.items.last().map(|record| record.id.clone()));
                            if page.next.is_none() {
                                tokio::time::sleep(every).await;
                            }
                            let cursor = at.or(cursor);
                            (
                                page.items.into_iter().map(Ok).collect(),
                                State::After(cursor),
                            )
                        }
                        Err(err) => {
                            tokio::time::sleep(every).await;
                            (vec![Err(err)], State::After(cursor))
                        }
                    }
                }
            };
            Some((stream::iter(items), next))
        }
    })
    .flatten()
    .boxed()
}
