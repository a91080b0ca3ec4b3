//! A web dashboard for operating any soiree store.
//!
//! An operator wants three things from a running event bus: to see that it
//! is healthy (how much is emitted and handled, whether a backlog grows),
//! to find what failed and why (dead letters, the results of every listener
//! for one event), and to repair it (replay an event or a selection of dead
//! letters once the cause is fixed, purge what should never run). The
//! dashboard answers those through the one trait every store implements,
//! [`soiree::Inspect`], so it works the same on the in-memory store, Redis
//! and SQL.
//!
//! It is an [`axum::Router`] ([`router`]) that an application nests under a
//! path of its own, or a server of its own ([`serve`], [`bind`]). Its pages
//! (Overview, Events, Dead letters, Live tail, Pending) are plain HTML,
//! CSS and JavaScript embedded in the binary: nothing is fetched from
//! elsewhere, so it works offline. The pages read a JSON API under `api/`
//! that scripts can use as well:
//!
//! | route | what |
//! | --- | --- |
//! | `GET api/stats` | store info, counts, rates and the sampled history |
//! | `GET api/events?topic=&event_id=&cursor=&limit=&order=` | a page of events, newest first |
//! | `GET api/event/{id}` | one event with its results per listener and dead letters |
//! | `GET api/dead-letters?topic=&event_id=&cursor=&limit=` | a page of dead letters |
//! | `GET api/dead-letters/{id}` | one dead letter |
//! | `GET api/dead-letter-count?topic=&event_id=` | how many dead letters a filter selects |
//! | `POST api/replay` | `{"event_id"}`, `{"ids": [...]}` or `{"filter": {...}}` |
//! | `POST api/purge` | `{"ids": [...]}` or `{"filter": {...}}` |
//!
//! Replay and purge act on what the operator saw: a selection by filter
//! may carry `"expected"`, the count the operator confirmed, and is
//! refused (409, `{"error", "count"}`) when the filter selects another
//! number now; a blank filter (every dead letter) is refused (409) unless
//! `"all": true` is sent, as the CLI's `--all`. The pages always send the
//! filter the listing on screen was drawn with and the count they showed
//! in their confirmation. Input errors (a malformed cursor, a filter with
//! control characters) are 400 with `{"error"}`; a failed store call is a
//! 500 whose cause goes to the log, never to the client.
//! | `GET api/pending?cursor=&limit=` | deliveries not yet acknowledged |
//! | `GET api/consumers` | the consumers of the group |
//! | `GET api/topics?window=` | per-topic counts over the newest events |
//! | `GET api/tail?topic=` | new events as Server-Sent Events |
//!
//! A background task samples [`Inspect::stats`]
//! every [`DashboardOptions::sample_every`] into a ring buffer, which the
//! Overview draws as throughput and backlog over time.
//!
//! # Security
//!
//! - [`serve`] listens on loopback unless told otherwise, and refuses a
//!   non-loopback address without a [`DashboardOptions::token`].
//! - With a token, every request needs it: as `Authorization: Bearer TOKEN`,
//!   or once as `?token=TOKEN`, which sets an `HttpOnly`, `SameSite=Strict`
//!   session cookie (holding a per-process secret, not the token) and
//!   redirects to the same page without the token in the address.
//! - Without a token, requests must name a loopback host (`localhost`,
//!   `127.0.0.1`, `[::1]`) or one allowed by [`DashboardOptions::allow_host`]:
//!   a page on another site cannot reach the dashboard by DNS rebinding.
//! - Requests that change the store (`POST`) need the header `X-Soiree-CSRF`
//!   holding a per-process random token that the pages carry, and an
//!   `Origin`, when sent, of the same host; requests authenticated by the
//!   `Authorization` header need no CSRF token, as browsers never add one
//!   by themselves.
//! - The token and store credentials are never logged nor rendered; stored
//!   text (payloads, errors) is only ever inserted in the page as text, and
//!   a strict Content-Security-Policy allows no inline script.
//!
//! # Examples
//!
//! A dashboard of its own, on loopback:
//!
//! ```no_run
//! use std::sync::Arc;
//! use soiree_dashboard::DashboardOptions;
//!
//! # async fn run() -> soiree_dashboard::Result<()> {
//! let store = Arc::new(soiree::MemoryStore::queue());
//! soiree_dashboard::serve(store, "127.0.0.1:9180".parse().unwrap(), DashboardOptions::default())
//!     .await
//! # }
//! ```
//!
//! Nested in an application's router, behind a token:
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use soiree::{EventBus, Inspect, MemoryStore};
//! use soiree_dashboard::DashboardOptions;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
//! let store = Arc::new(MemoryStore::queue());
//! let bus = EventBus::builder().shared_store(store.clone()).build()?;
//!
//! let options = DashboardOptions::default()
//!     .token("a long random secret")
//!     .sample_every(Duration::from_secs(10));
//! let inspect: Arc<dyn Inspect> = store;
//! let app: axum::Router = axum::Router::new()
//!     .nest("/ops/events", soiree_dashboard::router(inspect, options));
//! # drop(app);
//! bus.close().await
//! # }
//! ```

mod actions;
mod api;
mod pages;
mod sampler;
mod security;

use std::{
    fmt,
    future::Future,
    net::SocketAddr,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use axum::{
    Router, middleware,
    routing::{get, post},
};
use soiree::Inspect;

use crate::{sampler::Sampler, security::Secrets};

/// Why the dashboard could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address is not loopback and no [`DashboardOptions::token`] was
    /// given (or it is empty).
    #[error(
        "refusing to serve the dashboard on {addr} without a token: it is not a loopback address (set DashboardOptions::token)"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped on an I/O error.
    #[error("dashboard server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// The dashboard's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the dashboard serves: its token, the hosts it answers, how often it
/// samples the store.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use soiree_dashboard::DashboardOptions;
///
/// let options = DashboardOptions::default()
///     .token("s3cret-from-the-environment")
///     .sample_every(Duration::from_secs(2))
///     .history(900);
/// // The token is never shown.
/// assert!(!format!("{options:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct DashboardOptions {
    token: Option<String>,
    allowed_hosts: Vec<String>,
    sample_every: Duration,
    history: usize,
    topic_window: usize,
    base_path: Option<String>,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        Self {
            token: None,
            allowed_hosts: Vec::new(),
            sample_every: Duration::from_secs(5),
            history: 720,
            topic_window: 1_000,
            base_path: None,
        }
    }
}

impl fmt::Debug for DashboardOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("allowed_hosts", &self.allowed_hosts)
            .field("sample_every", &self.sample_every)
            .field("history", &self.history)
            .field("topic_window", &self.topic_window)
            .field("base_path", &self.base_path)
            .finish()
    }
}

impl DashboardOptions {
    /// Requires this token on every request (`Authorization: Bearer`, or a
    /// session cookie set by opening a page with `?token=`). Required by
    /// [`serve`] on an address that is not loopback.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Answers requests naming this host (`ops.example.com`, with or
    /// without a port) when no token is set; loopback hosts are always
    /// answered. Behind a token every host is.
    #[must_use]
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.allowed_hosts.push(host.into().to_ascii_lowercase());
        self
    }

    /// How often the background task samples the store's stats for the
    /// throughput and backlog chart (default 5 s, at least 100 ms).
    #[must_use]
    pub fn sample_every(mut self, every: Duration) -> Self {
        self.sample_every = every.max(Duration::from_millis(100));
        self
    }

    /// How many samples the chart keeps (default 720: an hour at 5 s).
    #[must_use]
    pub fn history(mut self, samples: usize) -> Self {
        self.history = samples.clamp(2, 100_000);
        self
    }

    /// Over how many of the newest events the per-topic counts are taken
    /// (default 1,000).
    #[must_use]
    pub fn topic_window(mut self, events: usize) -> Self {
        self.topic_window = events.clamp(1, 100_000);
        self
    }

    /// The path the browser sees the dashboard at (`/ops/events/`), for a
    /// reverse proxy that strips a prefix. By default it is worked out from
    /// the request (and the path the router is nested at).
    #[must_use]
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        let mut path = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if !path.ends_with('/') {
            path.push('/');
        }
        self.base_path = Some(path);
        self
    }

    fn has_token(&self) -> bool {
        self.token.as_deref().is_some_and(|token| !token.is_empty())
    }
}

/// What every handler shares.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Inspect>,
    pub(crate) options: DashboardOptions,
    pub(crate) secrets: Secrets,
    pub(crate) sampler: Sampler,
    pub(crate) sampling: AtomicBool,
    pub(crate) tails: Arc<tokio::sync::Semaphore>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store.info())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

pub(crate) type State = Arc<Shared>;

/// The most live tails served at once.
const MAX_TAILS: usize = 32;

/// The dashboard's pages and API, to serve or to nest in an application's
/// router.
///
/// Links are relative to where the router is mounted. The stats sampler
/// starts at once when called inside a Tokio runtime, else on the first
/// request; it stops when the router and its clones are dropped.
pub fn router(store: Arc<dyn Inspect>, options: DashboardOptions) -> Router {
    let shared = Arc::new(Shared {
        store,
        sampler: Sampler::new(options.history),
        secrets: Secrets::generate(),
        options,
        sampling: AtomicBool::new(false),
        tails: Arc::new(tokio::sync::Semaphore::new(MAX_TAILS)),
    });
    if tokio::runtime::Handle::try_current().is_ok() {
        sampler::start(&shared);
    }
    Router::new()
        .route("/", get(pages::page))
        .route("/events", get(pages::page))
        .route("/dead-letters", get(pages::page))
        .route("/tail", get(pages::page))
        .route("/pending", get(pages::page))
        .route("/assets/{*path}", get(pages::asset))
        .route("/api/stats", get(api::stats))
        .route("/api/events", get(api::events))
        .route("/api/event/{id}", get(api::event))
        .route("/api/dead-letters", get(api::dead_letters))
        .route("/api/dead-letters/{id}", get(api::dead_letter))
        .route("/api/dead-letter-count", get(actions::count))
        .route("/api/replay", post(actions::replay))
        .route("/api/purge", post(actions::purge))
        .route("/api/pending", get(api::pending))
        .route("/api/consumers", get(api::consumers))
        .route("/api/topics", get(api::topics))
        .route("/api/tail", get(api::tail))
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            security::guard,
        ))
        .with_state(shared)
}

/// A dashboard bound to its address, not yet serving: [`bind`] it, read
/// [`local_addr`](Self::local_addr) (port 0 picks a free one), then
/// [`run`](Self::run) it.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    router: Router,
    addr: SocketAddr,
}

impl Server {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process ends.
    ///
    /// # Errors
    ///
    /// [`Error::Serve`] on an I/O error of the listener.
    pub async fn run(self) -> Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `shutdown` completes, then finishes the requests in
    /// flight (live tails are cut).
    ///
    /// # Errors
    ///
    /// [`Error::Serve`] on an I/O error of the listener.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Serve)
    }
}

/// Binds the dashboard to `addr`, checking that a non-loopback address has
/// a token.
///
/// # Errors
///
/// [`Error::TokenRequired`] for an address that is not loopback without a
/// token, [`Error::Bind`] when the address cannot be bound.
pub async fn bind(
    store: Arc<dyn Inspect>,
    addr: SocketAddr,
    options: DashboardOptions,
) -> Result<Server> {
    if !addr.ip().is_loopback() && !options.has_token() {
        return Err(Error::TokenRequired { addr });
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let info = store.info();
    tracing::info!(
        store = %info.kind,
        location = %info.location,
        "soiree dashboard listening on http://{local}/"
    );
    Ok(Server {
        listener,
        router: router(store, options),
        addr: local,
    })
}

/// Serves the dashboard on `addr` until the process ends.
///
/// # Errors
///
/// As for [`bind`], and [`Error::Serve`] when serving fails.
pub async fn serve(
    store: Arc<dyn Inspect>,
    addr: SocketAddr,
    options: DashboardOptions,
) -> Result<()> {
    bind(store, addr, options).await?.run().await
}
