//! `soiree dashboard`: serves the web dashboard for the store until stopped.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use soiree::Inspect;
use soiree_dashboard::DashboardOptions;
use tokio::sync::oneshot;

use super::Console;
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::opt::DashboardOpt;

/// How long requests in flight may finish after the stop.
const DRAIN: Duration = Duration::from_secs(5);

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
    let server = soiree_dashboard::bind(store, opt.listen, options).await?;
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
