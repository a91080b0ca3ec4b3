//! The JSON API the pages read, under `api/`.

use std::{collections::HashMap, convert::Infallible, future::Future, time::Duration};

use axum::{
    Json,
    extract::{Path, Query as QueryParams, State},
    http::StatusCode,
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use soiree::{
    ConsumerInfo, DeadLetter, DeadLetterSelection, EventDetail, Filter, PendingDelivery, Query,
    Record, StoreInfo, StoreStats, StoredEvent, StoredResult, inspect::event_id_text,
};

use crate::sampler::{Sample, millis};

/// How long one store call may take before the request fails.
const STORE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default and largest page sizes.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;
/// How often a live tail polls the store.
const TAIL_EVERY: Duration = Duration::from_millis(500);

/// An error answered as `{"error": "..."}`.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<soiree::Error> for ApiError {
    fn from(err: soiree::Error) -> Self {
        let status = match err {
            soiree::Error::NotFound { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, err.to_string())
    }
}

fn bad_request(why: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, why.into())
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Runs a store call, bounded in time.
async fn store_call<T>(call: impl Future<Output = soiree::Result<T>>) -> Result<T, ApiError> {
    match tokio::time::timeout(STORE_TIMEOUT, call).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError(
            StatusCode::GATEWAY_TIMEOUT,
            "the store did not answer in time".into(),
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
    properties: Map<String, Value>,
}

impl From<Record<StoredEvent>> for EventDto {
    fn from(record: Record<StoredEvent>) -> Self {
        Self {
            event_id: event_id_text(&record.item),
            id: record.id,
            at: record.at.map(millis),
            topic: record.item.topic,
            payload: record.item.payload,
            properties: record.item.properties,
        }
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
    error: Option<String>,
}

impl From<Record<StoredResult>> for ResultDto {
    fn from(record: Record<StoredResult>) -> Self {
        Self {
            id: record.id,
            at: record.at.map(millis),
            ok: record.item.error.is_none(),
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
    properties: Option<Map<String, Value>>,
    raw: Option<String>,
    error: String,
    deliveries: u32,
}

impl From<DeadLetter> for DeadLetterDto {
    fn from(letter: DeadLetter) -> Self {
        let event_id = letter.event_id();
        let (topic, payload, properties) = match letter.event {
            Some(event) => (
                Some(event.topic),
                Some(event.payload),
                Some(event.properties),
            ),
            None => (None, None, None),
        };
        Self {
            id: letter.id,
            at: letter.at.map(millis),
            topic,
            event_id,
            payload,
            properties,
            raw: letter.raw,
            error: letter.error,
            deliveries: letter.deliveries,
        }
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
}

impl From<PendingDelivery> for PendingDto {
    fn from(pending: PendingDelivery) -> Self {
        let event_id = pending.event.as_ref().and_then(event_id_text);
        let (topic, payload) = match pending.event {
            Some(event) => (Some(event.topic), Some(event.payload)),
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

impl ListParams {
    fn filter(&self) -> Filter {
        let mut filter = Filter::default();
        if let Some(topic) = non_empty(self.topic.as_ref()) {
            filter = filter.topic(topic);
        }
        if let Some(event_id) = non_empty(self.event_id.as_ref()) {
            filter = filter.event_id(event_id);
        }
        filter
    }

    fn query(&self) -> Result<Query, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let mut query = match self.order.as_deref() {
            None | Some("" | "newest") => Query::newest(limit),
            Some("oldest") => Query::oldest(limit),
            Some(other) => return Err(bad_request(format!("unknown order {other:?}"))),
        }
        .filter(self.filter());
        if let Some(cursor) = non_empty(self.cursor.as_ref()) {
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
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<PageDto<EventDto>> {
    let page = store_call(state.store.events(&params.query()?)).await?;
    Ok(Json(PageDto {
        items: page.items.into_iter().map(EventDto::from).collect(),
        next: page.next,
    }))
}

#[derive(Debug, Serialize)]
pub(crate) struct EventDetailDto {
    event: EventDto,
    results: Vec<ResultDto>,
    dead_letters: Vec<DeadLetterDto>,
}

impl From<EventDetail> for EventDetailDto {
    fn from(detail: EventDetail) -> Self {
        Self {
            event: detail.event.into(),
            results: detail.results.into_iter().map(ResultDto::from).collect(),
            dead_letters: detail
                .dead_letters
                .into_iter()
                .map(DeadLetterDto::from)
                .collect(),
        }
    }
}

pub(crate) async fn event(
    State(state): State<crate::State>,
    Path(id): Path<String>,
) -> ApiResult<EventDetailDto> {
    match store_call(state.store.event(&id)).await? {
        Some(detail) => Ok(Json(detail.into())),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no event with id {id:?}"),
        )),
    }
}

pub(crate) async fn dead_letters(
    State(state): State<crate::State>,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<PageDto<DeadLetterDto>> {
    let page = store_call(state.store.dead_letters(&params.query()?)).await?;
    Ok(Json(PageDto {
        items: page.items.into_iter().map(DeadLetterDto::from).collect(),
        next: page.next,
    }))
}

pub(crate) async fn dead_letter(
    State(state): State<crate::State>,
    Path(id): Path<String>,
) -> ApiResult<DeadLetterDto> {
    match store_call(state.store.dead_letter(&id)).await? {
        Some(letter) => Ok(Json(letter.into())),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no dead letter with id {id:?}"),
        )),
    }
}

/// A filter in a request body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterBody {
    topic: Option<String>,
    event_id: Option<String>,
}

impl FilterBody {
    fn filter(&self) -> Filter {
        ListParams {
            topic: self.topic.clone(),
            event_id: self.event_id.clone(),
            ..ListParams::default()
        }
        .filter()
    }
}

/// What to replay or purge: exactly one of the fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelectionBody {
    /// Replay: this stored event.
    event_id: Option<String>,
    /// These dead letters.
    ids: Option<Vec<String>>,
    /// Every dead letter this filter selects (`{}`: all of them).
    filter: Option<FilterBody>,
}

impl SelectionBody {
    fn selection(&self) -> Result<DeadLetterSelection, ApiError> {
        match (&self.ids, &self.filter) {
            (Some(ids), None) if !ids.is_empty() => Ok(DeadLetterSelection::Ids(ids.clone())),
            (Some(_), None) => Err(bad_request("no dead letter ids given")),
            (None, Some(filter)) => Ok(DeadLetterSelection::Matching(filter.filter())),
            _ => Err(bad_request(
                "give exactly one of \"event_id\", \"ids\" or \"filter\"",
            )),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Changed {
    replayed: Option<u64>,
    purged: Option<u64>,
}

pub(crate) async fn replay(
    State(state): State<crate::State>,
    Json(body): Json<SelectionBody>,
) -> ApiResult<Changed> {
    let replayed = match &body.event_id {
        Some(event_id) if body.ids.is_none() && body.filter.is_none() => {
            store_call(state.store.replay(event_id)).await?;
            1
        }
        Some(_) => {
            return Err(bad_request(
                "give exactly one of \"event_id\", \"ids\" or \"filter\"",
            ));
        }
        None => store_call(state.store.replay_dead_letters(&body.selection()?)).await?,
    };
    tracing::info!(replayed, "dashboard: replayed");
    Ok(Json(Changed {
        replayed: Some(replayed),
        purged: None,
    }))
}

pub(crate) async fn purge(
    State(state): State<crate::State>,
    Json(body): Json<SelectionBody>,
) -> ApiResult<Changed> {
    if body.event_id.is_some() {
        return Err(bad_request(
            "purge takes \"ids\" or \"filter\" (dead letters), not \"event_id\"",
        ));
    }
    let purged = store_call(state.store.purge_dead_letters(&body.selection()?)).await?;
    tracing::info!(purged, "dashboard: purged dead letters");
    Ok(Json(Changed {
        replayed: None,
        purged: Some(purged),
    }))
}

pub(crate) async fn pending(
    State(state): State<crate::State>,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<PageDto<PendingDto>> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let mut query = Query::oldest(limit);
    if let Some(cursor) = non_empty(params.cursor.as_ref()) {
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
    scanned: usize,
    topics: Vec<TopicCount>,
}

/// Per-topic counts over the newest `window` events.
pub(crate) async fn topics(
    State(state): State<crate::State>,
    QueryParams(params): QueryParams<TopicParams>,
) -> ApiResult<TopicsResponse> {
    let window = params
        .window
        .unwrap_or(state.options.topic_window)
        .clamp(1, 100_000);
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut query = Query::newest(window.min(1_000));
    let mut scanned = 0;
    while scanned < window {
        query.limit = (window - scanned).min(1_000);
        let page = store_call(state.store.events(&query)).await?;
        scanned += page.items.len();
        for record in page.items {
            *counts.entry(record.item.topic).or_default() += 1;
        }
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    let mut topics: Vec<TopicCount> = counts
        .into_iter()
        .map(|(topic, count)| TopicCount { topic, count })
        .collect();
    topics.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.topic.cmp(&b.topic)));
    Ok(Json(TopicsResponse {
        window,
        scanned,
        topics,
    }))
}

/// New events as Server-Sent Events (`event`, and `error` for a read that
/// failed; polling goes on).
pub(crate) async fn tail(
    State(state): State<crate::State>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Response, ApiError> {
    let Ok(permit) = state.tails.clone().try_acquire_owned() else {
        return Err(ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "too many live tails open".into(),
        ));
    };
    let filter = params.filter();
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
                Err(err) => SseEvent::default()
                    .event("error")
                    .json_data(serde_json::json!({ "error": err.to_string() })),
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
