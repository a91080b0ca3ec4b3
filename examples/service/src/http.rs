//! The routes: `POST /orders`, `GET /orders/{id}`, `GET /metrics`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use soiree::MetricsRegistry;

use crate::db::Db;

/// The content type of the OpenMetrics text that
/// [`MetricsRegistry::encode`] writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The longest item name accepted, in bytes: checked before anything is
/// written.
pub const MAX_ITEM_LEN: usize = 200;

/// What the routes share.
#[derive(Debug, Clone)]
pub struct Shop {
    /// The tables and the event log.
    pub db: Db,
    /// The bus's and the store's metrics.
    pub registry: MetricsRegistry,
}

/// The body of `POST /orders`.
#[derive(Debug, serde::Deserialize)]
pub struct NewOrder {
    /// What to order (1 to [`MAX_ITEM_LEN`] bytes).
    pub item: String,
    /// How many (1 to 1,000; default 1).
    #[serde(default = "one")]
    pub quantity: i64,
}

fn one() -> i64 {
    1
}

/// The service's routes.
pub fn router(shop: Shop) -> Router {
    Router::new()
        .route("/orders", post(place_order))
        .route("/orders/{id}", get(order))
        .route("/metrics", get(metrics))
        .with_state(shop)
}

/// Writes the order and its `order.placed` event in one transaction;
/// answers `201 {"id": …}` once both are committed.
async fn place_order(State(shop): State<Shop>, Json(order): Json<NewOrder>) -> Response {
    if order.item.is_empty() || order.item.len() > MAX_ITEM_LEN {
        let reason = format!("item must have 1 to {MAX_ITEM_LEN} bytes\n");
        return (StatusCode::UNPROCESSABLE_ENTITY, reason).into_response();
    }
    if !(1..=1000).contains(&order.quantity) {
        let reason = "quantity must be 1 to 1000\n";
        return (StatusCode::UNPROCESSABLE_ENTITY, reason).into_response();
    }
    match shop.db.place_order(&order.item, order.quantity).await {
        Ok(id) => (StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot place an order");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot place the order\n",
            )
                .into_response()
        }
    }
}

/// The order, its status and its receipt once the listener wrote it.
async fn order(State(shop): State<Shop>, Path(id): Path<String>) -> Response {
    match shop.db.order(&id).await {
        Ok(Some(order)) => Json(order).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such order\n").into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot read an order");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the order\n").into_response()
        }
    }
}

/// The Prometheus (OpenMetrics) text of the bus's and the store's metrics.
async fn metrics(State(shop): State<Shop>) -> impl IntoResponse {
    ([(CONTENT_TYPE, OPENMETRICS)], shop.registry.encode())
}
