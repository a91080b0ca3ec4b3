//! The shop's tables, on SQLite or PostgreSQL: the same SQL on both.

use soiree::{BoxError, EventStore, MetricsRegistry};
use soiree_sql::{PostgresStore, SqliteStore, sqlx};

/// The shop's tables. Orders get a ULID as their id, so the statements
/// below run unchanged on both databases.
const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS orders (
        id TEXT PRIMARY KEY,
        item TEXT NOT NULL,
        quantity BIGINT NOT NULL,
        status TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS receipts (
        order_id TEXT PRIMARY KEY REFERENCES orders (id),
        text TEXT NOT NULL
    )",
];

/// An order as `GET /orders/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Order {
    /// The order's id (a ULID).
    pub id: String,
    /// What was ordered.
    pub item: String,
    /// How many.
    pub quantity: i64,
    /// `placed`, then `confirmed` once the receipt listener ran.
    pub status: String,
    /// The receipt, once written.
    pub receipt: Option<String>,
}

/// The event `POST /orders` emits: topic `order.placed`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OrderPlaced {
    /// The order's id.
    pub id: String,
    /// What was ordered.
    pub item: String,
    /// How many.
    pub quantity: i64,
}

/// The store the service runs on: a SQLite file (the default) or a
/// PostgreSQL database.
#[derive(Debug, Clone)]
pub enum Db {
    /// A SQLite file, no server.
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    Postgres(PostgresStore),
}

/// Runs the same block on whichever store `db` holds: the code of each
/// arm is identical, only its types differ.
macro_rules! on_store {
    ($db:expr, $store:ident => $body:expr) => {
        match $db {
            Db::Sqlite($store) => $body,
            Db::Postgres($store) => $body,
        }
    };
}

impl Db {
    /// Opens the store named by `url` (`sqlite://PATH`, `postgres://…`),
    /// its metrics in `registry`, and creates the shop's tables.
    ///
    /// # Errors
    ///
    /// When the URL is neither, or the database cannot be opened or
    /// written.
    pub async fn open(url: &str, registry: &MetricsRegistry) -> Result<Self, BoxError> {
        let db = if let Some(path) = url.strip_prefix("sqlite://") {
            let store = SqliteStore::builder(path)
                .group("shop")
                .metrics_registry(registry.clone())
                .build()
                .await?;
            Self::Sqlite(store)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let store = PostgresStore::builder(url)
                .group("shop")
                .metrics_registry(registry.clone())
                .build()
                .await?;
            Self::Postgres(store)
        } else {
            // The scheme only: the rest of a URL may hold a password.
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(format!(
                "unsupported database URL scheme {scheme:?}: use sqlite://PATH or postgres://…"
            )
            .into());
        };
        for statement in SCHEMA {
            on_store!(&db, store => {
                sqlx::query(statement).execute(store.pool()).await?;
            });
        }
        Ok(db)
    }

    /// The store, for the bus.
    pub fn event_store(&self) -> std::sync::Arc<dyn EventStore> {
        on_store!(self, store => std::sync::Arc::new(store.clone()))
    }

    /// Writes the order and its `order.placed` event in one transaction:
    /// both or neither.
    ///
    /// # Errors
    ///
    /// When the database refuses the write (nothing is written).
    pub async fn place_order(&self, item: &str, quantity: i64) -> Result<String, BoxError> {
        let id = ulid::Ulid::generate().to_string();
        let event = OrderPlaced {
            id: id.clone(),
            item: item.to_owned(),
            quantity,
        };
        let event = serde_json::to_value(event)?;
        on_store!(self, store => {
            let mut tx = store.begin().await?;
            sqlx::query("INSERT INTO orders (id, item, quantity, status) VALUES ($1, $2, $3, 'placed')")
                .bind(&id)
                .bind(item)
                .bind(quantity)
                .execute(&mut *tx)
                .await?;
            store.emit_in(&mut tx, "order.placed", event).await?;
            store.commit(tx).await?;
        });
        Ok(id)
    }

    /// Writes the receipt of an order and marks it confirmed; running it
    /// again for the same order changes nothing (delivery is at least
    /// once).
    ///
    /// # Errors
    ///
    /// When the database refuses the write (nothing is written).
    pub async fn confirm(&self, order: &OrderPlaced) -> Result<(), BoxError> {
        let text = format!("{} x {}, order {}", order.quantity, order.item, order.id);
        on_store!(self, store => {
            let mut tx = store.pool().begin().await?;
            sqlx::query("INSERT INTO receipts (order_id, text) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING")
                .bind(&order.id)
                .bind(&text)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE orders SET status = 'confirmed' WHERE id = $1")
                .bind(&order.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The order with this id, and its receipt once written.
    ///
    /// # Errors
    ///
    /// When the read fails.
    pub async fn order(&self, id: &str) -> Result<Option<Order>, BoxError> {
        const SELECT: &str = "SELECT o.id, o.item, o.quantity, o.status, r.text
            FROM orders o LEFT JOIN receipts r ON r.order_id = o.id WHERE o.id = $1";
        type Row = (String, String, i64, String, Option<String>);
        let row: Option<Row> = on_store!(self, store => {
            sqlx::query_as(SELECT).bind(id).fetch_optional(store.pool()).await?
        });
        Ok(row.map(|(id, item, quantity, status, receipt)| Order {
            id,
            item,
            quantity,
            status,
            receipt,
        }))
    }
}
