//! The audit trail of the commands that change a store (replays and
//! purges): one log line each on standard error, naming who (user, host,
//! process), what (the selection) and how many, so that an operator's
//! repair can be traced from the logs that collect the command's output.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::escape::escape;

/// The log target of audit lines: `RUST_LOG=soiree::audit=info` keeps
/// them when other logs are filtered.
pub(crate) const TARGET: &str = "soiree::audit";

/// What is logged when `RUST_LOG` is not set: warnings, and the audit.
const DEFAULT_FILTER: &str = "warn,soiree::audit=info";

/// Installs the log subscriber: to standard error, filtered by `RUST_LOG`
/// (default: warnings and the audit lines), colored only on a terminal.
pub(crate) fn init_logging() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Another subscriber already installed (none is, in the binary) keeps
    // its place: the audit lines then go wherever it sends them.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Who runs the command: the login user (and the one behind `sudo`), the
/// host and the process id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operator {
    pub(crate) user: String,
    pub(crate) sudo_user: Option<String>,
    pub(crate) host: String,
    pub(crate) pid: u32,
}

impl Operator {
    /// The operator of this process, from the environment (`USER`,
    /// `LOGNAME`, `USERNAME`, `SUDO_USER`) and the system's host name;
    /// `unknown` for what cannot be told.
    pub(crate) fn current() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let user = var("USER")
            .or_else(|| var("LOGNAME"))
            .or_else(|| var("USERNAME"))
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            user,
            sudo_user: var("SUDO_USER"),
            host: host_name().unwrap_or_else(|| "unknown".to_owned()),
            pid: std::process::id(),
        }
    }
}

/// The host name: the kernel's on Linux, else `HOSTNAME` or `COMPUTERNAME`.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .filter(|name| !name.is_empty())
}

/// Logs that `action` (`replay`, `purge`, `replay event`) changed the
/// store: `selection` as the operator gave it, `selected` and `done` counts,
/// and `failed` when the command stopped on an error part way.
pub(crate) fn record(
    store: &soiree::StoreInfo,
    action: &str,
    selection: &str,
    selected: u64,
    done: u64,
    failed: Option<&str>,
) {
    let operator = Operator::current();
    let sudo_user = operator.sudo_user.as_deref().map(escape);
    tracing::info!(
        target: TARGET,
        action,
        store = %escape(&format!("{} {}", store.kind, store.location)),
        group = %escape(store.group.as_deref().unwrap_or("-")),
        selection = %escape(selection),
        selected,
        done,
        user = %escape(&operator.user),
        sudo_user = sudo_user.as_deref(),
        host = %escape(&operator.host),
        pid = operator.pid,
        failed = failed.map(escape).as_deref(),
        "store changed by the soiree command"
    );
}
