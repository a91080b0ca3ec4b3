//! Replay and purge: the actions that change the store, and the checks
//! that make them act on what the operator saw.
//!
//! A page shows a filter and how many dead letters it selects; the
//! operator confirms that number. The request carries both: the filter
//! the listing was drawn with (not what is typed in the box) and the count
//! shown (`expected`). The server counts again and refuses with 409 when
//! the count changed, and refuses a blank filter (every dead letter)
//! unless `"all": true` says so, as the CLI's `--all` does.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use soiree::{DeadLetterSelection, Filter, Query};

use crate::api::{ApiError, ApiJson, ApiQuery, ApiResult, bad_request, filter_of, store_call};

/// At most this many dead letters are counted for a confirmation; past it
/// the count says "at least".
pub(crate) const COUNT_LIMIT: u64 = 100_000;
/// Dead letters read per page while counting: a page holds their payloads.
const COUNT_PAGE: usize = 100;

/// A filter in a request body or a query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterBody {
    topic: Option<String>,
    event_id: Option<String>,
}

impl FilterBody {
    fn filter(&self) -> Result<Filter, ApiError> {
        filter_of(self.topic.as_ref(), self.event_id.as_ref())
    }
}

/// What to replay or purge: exactly one of `event_id`, `ids`, `filter`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelectionBody {
    /// Replay: this stored event.
    event_id: Option<String>,
    /// These dead letters.
    ids: Option<Vec<String>>,
    /// Every dead letter this filter selects.
    filter: Option<FilterBody>,
    /// How many dead letters the operator confirmed: refused with 409 when
    /// the selection holds another number now.
    expected: Option<u64>,
    /// Acknowledges that a blank filter selects every dead letter.
    #[serde(default)]
    all: bool,
}

const ONE_OF: &str = "give exactly one of \"event_id\", \"ids\" or \"filter\"";

impl SelectionBody {
    fn selection(&self) -> Result<DeadLetterSelection, ApiError> {
        match (&self.ids, &self.filter) {
            (Some(ids), None) if !ids.is_empty() => {
                if self.expected.is_some_and(|n| n != ids.len() as u64) {
                    return Err(bad_request("\"expected\" is not the number of \"ids\""));
                }
                Ok(DeadLetterSelection::Ids(ids.clone()))
            }
            (Some(_), None) => Err(bad_request("no dead letter ids given")),
            (None, Some(filter)) => {
                let filter = filter.filter()?;
                if filter.is_empty() && !self.all {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "the filter is blank, which selects every dead letter: send \"all\": true to mean all of them",
                    ));
                }
                Ok(DeadLetterSelection::Matching(filter))
            }
            (None, None) if self.all => Ok(DeadLetterSelection::Matching(Filter::default())),
            _ => Err(bad_request(ONE_OF)),
        }
    }

    /// The selection, refused when the operator confirmed another count.
    async fn checked(&self, state: &crate::State) -> Result<DeadLetterSelection, ApiError> {
        let selection = self.selection()?;
        if let (DeadLetterSelection::Matching(filter), Some(expected)) = (&selection, self.expected)
        {
            let now = count_matching(state, filter).await?;
            if now.count != expected {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "the selection changed: {} dead letters match now, {expected} were confirmed; look again and confirm the new count",
                        now.count
                    ),
                )
                .with_count(now.count));
            }
        }
        Ok(selection)
    }
}

/// How many dead letters a filter selects.
#[derive(Debug, Serialize)]
pub(crate) struct Count {
    count: u64,
    /// Whether every one was counted (else there are more than
    /// [`COUNT_LIMIT`]).
    complete: bool,
}

async fn count_matching(state: &crate::State, filter: &Filter) -> Result<Count, ApiError> {
    let mut query = Query::oldest(COUNT_PAGE).filter(filter.clone());
    let mut count = 0;
    loop {
        let page = store_call(state.store.dead_letters(&query)).await?;
        count += page.items.len() as u64;
        match page.next {
            Some(next) if count < COUNT_LIMIT => query.cursor = Some(next),
            Some(_) => {
                return Ok(Count {
                    count: COUNT_LIMIT,
                    complete: false,
                });
            }
            None => {
                return Ok(Count {
                    count,
                    complete: true,
                });
            }
        }
    }
}

/// `GET api/dead-letter-count?topic=&event_id=`: what a confirmation shows.
pub(crate) async fn count(
    State(state): State<crate::State>,
    ApiQuery(filter): ApiQuery<FilterBody>,
) -> ApiResult<Count> {
    Ok(Json(count_matching(&state, &filter.filter()?).await?))
}

#[derive(Debug, Serialize)]
pub(crate) struct Changed {
    replayed: Option<u64>,
    purged: Option<u64>,
}

pub(crate) async fn replay(
    State(state): State<crate::State>,
    ApiJson(body): ApiJson<SelectionBody>,
) -> ApiResult<Changed> {
    let replayed = match &body.event_id {
        Some(event_id) if body.ids.is_none() && body.filter.is_none() => {
            store_call(state.store.replay(event_id)).await?;
            1
        }
        Some(_) => return Err(bad_request(ONE_OF)),
        None => {
            let selection = body.checked(&state).await?;
            store_call(state.store.replay_dead_letters(&selection)).await?
        }
    };
    tracing::info!(replayed, "dashboard: replayed");
    Ok(Json(Changed {
        replayed: Some(replayed),
        purged: None,
    }))
}

pub(crate) async fn purge(
    State(state): State<crate::State>,
    ApiJson(body): ApiJson<SelectionBody>,
) -> ApiResult<Changed> {
    if body.event_id.is_some() {
        return Err(bad_request(
            "purge takes \"ids\" or \"filter\" (dead letters), not \"event_id\"",
        ));
    }
    let selection = body.checked(&state).await?;
    let purged = store_call(state.store.purge_dead_letters(&selection)).await?;
    tracing::info!(purged, "dashboard: purged dead letters");
    Ok(Json(Changed {
        replayed: None,
        purged: Some(purged),
    }))
}
