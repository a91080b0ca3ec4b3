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

/// The variable read for the token when `--token-from-env` is not given.
const DEFAULT_TOKEN_VAR: &str = "SOIREE_DASHBOARD_TOKEN";

/// The token from the environment: the variable named by
/// `--token-from-env`, which must be set and not empty (a typo would
/// otherwise serve without a token), else SOIREE_DASHBOARD_TOKEN when set.
fn token(
    named: Option<&str>,
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Option<String>> {
    let name = named.unwrap_or(DEFAULT_TOKEN_VAR);
    match var(name) {
        None if named.is_none() => Ok(None),
        None => Err(Error::Refused(format!(
            "--token-from-env {name}: the variable {name} is not set; export it with the token, or drop the flag to serve without one"
        ))),
        Some(value) if value.is_empty() => Err(Error::Refused(format!(
            "the token variable {name} is set but empty: give it the token (e.g. `openssl rand -hex 16`), or unset it to serve without one"
        ))),
        Some(value) => value
            .into_string()
            .map(Some)
            .map_err(|_| Error::Refused(format!("the token variable {name} is not valid UTF-8"))),
    }
}

/// Serves until `stop`, then lets requests in flight finish (live tails are
/// cut).
pub(crate) async fn run(
    store: Arc<dyn Inspect>,
    opt: &DashboardOpt,
    console: &mut Console,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    let mut options = DashboardOptions::default()
        .sample_every(opt.sample_every)
        .behind_https(opt.behind_https);
    if let Some(token) = token(opt.token_var.as_deref(), |name| std::env::var_os(name))? {
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

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    #[test]
    fn a_named_token_variable_must_hold_a_token() {
        let env = |set: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                set.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| OsString::from(value))
            }
        };
        // Unset default: no token, on loopback only (the library checks).
        assert!(matches!(token(None, env(&[])), Ok(None)));
        assert_eq!(
            token(None, env(&[("SOIREE_DASHBOARD_TOKEN", "s3cret")])).unwrap(),
            Some("s3cret".to_owned())
        );
        assert_eq!(
            token(Some("OPS_TOKEN"), env(&[("OPS_TOKEN", "s3cret")])).unwrap(),
            Some("s3cret".to_owned())
        );
        // A typo, an empty variable: errors naming the variable.
        let typo = token(Some("OPS_TOKNE"), env(&[("OPS_TOKEN", "s3cret")])).unwrap_err();
        assert!(typo.to_string().contains("OPS_TOKNE"), "{typo}");
        let empty = token(None, env(&[("SOIREE_DASHBOARD_TOKEN", "")])).unwrap_err();
        assert!(
            empty.to_string().contains("SOIREE_DASHBOARD_TOKEN"),
            "{empty}"
        );
        assert!(!empty.to_string().contains("s3cret"));
    }
}
