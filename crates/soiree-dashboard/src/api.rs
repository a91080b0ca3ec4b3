//! The JSON API the pages read, under `api/`.

use std::{convert::Infallible, future::Future, time::Duration};

use axum::{
    Json,
    extract::{FromRequest, FromRequestParts, Path, Query as QueryParams, Request, State},
    http::{StatusCode, request::Parts},
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use soiree::{
    ConsumerInfo, DeadLetter, Filter, PendingDelivery, Query, Record, StoreInfo, StoreStats,
    StoredEvent, StoredResult, inspect::event_id_text,
};

use crate::{
    budget::{DETAIL_BYTES, PREVIEW_BYTES, cut_text, cut_value, listing},
    sampler::{Sample, millis},
};

/// How long one store call may take before the request fails.
const STORE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default and largest page sizes.
pub(crate) const DEFAULT_LIMIT: usize = 50;
pub(crate) const MAX_LIMIT: usize = 500;
/// How often a live tail polls the store.
const TAIL_EVERY: Duration = Duration::from_millis(500);

/// An error answered as `{"error": "..."}` (and `"count"` when a
/// selection changed under the operator).
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    count: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            count: None,
        }
    }

    /// Adds the count the selection holds now.
    pub(crate) fn with_count(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message });
        if let Some(count) = self.count {
            body["count"] = count.into();
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<soiree::Error> for ApiError {
    fn from(err: soiree::Error) -> Self {
        match err {
            soiree::Error::NotFound { .. } | soiree::Error::InvalidValue { .. } => {
                let status = if matches!(err, soiree::Error::NotFound { .. }) {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::BAD_REQUEST
                };
                Self::new(status, err.to_string())
            }
            // A store's error may quote the database (its text, a query,
            // hostile input): the log gets it, the client a fixed message.
            err => {
                tracing::warn!(error = %err, "dashboard: a store call failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store call failed: the dashboard's log has the cause",
                )
            }
        }
    }
}

pub(crate) fn bad_request(why: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, why)
}

/// The query string of an API request: a malformed one is a JSON 400.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        QueryParams::<T>::from_request_parts(parts, state)
            .await
            .map(|QueryParams(value)| Self(value))
            .map_err(|rejection| bad_request(rejection.body_text()))
    }
}

/// The JSON body of an API request: a malformed one is a JSON 400.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(value)| Self(value))
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))
    }
}

pub(crate) type ApiResult<T> = Result<Json<T>, ApiError>;

/// Runs a store call, bounded in time.
pub(crate) async fn store_call<T>(
    call: impl Future<Output = soiree::Result<T>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(STORE_TIMEOUT, call).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "the store did not answer in time",
        )),
    }
}

// ---------------------------------------------------------------- records

#[derive(Debug, Serialize)]
pub(crate) struct StoreInfoDto {
    kind: String,
    location: String,
    group: Option<String>,
}

impl From<StoreInfo> for StoreInfoDto {
    fn from(info: StoreInfo) -> Self {
        Self {
            kind: info.kind,
            location: info.location,
            group: info.group,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct StatsDto {
    taken_at: Option<u64>,
    emitted: u64,
    events: u64,
    results: u64,
    backlog: u64,
    in_flight: u64,
    dead_letters: u64,
    consumers: u64,
    oldest_pending_age_ms: Option<u64>,
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl From<&StoreStats> for StatsDto {
    fn from(stats: &StoreStats) -> Self {
        Self {
            taken_at: stats.taken_at.map(millis),
            emitted: stats.emitted,
            events: stats.events,
            results: stats.results,
            backlog: stats.backlog,
            in_flight: stats.in_flight,
            dead_letters: stats.dead_letters,
            consumers: stats.consumers,
            oldest_pending_age_ms: stats.oldest_pending_age.map(duration_ms),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct RatesDto {
    emitted_per_sec: f64,
    handled_per_sec: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct EventDto {
    id: String,
    at: Option<u64>,
    topic: String,
    event_id: Option<String>,
    payload: Value,
    /// The payload's full size in bytes of JSON when `payload` holds only
    /// its first bytes (as a string).
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_bytes: Option<usize>,
    properties: Map<String, Value>,
}

impl EventDto {
    /// The event, its payload cut to `limit` bytes.
    fn new(record: Record<StoredEvent>, limit: usize) -> Self {
        let (payload, payload_bytes) = cut_value(record.item.payload.clone(), limit);
        Self {
            event_id: event_id_text(&record.item),
            id: record.id,
            at: record.at.map(millis),
            topic: record.item.topic,
            payload,
            payload_bytes,
            properties: record.item.properties,
        }
    }
}

impl From<Record<StoredEvent>> for EventDto {
    fn from(record: Record<StoredEvent>) -> Self {
        Self::new(record, PREVIEW_BYTES)
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct ResultDto {
    id: String,
    at: Option<u64>,
    topic: String,
    event_id: String,
    listener: String,
    attempt: u32,
    ok: bool,
    /// `succeeded`, `snoozed` (a [`Snooze`](soiree::Snooze): not a
    /// failure) or `failed`.
    outcome: &'static str,
    error: Option<String>,
}

impl From<Record<StoredResult>> for ResultDto {
    fn from(record: Record<StoredResult>) -> Self {
        Self {
            id: record.id,
            at: record.at.map(millis),
            ok: record.item.error.is_none(),
            outcome: record.item.outcome(),
            topic: record.item.topic,
            event_id: record.item.event_id,
            listener: record.item.handler_id,
            attempt: record.item.attempt,
            error: record.item.error,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct DeadLetterDto {
    id: String,
    at: Option<u64>,
    topic: Option<String>,
    event_id: Option<String>,
    payload: Option<Value>,
    /// Set when `payload` (or `raw`) holds only its first bytes: the full
    /// size.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_bytes: Option<usize>,
    properties: Option<Map<String, Value>>,
    raw: Option<String>,
    error: String,
    /// Set when `error` holds only its first bytes: the full size.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_bytes: Option<usize>,
    deliveries: u32,
}

impl DeadLetterDto {
    /// The dead letter, its payload, raw entry and error cut to `limit`
    /// bytes each.
    fn new(letter: DeadLetter, limit: usize) -> Self {
        let event_id = letter.event_id();
        let (topic, payload, properties) = match letter.event {
            Some(event) => (
                Some(event.topic),
                Some(event.payload),
                Some(event.properties),
            ),
            None => (None, None, None),
        };
        let (payload, payload_bytes) = match payload.map(|p| cut_value(p, limit)) {
            Some((payload, bytes)) => (Some(payload), bytes),
            None => (None, None),
        };
        let (raw, raw_bytes) = match letter.raw.map(|raw| cut_text(raw, limit)) {
            Some((raw, bytes)) => (Some(raw), bytes),
            None => (None, None),
        };
        let (error, error_bytes) = cut_text(letter.error, limit);
        Self {
            id: letter.id,
            at: letter.at.map(millis),
            topic,
            event_id,
            payload,
            payload_bytes: payload_bytes.or(raw_bytes),
            properties,
            raw,
            error,
            error_bytes,
            deliveries: letter.deliveries,
        }
    }
}

impl From<DeadLetter> for DeadLetterDto {
    fn from(letter: DeadLetter) -> Self {
        Self::new(letter, PREVIEW_BYTES)
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct PendingDto {
    id: String,
    consumer: String,
    idle_ms: u64,
    deliveries: u32,
    events: u64,
    topic: Option<String>,
    event_id: Option<String>,
    payload: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_bytes: Option<usize>,
}

impl From<PendingDelivery> for PendingDto {
    fn from(pending: PendingDelivery) -> Self {
        let event_id = pending.event.as_ref().and_then(event_id_text);
        let (topic, payload) = match pending.event {
            Some(event) => (Some(event.topic), Some(event.payload)),
            None => (None, None),
        };
        let (payload, payload_bytes) = match payload.map(|p| cut_value(p, PREVIEW_BYTES)) {
            Some((payload, bytes)) => (Some(payload), bytes),
            None => (None, None),
        };
        Self {
            id: pending.id,
            consumer: pending.consumer,
            idle_ms: duration_ms(pending.idle),
            deliveries: pending.deliveries,
            events: pending.events,
            topic,
            event_id,
            payload,
            payload_bytes,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct ConsumerDto {
    name: String,
    pending: u64,
    idle_ms: Option<u64>,
}

impl From<ConsumerInfo> for ConsumerDto {
    fn from(consumer: ConsumerInfo) -> Self {
        Self {
            name: consumer.name,
            pending: consumer.pending,
            idle_ms: consumer.idle.map(duration_ms),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct PageDto<T> {
    items: Vec<T>,
    next: Option<String>,
}

// ---------------------------------------------------------------- queries

/// The query string of a listing.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListParams {
    topic: Option<String>,
    event_id: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
    /// `newest` (the default) or `oldest`.
    order: Option<String>,
}

fn non_empty(text: Option<&String>) -> Option<String> {
    text.map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// The longest filter value or cursor taken.
const MAX_INPUT: usize = 1_024;

/// A filter value as given, trimmed: `None` when blank, 400 when it holds
/// control characters (a NUL would reach the database) or is too long.
pub(crate) fn input(what: &str, text: Option<&String>) -> Result<Option<String>, ApiError> {
    let Some(text) = non_empty(text) else {
        return Ok(None);
    };
    if text.len() > MAX_INPUT {
        return Err(bad_request(format!(
            "the {what} is longer than {MAX_INPUT} bytes"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(bad_request(format!("the {what} holds control characters")));
    }
    Ok(Some(text))
}

/// The filter of a topic pattern and an event id, blank parts left out.
///
/// # Errors
///
/// 400 for a part holding control characters or too long.
pub(crate) fn filter_of(
    topic: Option<&String>,
    event_id: Option<&String>,
) -> Result<Filter, ApiError> {
    let mut filter = Filter::default();
    if let Some(topic) = input("topic", topic)? {
        filter = filter.topic(topic);
    }
    if let Some(event_id) = input("event id", event_id)? {
        filter = filter.event_id(event_id);
    }
    Ok(filter)
}

/// A cursor of this store's shape: a record id (`42`) on SQL and memory
/// stores (`r42` also for SQL pending deliveries), a stream entry id
/// (`1700000000000-3`) on Redis. Anything else is a 400 before the store
/// sees it.
fn cursor(kind: &str, text: Option<&String>) -> Result<Option<String>, ApiError> {
    let Some(text) = non_empty(text) else {
        return Ok(None);
    };
    let number = |part: &str| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) && part.parse::<i64>().is_ok()
    };
    let record = |text: &str| number(text.strip_prefix('r').unwrap_or(text));
    let entry = |text: &str| match text.split_once('-') {
        Some((millis, sequence)) => number(millis) && number(sequence),
        None => number(text),
    };
    let well_formed = match kind {
        "memory" => number(&text),
        "sqlite" | "postgres" => record(&text),
        "redis" => entry(&text),
        _ => record(&text) || entry(&text),
    };
    if well_formed {
        Ok(Some(text))
    } else {
        Err(bad_request(
            "malformed cursor: pass back the \"next\" of a previous page",
        ))
    }
}

impl ListParams {
    fn filter(&self) -> Result<Filter, ApiError> {
        filter_of(self.topic.as_ref(), self.event_id.as_ref())
    }

    fn query(&self, kind: &str) -> Result<Query, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let mut query = match self.order.as_deref() {
            None | Some("" | "newest") => Query::newest(limit),
            Some("oldest") => Query::oldest(limit),
            Some(other) => return Err(bad_request(format!("unknown order {other:?}"))),
        }
        .filter(self.filter()?);
        if let Some(cursor) = cursor(kind, self.cursor.as_ref())? {
            query = query.after(cursor);
        }
        Ok(query)
    }
}

// ---------------------------------------------------------------- handlers

#[derive(Debug, Serialize)]
pub(crate) struct StatsResponse {
    store: StoreInfoDto,
    stats: StatsDto,
    rates: Option<RatesDto>,
    history: Vec<Sample>,
    sample_every_ms: u64,
    sample_error: Option<String>,
}

pub(crate) async fn stats(State(state): State<crate::State>) -> ApiResult<StatsResponse> {
    let stats = store_call(state.store.stats()).await?;
    let (history, last, sample_error) = state.sampler.snapshot();
    let rates = last
        .as_ref()
        .and_then(|before| stats.rates_since(before))
        .map(|r| (r.emitted_per_sec, r.handled_per_sec))
        .or_else(|| {
            history
                .last()
                .and_then(|s| Some((s.emitted_per_sec?, s.handled_per_sec?)))
        })
        .map(|(emitted_per_sec, handled_per_sec)| RatesDto {
            emitted_per_sec,
            handled_per_sec,
        });
    Ok(Json(StatsResponse {
        store: state.store.info().into(),
        stats: (&stats).into(),
        rates,
        history,
        sample_every_ms: duration_ms(state.options.sample_every),
        sample_error,
    }))
}

pub(crate) async fn events(
    State(state): State<crate::State>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<PageDto<EventDto>> {
    let query = params.query(&state.store.info().kind)?;
    let (items, next) = listing(
        query,
        |query| {
            let store = state.store.clone();
            async move { store.events(&query).await }
        },
        |record| record.id.clone(),
        EventDto::from,
    )
    .await?;
    Ok(Json(PageDto { items, next }))
}

#[derive(Debug, Serialize)]
pub(crate) struct EventDetailDto {
    event: EventDto,
    results: Vec<ResultDto>,
    dead_letters: Vec<DeadLetterDto>,
}

/// The query string of an event's view.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DetailParams {
    /// The whole payload, not its first [`DETAIL_BYTES`].
    #[serde(default)]
    full: bool,
}

pub(crate) async fn event(
    State(state): State<crate::State>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DetailParams>,
) -> ApiResult<EventDetailDto> {
    let limit = if params.full {
        usize::MAX
    } else {
        DETAIL_BYTES
    };
    match store_call(state.store.event(&id)).await? {
        Some(detail) => Ok(Json(EventDetailDto {
            event: EventDto::new(detail.event, limit),
            results: detail.results.into_iter().map(ResultDto::from).collect(),
            dead_letters: detail
                .dead_letters
                .into_iter()
                .map(|letter| DeadLetterDto::new(letter, DETAIL_BYTES))
                .collect(),
        })),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no event with id {id:?}"),
        )),
    }
}

pub(crate) async fn dead_letters(
    State(state): State<crate::State>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<PageDto<DeadLetterDto>> {
    let query = params.query(&state.store.info().kind)?;
    let (items, next) = listing(
        query,
        |query| {
            let store = state.store.clone();
            async move { store.dead_letters(&query).await }
        },
        |record| record.id.clone(),
        DeadLetterDto::from,
    )
    .await?;
    Ok(Json(PageDto { items, next }))
}

pub(crate) async fn dead_letter(
    State(state): State<crate::State>,
    Path(id): Path<String>,
) -> ApiResult<DeadLetterDto> {
    match store_call(state.store.dead_letter(&id)).await? {
        Some(letter) => Ok(Json(DeadLetterDto::new(letter, DETAIL_BYTES))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no dead letter with id {id:?}"),
        )),
    }
}

pub(crate) async fn pending(
    State(state): State<crate::State>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<PageDto<PendingDto>> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let mut query = Query::oldest(limit);
    if let Some(cursor) = cursor(&state.store.info().kind, params.cursor.as_ref())? {
        query = query.after(cursor);
    }
    let page = store_call(state.store.pending(&query)).await?;
    Ok(Json(PageDto {
        items: page.items.into_iter().map(PendingDto::from).collect(),
        next: page.next,
    }))
}

pub(crate) async fn consumers(State(state): State<crate::State>) -> ApiResult<Vec<ConsumerDto>> {
    let consumers = store_call(state.store.consumers()).await?;
    Ok(Json(consumers.into_iter().map(ConsumerDto::from).collect()))
}

#[derive(Debug, Deserialize)]
pub(crate) struct TopicParams {
    window: Option<usize>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TopicCount {
    topic: String,
    count: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct TopicsResponse {
    window: usize,
    scanned: u64,
    topics: Vec<TopicCount>,
}

/// Per-topic counts over the newest `window` events, counted by the store.
pub(crate) async fn topics(
    State(state): State<crate::State>,
    ApiQuery(params): ApiQuery<TopicParams>,
) -> ApiResult<TopicsResponse> {
    let window = params
        .window
        .unwrap_or(state.options.topic_window)
        .clamp(1, 100_000);
    let counts = store_call(state.store.topic_counts(window)).await?;
    Ok(Json(TopicsResponse {
        window,
        scanned: counts.scanned,
        topics: counts
            .topics
            .into_iter()
            .map(|(topic, count)| TopicCount { topic, count })
            .collect(),
    }))
}

/// New events as Server-Sent Events (`event`, and `error` for a read that
/// failed; polling goes on).
pub(crate) async fn tail(
    State(state): State<crate::State>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    let Ok(permit) = state.tails.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many live tails open",
        ));
    };
    let filter = params.filter()?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<SseEvent, Infallible>>(64);
    let store = state.store.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let mut records = store.tail(filter, TAIL_EVERY);
        loop {
            let next = tokio::select! {
                () = tx.closed() => break,
                next = records.next() => next,
            };
            let Some(next) = next else { break };
            let event = match next {
                Ok(record) => SseEvent::default()
                    .event("event")
                    .json_data(EventDto::from(record)),
                Err(err) => {
                    tracing::warn!(error = %err, "dashboard: a live tail's read failed");
                    SseEvent::default().event("error").json_data(
                        serde_json::json!({ "error": "reading new events failed: the dashboard's log has the cause" }),
                    )
                }
            };
            let Ok(event) = event else { continue };
            if tx.send(Ok(event)).await.is_err() {
                break;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
