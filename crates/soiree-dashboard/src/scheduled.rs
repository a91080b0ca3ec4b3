//! `api/scheduled`: the delayed events a store holds until they are due
//! ([`Inspect::scheduled`](soiree::Inspect::scheduled)), soonest first;
//! `api/leases` and `api/limit-slots`: who leads each periodic schedule
//! ([`Inspect::leader_leases`](soiree::Inspect::leader_leases)) and which
//! listener limit slots are taken
//! ([`Inspect::limit_slots`](soiree::Inspect::limit_slots)), drawn on the
//! same page.

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use soiree::inspect::{LeaseInfo, LimitSlot};
use soiree::{Query, ScheduledEvent};

use crate::api::{ApiQuery, ApiResult, DEFAULT_LIMIT, MAX_LIMIT, filter_of, input, store_call};
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

/// The query string of the lease and slot views.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ViewParams {
    limit: Option<usize>,
}

/// A leader lease.
#[derive(Debug, Serialize)]
pub(crate) struct LeaseDto {
    name: String,
    holder: String,
    token: u64,
    /// Whether the grant was unexpired when read.
    held: bool,
    /// When the grant expires (or expired), in ms since the epoch.
    expires_at: u64,
    /// The recorded progress (a periodic schedule's last tick, Unix ms).
    progress: Option<i64>,
}

impl From<LeaseInfo> for LeaseDto {
    fn from(lease: LeaseInfo) -> Self {
        Self {
            name: lease.name,
            holder: lease.holder,
            token: lease.token,
            held: lease.held,
            expires_at: millis(lease.expires_at),
            progress: lease.progress,
        }
    }
}

/// A limit slot in use.
#[derive(Debug, Serialize)]
pub(crate) struct SlotDto {
    key: String,
    holder: String,
    /// When it expires unless renewed, in ms since the epoch.
    expires_at: u64,
}

impl From<LimitSlot> for SlotDto {
    fn from(slot: LimitSlot) -> Self {
        Self {
            key: slot.key,
            holder: slot.holder,
            expires_at: millis(slot.expires_at),
        }
    }
}

/// A view's rows; `supported` is false for a store without them (the
/// rows are then empty).
#[derive(Debug, Serialize)]
pub(crate) struct ViewDto<T> {
    items: Vec<T>,
    supported: bool,
}

/// The rows of a view, `supported: false` when the store answers
/// [`Unsupported`](soiree::Error::Unsupported).
async fn view<I, T: From<I>>(
    call: impl std::future::Future<Output = soiree::Result<Vec<I>>>,
) -> ApiResult<ViewDto<T>> {
    let supported = async {
        match call.await {
            Err(soiree::Error::Unsupported(_)) => Ok(None),
            other => other.map(Some),
        }
    };
    Ok(Json(match store_call(supported).await? {
        Some(items) => ViewDto {
            items: items.into_iter().map(T::from).collect(),
            supported: true,
        },
        None => ViewDto {
            items: Vec::new(),
            supported: false,
        },
    }))
}

pub(crate) async fn leases(
    State(state): State<crate::State>,
    ApiQuery(params): ApiQuery<ViewParams>,
) -> ApiResult<ViewDto<LeaseDto>> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    view(state.store.leader_leases(limit)).await
}

pub(crate) async fn limit_slots(
    State(state): State<crate::State>,
    ApiQuery(params): ApiQuery<ViewParams>,
) -> ApiResult<ViewDto<SlotDto>> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    view(state.store.limit_slots(limit)).await
}
