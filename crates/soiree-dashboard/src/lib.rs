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
//! (Overview, Events, Dead letters, Live tail, Pending, Scheduled) are plain HTML,
//! CSS and JavaScript embedded in the binary: nothing is fetched from
//! elsewhere, so it works offline. The pages read a JSON API under `api/`
//! that scripts can use as well:
//!
//! | route | what |
//! | --- | --- |
//! | `GET api/stats` | store info, counts, rates and the sampled history |
//! | `GET api/events?topic=&event_id=&cursor=&limit=&order=` | a page of events, newest first |
//! | `GET api/event/{id}?full=` | one event with its results per listener (each with its `outcome`: `succeeded`, `snoozed` or `failed`) and dead letters |
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
//! | `GET api/scheduled?topic=&event_id=&cursor=&limit=` | delayed events held until due, soonest first (`"supported": false` from a store that does not schedule) |
//! | `GET api/leases?limit=` | the leader leases by name: `{items: [{name, holder, token, held, expires_at, progress}], supported}` (`progress`: a periodic schedule's last tick, Unix ms) |
//! | `GET api/limit-slots?limit=` | the listener limit slots in use: `{items: [{key, holder, expires_at}], supported}` |
//! | `GET api/topics?window=` | per-topic counts over the newest events |
//! | `GET api/tail?topic=` | new events as Server-Sent Events |
//! | `POST login`, `POST logout` | open and end a browser session (with a token) |
//!
//! A background task samples [`Inspect::stats`]
//! every [`DashboardOptions::sample_every`] into a ring buffer, which the
//! Overview draws as throughput and backlog over time.
//!
//! # Security
//!
//! - [`serve`] listens on loopback unless told otherwise, and refuses a
//!   non-loopback address without a [`DashboardOptions::token`] of at least
//!   128 bits (32 hex or 22 base64 characters: `openssl rand -hex 16`;
//!   [`Error::TokenRequired`], [`Error::WeakToken`]).
//! - With a token, every request needs it: as `Authorization: Bearer
//!   TOKEN`, or through the login form every page shows without a session,
//!   which posts the token (never in an address, so never in a proxy's log)
//!   and sets an `HttpOnly`, `SameSite=Strict` session cookie holding a
//!   random session id, not the token. A session lasts 12 hours
//!   (`Max-Age`); "Log out" ends it on the server too; the cookie is
//!   `Secure` with [`DashboardOptions::behind_https`], and named after the
//!   port (`soiree_dashboard_session_9180`), so dashboards on two ports
//!   keep their own. A link with `?token=TOKEN` still logs in once and
//!   redirects to the same page without it.
//! - Tokens are compared in constant time. Wrong tokens are logged (not
//!   the guess) and throttled per client address: after 10 in a burst, one
//!   more every 2 s; meanwhile every login from that address is refused
//!   with 429 and `Retry-After`, and the throttling is logged once.
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
//! # Bounds
//!
//! - A server of its own ([`bind`], [`serve`]) keeps at most
//!   [`DashboardOptions::max_connections`] connections (128; more wait in
//!   the listen backlog), closes a connection that has not sent a request's
//!   headers within [`DashboardOptions::header_timeout`] (10 s; an idle
//!   keep-alive connection as well), reads request heads of at most 64 KiB,
//!   and gives requests in flight at shutdown at most [`DRAIN`]. A router
//!   nested in an application gets the application server's bounds.
//! - Listings are bounded in bytes: each payload, raw entry and error is
//!   cut to its first 4 KiB (with `payload_bytes`/`error_bytes`, the full
//!   size), the store is read 20 records at a time, and a page ends once
//!   its body passes about 2 MiB, with `next` going on from there. An
//!   event's view shows the first 256 KiB of its payload, all of it with
//!   `?full=true`.
//! - Every store call has 30 s; a failed one is a 500 whose cause goes to
//!   the log, never to the client. At most 32 live tails run at once.
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
mod budget;
mod pages;
mod sampler;
mod scheduled;
mod security;
mod server;
mod throttle;

pub use server::{DRAIN, Server, bind, serve};

use std::{
    fmt,
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
        "refusing to serve the dashboard on {addr} without a token: it is not a loopback address; set SOIREE_DASHBOARD_TOKEN (DashboardOptions::token in code) to at least 128 random bits, e.g. the output of `openssl rand -hex 16`"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address is not loopback and the token is guessable: fewer than
    /// 128 bits (32 hex or 22 base64 characters), or blank around.
    #[error(
        "refusing to serve the dashboard on {addr} with a weak token: {reason}; set SOIREE_DASHBOARD_TOKEN (DashboardOptions::token in code) to at least 128 random bits, e.g. the output of `openssl rand -hex 16`"
    )]
    WeakToken {
        /// The address asked for.
        addr: SocketAddr,
        /// What is wrong with it (never the token itself).
        reason: &'static str,
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
    /// The server stopped on an I/O error (not raised today: a failed
    /// accept is logged and retried).
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
    header_timeout: Duration,
    max_connections: usize,
    behind_https: bool,
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
            header_timeout: Duration::from_secs(10),
            max_connections: 128,
            behind_https: false,
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
            .field("header_timeout", &self.header_timeout)
            .field("max_connections", &self.max_connections)
            .field("behind_https", &self.behind_https)
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

    /// How long a client has to send a request's headers (default 10 s,
    /// 1 s to 5 min) on a server of its own ([`bind`], [`serve`]); an idle
    /// keep-alive connection is closed after as long. A connection that
    /// sends half a request is closed then, and frees its slot.
    #[must_use]
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout.clamp(Duration::from_secs(1), Duration::from_secs(300));
        self
    }

    /// How many connections a server of its own ([`bind`], [`serve`])
    /// keeps open at once (default 128, 4 to 10,000); more wait in the
    /// listen backlog until one closes. Keep it below the process's file
    /// descriptor limit. Live tails take one each and are capped at 32.
    #[must_use]
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.clamp(4, 10_000);
        self
    }

    /// Says that browsers reach the dashboard over HTTPS (a TLS-terminating
    /// reverse proxy): the session cookie is then marked `Secure`, so it
    /// is never sent over plain HTTP.
    #[must_use]
    pub fn behind_https(mut self, behind_https: bool) -> Self {
        self.behind_https = behind_https;
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
        .route("/scheduled", get(pages::page))
        .route("/assets/{*path}", get(pages::asset))
        .route("/api/stats", get(api::stats))
        .route("/api/events", get(api::events))
        .route("/api/event/{id}", get(api::event))
        .route("/api/dead-letters", get(api::dead_letters))
        .route("/api/dead-letters/{id}", get(api::dead_letter))
        .route("/logout", post(security::logout))
        .route("/api/dead-letter-count", get(actions::count))
        .route("/api/replay", post(actions::replay))
        .route("/api/purge", post(actions::purge))
        .route("/api/pending", get(api::pending))
        .route("/api/scheduled", get(scheduled::scheduled))
        .route("/api/leases", get(scheduled::leases))
        .route("/api/limit-slots", get(scheduled::limit_slots))
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
