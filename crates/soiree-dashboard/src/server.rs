//! Serving on a socket of its own, with bounds a slow or hostile client
//! cannot stretch: at most [`DashboardOptions::max_connections`] open
//! connections (past it, new ones wait in the listen backlog), request
//! headers read within [`DashboardOptions::header_timeout`] (which is also
//! how long an idle keep-alive connection stays open), and at most
//! [`DRAIN`] for the requests in flight at shutdown.

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use soiree::Inspect;
use tokio::sync::{Semaphore, watch};
use tower_service::Service;

use crate::{DashboardOptions, Error, Result, router, security};

/// How long the requests in flight at shutdown may finish; then they are
/// cut (live tails included).
pub const DRAIN: Duration = Duration::from_secs(10);
/// How long to wait before accepting again after the listener failed
/// (out of file descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);

/// A dashboard bound to its address, not yet serving: [`bind`] it, read
/// [`local_addr`](Self::local_addr) (port 0 picks a free one), then
/// [`run`](Self::run) it.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    router: Router,
    addr: SocketAddr,
    header_timeout: Duration,
    max_connections: usize,
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
    /// None today: a failed accept is logged and retried.
    pub async fn run(self) -> Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `shutdown` completes, then lets the requests in flight
    /// finish for at most [`DRAIN`] and cuts the rest (live tails).
    ///
    /// # Errors
    ///
    /// None today: a failed accept is logged and retried.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops accepting; connections already accepted
    /// run on until they end or time out.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let Self {
            listener,
            router,
            header_timeout,
            max_connections,
            ..
        } = self;
        let slots = Arc::new(Semaphore::new(max_connections));
        let (closing, closed) = watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            let slot = tokio::select! {
                () = &mut shutdown => break,
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            };
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "dashboard: accepting a connection failed; retrying");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let connection = Connection {
                router: router.clone(),
                peer,
                header_timeout,
                closed: closed.clone(),
            };
            tokio::spawn(async move {
                connection.serve(stream).await;
                drop(slot);
            });
        }
        drop(listener);
        let _ = closing.send(true);
        // Every slot back: every connection ended.
        let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(DRAIN + Duration::from_secs(1), slots.acquire_many(all)).await;
        Ok::<(), Error>(())
    }
}

struct Connection {
    router: Router,
    peer: SocketAddr,
    header_timeout: Duration,
    closed: watch::Receiver<bool>,
}

impl Connection {
    async fn serve(mut self, stream: tokio::net::TcpStream) {
        let peer = self.peer;
        let router = self.router;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            // Who is asking, for the failed-login throttle.
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move {
                Ok::<_, Infallible>(
                    router
                        .call(request)
                        .await
                        .unwrap_or_else(|never| match never {}),
                )
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .max_buf_size(MAX_HEAD);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "dashboard: connection ended");
                }
            }
            () = closing(&mut self.closed) => {
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(DRAIN, connection).await;
            }
        }
    }
}

/// Completes once the server closes.
async fn closing(closed: &mut watch::Receiver<bool>) {
    // An error means the server is gone: closed as well.
    let _ = closed.wait_for(|closed| *closed).await.map(|_| ());
}

/// The largest request head read (the request line and headers).
const MAX_HEAD: usize = 64 * 1024;

/// Binds the dashboard to `addr`, checking that a non-loopback address has
/// a strong token.
///
/// # Errors
///
/// [`Error::TokenRequired`] for an address that is not loopback without a
/// token, [`Error::WeakToken`] when that token holds fewer than 128 bits,
/// [`Error::Bind`] when the address cannot be bound.
pub async fn bind(
    store: Arc<dyn Inspect>,
    addr: SocketAddr,
    options: DashboardOptions,
) -> Result<Server> {
    if !addr.ip().is_loopback() {
        match options.token.as_deref().filter(|token| !token.is_empty()) {
            None => return Err(Error::TokenRequired { addr }),
            Some(token) => {
                if let Some(reason) = security::token_weakness(token) {
                    return Err(Error::WeakToken { addr, reason });
                }
            }
        }
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
        header_timeout: options.header_timeout,
        max_connections: options.max_connections,
        router: router(store, options),
        addr: local,
    })
}

/// Serves the dashboard on `addr` until the process ends.
///
/// # Errors
///
/// As for [`bind`].
pub async fn serve(
    store: Arc<dyn Inspect>,
    addr: SocketAddr,
    options: DashboardOptions,
) -> Result<()> {
    bind(store, addr, options).await?.run().await
}
