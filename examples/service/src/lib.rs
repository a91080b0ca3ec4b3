//! An example service on soiree: an HTTP API (axum) whose handler writes an
//! order and emits its event in the same transaction (soiree-sql), with the
//! listeners that handle the event in the same process, Prometheus metrics
//! and a graceful shutdown.
//!
//! ```sh
//! cargo run -p soiree-example-service                 # a SQLite file, shop.db
//! cargo run -p soiree-example-service -- --database postgres://postgres@127.0.0.1/shop
//! curl -s -X POST localhost:3000/orders -H 'content-type: application/json' -d '{"item":"teapot","quantity":2}'
//! curl -s localhost:3000/orders/ID                     # status "confirmed", with its receipt
//! curl -s localhost:3000/metrics
//! ```
//!
//! - [`db`]: the tables and the one transaction that writes an order and
//!   its event (the same SQL on SQLite and PostgreSQL);
//! - [`http`]: the routes;
//! - [`listeners`]: what handles `order.placed`;
//! - [`config`]: the command line.

pub mod config;
pub mod db;
pub mod http;
pub mod listeners;

/// The root README's code blocks, compiled and run as doc tests so they
/// cannot rot (here, in a crate that is not published, rather than in
/// `soiree`, whose package does not contain the repository's README).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The soiree-sql README's code blocks, likewise.
#[cfg(doctest)]
#[doc = include_str!("../../../crates/soiree-sql/README.md")]
pub struct SqlReadmeDoctests;
