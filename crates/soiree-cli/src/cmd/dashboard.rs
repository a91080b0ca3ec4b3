//! `soiree dashboard`: serves the web dashboard for the store until stopped.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use soiree::Inspect;
use soiree_dashboard::DashboardOptions;
use tokio::net::lookup_host;
use tokio::sync::oneshot;

use super::Console;
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::opt::DashboardOpt;

/// How long requests in flight may finish after the stop.
const DRAIN: Duration = Duration::from_secs(5);
/// How long resolving the `--listen` host may take.
const RESOLVE: Duration = Duration::from_secs(10);

/// Serves until `stop`, then lets requests in flight finish (live tails are
/// cut).
pub(crate) async fn run(
    store: Arc<dyn Inspect>,
    opt: &DashboardOpt,
    console: &mut Console,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    let mut options = DashboardOptions::default().sample_every(opt.sample_every);
    if let Ok(token) = std::env::var(&opt.token_var)
        && !token.is_empty()
    {
        options = options.token(token);
    }
    for host in &opt.allow_host {
        options = options.allow_host(host.clone());
    }
    let info = store.info();
    let addr = resolve(&opt.listen).await?;
    // The dashboard's own rule applies to the address resolved: one that is
    // not loopback is refused without a token.
    let server = soiree_dashboard::bind(store, addr, options).await?;
    writeln!(
        console.out,
        "soiree dashboard for {} {} on http://{}/ (ctrl-c to stop)",
        escape(&info.kind),
        escape(&info.location),
        server.local_addr()
    )
    .map_err(Error::Output)?;
    console.out.flush().map_err(Error::Output)?;
    let (stopped, on_stop) = oneshot::channel::<()>();
    let serving = server.run_until(async move {
        let _ = on_stop.await;
    });
    tokio::pin!(serving);
    tokio::select! {
        result = &mut serving => return Ok(result?),
        () = stop => {}
    }
    let _ = stopped.send(());
    match tokio::time::timeout(DRAIN, serving).await {
        Ok(result) => Ok(result?),
        // Requests still running after the drain time are cut.
        Err(_) => Ok(()),
    }
}

/// The address to bind for `--listen HOST:PORT`: the address itself, or
/// the first IPv4 address the host name resolves to (else the first one),
/// within [`RESOLVE`].
async fn resolve(listen: &str) -> Result<SocketAddr> {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let failed = |reason: String| Error::BadListen {
        addr: listen.to_owned(),
        reason,
    };
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(RESOLVE, lookup_host(listen)).await {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(err)) => return Err(failed(err.to_string())),
        Err(_) => return Err(failed(format!("no answer within {RESOLVE:?}"))),
    };
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| failed("the name has no address".to_owned()))
}
