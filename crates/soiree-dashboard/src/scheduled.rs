//! `api/scheduled`: the delayed events a store holds until they are due
//! ([`Inspect::scheduled`](soiree::Inspect::scheduled)), soonest first.

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use soiree::{Query, ScheduledEvent};

use crate::api::{ApiQuery, ApiResult, DEFAULT_LIMIT, MAX_LIMIT, filter_of, input};
use crate::budget::{PREVIEW_BYTES, cut_value, listing};
use crate::sampler::millis;

/// The query string of the scheduled listing.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ScheduledParams {
    topic: Option<String>,
    event_id: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// A delayed event, its payload cut to [`PREVIEW_BYTES`].
#[derive(Debug, Serialize)]
pub(crate) struct ScheduledDto {
    id: String,
    /// When it is due, in ms since the epoch.
    due_at: u64,
    topic: String,
    event_id: Option<String>,
    payload: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_bytes: Option<usize>,
    properties: Map<String, Value>,
}

impl From<ScheduledEvent> for ScheduledDto {
    fn from(scheduled: ScheduledEvent) -> Self {
        let event_id = scheduled.event_id();
        let (payload, payload_bytes) = cut_value(scheduled.event.payload, PREVIEW_BYTES);
        Self {
            id: scheduled.id,
            due_at: millis(scheduled.due_at),
            topic: scheduled.event.topic,
            event_id,
            payload,
            payload_bytes,
            properties: scheduled.event.properties,
        }
    }
}

/// A page of delayed events; `supported` is false for a store that does
/// not schedule (the page is then empty).
#[derive(Debug, Serialize)]
pub(crate) struct ScheduledPage {
    items: Vec<ScheduledDto>,
    next: Option<String>,
    supported: bool,
}

pub(crate) async fn scheduled(
    State(state): State<crate::State>,
    ApiQuery(params): ApiQuery<ScheduledParams>,
) -> ApiResult<ScheduledPage> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let mut query =
        Query::oldest(limit).filter(filter_of(params.topic.as_ref(), params.event_id.as_ref())?);
    // The stores' scheduled ids differ in shape (Redis: `due.member`):
    // checked as any input, not as a record id.
    if let Some(cursor) = input("cursor", params.cursor.as_ref())? {
        query = query.after(cursor);
    }
    let unsupported = std::sync::atomic::AtomicBool::new(false);
    let (items, next) = listing(
        query,
        |query| {
            let store = state.store.clone();
            let unsupported = &unsupported;
            async move {
                match store.scheduled(&query).await {
                    Err(soiree::Error::Unsupported(_)) => {
                        unsupported.store(true, std::sync::atomic::Ordering::Relaxed);
                        Ok(soiree::Page {
                            items: Vec::new(),
                            next: None,
                        })
                    }
                    other => other,
                }
            }
        },
        |scheduled| scheduled.id.clone(),
        ScheduledDto::from,
    )
    .await?;
    Ok(Json(ScheduledPage {
        items,
        next,
        supported: !unsupported.load(std::sync::atomic::Ordering::Relaxed),
    }))
}
