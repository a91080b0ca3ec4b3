//! Command-line options.

use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};

use crate::time::{parse_interval, parse_time};

/// What `--help` says after the options: the exit codes.
pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  runtime failure: the store cannot be reached or read
  2  usage error or refusal: a bad option (topic pattern, --after cursor, --listen)
     or store URL, an unconfirmed destructive command (no --yes and no terminal
     to ask on), an empty dead-letter selection
  3  not found: the event, dead letter, consumer group, store or SQLite file named
     does not exist (the error names what exists)";

/// Soiree: an event bus for Rust services.
///
/// Inspects and repairs the store of a bus (Redis, PostgreSQL, SQLite, NATS), and
/// serves its dashboard. The benchmark suite is a binary of its own,
/// soiree-bench (crate soiree-bench in the repository).
#[derive(Debug, Parser)]
#[command(name = "soiree", version, about, after_help = EXIT_CODES)]
pub(crate) struct Opt {
    #[command(flatten)]
    pub(crate) store: StoreOpt,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Which store to open: global options, accepted before or after the
/// subcommand.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct StoreOpt {
    /// The store: redis://HOST[:PORT][/DB], rediss://…, postgres://…,
    /// postgresql://…, sqlite://PATH or sqlite:PATH, nats://HOST[:PORT]
    /// (several, comma-separated), tls://….
    #[arg(
        long,
        global = true,
        env = "SOIREE_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub(crate) store: Option<String>,

    /// The consumer group to inspect (default `soiree`): pending
    /// deliveries, consumers, and where replays go.
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) group: Option<String>,

    /// The key prefix of a Redis store, the subject prefix of a NATS store
    /// (default `soiree`).
    #[arg(long, global = true, value_name = "PREFIX")]
    pub(crate) prefix: Option<String>,

    /// A PEM file of the root certificate(s) to trust for a rediss:// or tls:// store
    /// instead of the system's (a private CA).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) tls_ca: Option<std::path::PathBuf>,

    /// The schema of a PostgreSQL store (default `public`).
    #[arg(long, global = true, value_name = "SCHEMA")]
    pub(crate) schema: Option<String>,
}

/// The subcommands. Those that need the store get it from `store::open`, as
/// an `Arc<dyn Inspect>`.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Counts of what the store holds, with emit and handle rates.
    Stats(StatsOpt),
    /// Stored events, oldest first (`--newest` for the latest).
    Events(ListOpt),
    /// One event with every listener attempt and its dead letters.
    Event(EventOpt),
    /// Stored listener results (one per attempt).
    Results(ListOpt),
    /// Deliveries taken by consumers and not yet acknowledged, oldest first.
    Pending(PendingOpt),
    /// The consumers of the group.
    Consumers(OutputOpt),
    /// Events set aside after their listeners failed: list, show, replay,
    /// purge.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// Delayed events the store holds until their due time.
    #[command(subcommand)]
    Scheduled(ScheduledCommand),
    /// Leader leases (who fires each periodic schedule): holder, expiry,
    /// last tick.
    #[command(subcommand)]
    Leases(LeasesCommand),
    /// Listener limit slots in use across processes: key, holder, expiry.
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// Deliver a stored event to the group again, with the same id
    /// (listeners that already succeeded for it are skipped).
    Replay(ReplayOpt),
    /// Print events as they are stored, until ctrl-c.
    Tail(TailOpt),
    /// Serve the web dashboard for the store, until ctrl-c.
    Dashboard(DashboardOpt),
}

/// `--json`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct OutputOpt {
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Options of `soiree stats`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StatsOpt {
    /// Time between the two snapshots the rates come from (`0s`: no rates).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub(crate) interval: Duration,

    #[command(flatten)]
    pub(crate) output: OutputOpt,
}

/// What a listing selects: topic, event id, time range.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct FilterOpt {
    /// Only topics matching this pattern (`order.*`, `order.**`).
    #[arg(long, value_name = "PATTERN", value_parser = parse_pattern)]
    pub(crate) topic: Option<String>,

    /// Only this event id.
    #[arg(long, value_name = "ID")]
    pub(crate) event_id: Option<String>,

    /// Only what was stored at or after this time: RFC 3339
    /// (`2024-05-01T12:00:00Z`) or an age (`10m`, `2h`, `1d`).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub(crate) since: Option<SystemTime>,

    /// Only what was stored before this time (as for --since).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub(crate) until: Option<SystemTime>,
}

impl FilterOpt {
    /// Reports whether no filter was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.topic.is_none()
            && self.event_id.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }
}

/// Which page of a listing.
#[derive(Debug, Clone, Args)]
pub(crate) struct PageOpt {
    /// At most this many records (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) limit: u32,

    /// The newest records first.
    #[arg(long)]
    pub(crate) newest: bool,

    /// Continue after this record id (the cursor a previous page printed).
    #[arg(long, value_name = "CURSOR")]
    pub(crate) after: Option<String>,
}

impl Default for PageOpt {
    fn default() -> Self {
        Self {
            limit: 50,
            newest: false,
            after: None,
        }
    }
}

/// Options of the listings (`events`, `results`, `dead-letters list`).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ListOpt {
    #[command(flatten)]
    pub(crate) filter: FilterOpt,

    #[command(flatten)]
    pub(crate) page: PageOpt,

    #[command(flatten)]
    pub(crate) output: OutputOpt,
}

/// Options of `soiree event`.
#[derive(Debug, Clone, Args)]
pub(crate) struct EventOpt {
    /// The event id (`soiree.event_id`).
    pub(crate) event_id: String,

    #[command(flatten)]
    pub(crate) output: OutputOpt,
}

/// Options of `soiree pending` (a filter does not apply).
#[derive(Debug, Clone, Args)]
pub(crate) struct PendingOpt {
    /// At most this many deliveries (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) limit: u32,

    /// Continue after this delivery id.
    #[arg(long, value_name = "CURSOR")]
    pub(crate) after: Option<String>,

    #[command(flatten)]
    pub(crate) output: OutputOpt,
}

/// `soiree scheduled …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ScheduledCommand {
    /// List delayed events, soonest due first (`--newest`: latest due
    /// first); `--since`/`--until` do not apply.
    List(ListOpt),
}

/// `soiree leases …`.
#[derive(Debug, Subcommand)]
pub(crate) enum LeasesCommand {
    /// List the leader leases by name, lapsed and released ones too.
    List(ViewOpt),
}

/// `soiree limits …`.
#[derive(Debug, Subcommand)]
pub(crate) enum LimitsCommand {
    /// List the unexpired limit slots by key, then holder.
    List(ViewOpt),
}

/// Options of the unpaged views (`leases list`, `limits list`).
#[derive(Debug, Clone, Args)]
pub(crate) struct ViewOpt {
    /// At most this many rows (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) limit: u32,

    #[command(flatten)]
    pub(crate) output: OutputOpt,
}

/// `soiree dead-letters …`.
#[derive(Debug, Subcommand)]
pub(crate) enum DeadLettersCommand {
    /// List dead letters.
    List(ListOpt),
    /// One dead letter with its event.
    Show(ShowOpt),
    /// Deliver the selected dead letters to the group again and remove them.
    #[command(after_help = SELECTION_HELP)]
    Replay(SelectOpt),
    /// Delete the selected dead letters.
    #[command(after_help = SELECTION_HELP)]
    Purge(SelectOpt),
}

const SELECTION_HELP: &str = "\
Select by --id (repeatable), by filters (--topic, --event-id, --since, --until),
or every dead letter with --all; --limit N keeps the oldest N. On a terminal the
selection is shown and confirmation asked; pass --yes when stdin is not one.
--dry-run prints the selection and changes nothing. Each replay or purge logs an
audit line on stderr (target soiree::audit).";

/// Options of `soiree dead-letters show`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ShowOpt {
    /// The dead letter's id (as listed).
    pub(crate) id: String,

    #[command(flatten)]
    pub(crate) output: OutputOpt,
}

/// Which dead letters to replay or purge.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct SelectOpt {
    /// This dead letter (repeatable).
    #[arg(long = "id", value_name = "ID", conflicts_with_all = ["topic", "event_id", "since", "until", "all"])]
    pub(crate) ids: Vec<String>,

    #[command(flatten)]
    pub(crate) filter: FilterOpt,

    /// Every dead letter.
    #[arg(long, conflicts_with_all = ["topic", "event_id", "since", "until"])]
    pub(crate) all: bool,

    /// At most this many of the selected dead letters, oldest first.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) limit: Option<u64>,

    /// Print what would be done and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,

    #[command(flatten)]
    pub(crate) confirm: ConfirmOpt,

    #[command(flatten)]
    pub(crate) output: OutputOpt,
}

impl SelectOpt {
    /// The selection as options, for the audit log: `--id 3 --id 4`,
    /// `--topic 'order.*' --since …`, `--all`.
    pub(crate) fn describe(&self) -> String {
        let mut parts: Vec<String> = self.ids.iter().map(|id| format!("--id {id:?}")).collect();
        let filter = &self.filter;
        if let Some(topic) = &filter.topic {
            parts.push(format!("--topic {topic:?}"));
        }
        if let Some(event_id) = &filter.event_id {
            parts.push(format!("--event-id {event_id:?}"));
        }
        for (name, time) in [("--since", filter.since), ("--until", filter.until)] {
            if let Some(time) = time {
                parts.push(format!("{name} {}", crate::time::format_time(time)));
            }
        }
        if self.all {
            parts.push("--all".to_owned());
        }
        if let Some(limit) = self.limit {
            parts.push(format!("--limit {limit}"));
        }
        parts.join(" ")
    }
}

/// `--yes`.
#[derive(Debug, Clone, Copy, Default, Args)]
pub(crate) struct ConfirmOpt {
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

/// Options of `soiree replay`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReplayOpt {
    /// The event id (`soiree.event_id`).
    pub(crate) event_id: String,

    /// Print what would be replayed and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,

    #[command(flatten)]
    pub(crate) confirm: ConfirmOpt,

    #[command(flatten)]
    pub(crate) output: OutputOpt,
}

/// Options of `soiree tail`.
#[derive(Debug, Clone, Args)]
pub(crate) struct TailOpt {
    /// Only topics matching this pattern.
    #[arg(value_name = "PATTERN", value_parser = parse_pattern)]
    pub(crate) pattern: Option<String>,

    /// How often to poll the store.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_interval)]
    pub(crate) every: Duration,

    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,

    /// Print one JSON object per line.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Options of `soiree dashboard`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DashboardOpt {
    /// The address to listen on, HOST:PORT (`localhost:8686`,
    /// `127.0.0.1:8686`, `[::1]:8686`); an address that is not loopback
    /// needs a token.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8686", value_parser = parse_listen)]
    pub(crate) listen: String,

    /// Require the token held by this environment variable on every
    /// request (an `Authorization: Bearer` header, or the login form).
    /// Read from the environment so that it stays out of the process list.
    /// Without the flag, SOIREE_DASHBOARD_TOKEN is read when set; a variable
    /// named here that is unset or empty is an error, never a silent
    /// dashboard without a token.
    #[arg(long = "token-from-env", value_name = "VAR")]
    pub(crate) token_var: Option<String>,

    /// Browsers reach the dashboard over HTTPS (a TLS-terminating proxy):
    /// mark the session cookie `Secure`.
    #[arg(long)]
    pub(crate) behind_https: bool,

    /// Also answer requests naming this host (a reverse proxy's name) when
    /// no token is set; loopback names are always answered. Repeatable.
    #[arg(long, value_name = "HOST")]
    pub(crate) allow_host: Vec<String>,

    /// How often to sample the store for the throughput and backlog chart.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_interval)]
    pub(crate) sample_every: Duration,
}

/// A topic pattern option: the rule of `bus.on` (no empty segment, no
/// `?` or `[`, wildcards as whole segments), trimmed. A pattern no topic can
/// match is a typo, not an empty listing.
fn parse_pattern(text: &str) -> Result<String, String> {
    soiree::validate_pattern(text)
        .map(str::to_owned)
        .map_err(|err| match err {
            soiree::Error::InvalidTopicName { reason, .. } => {
                format!("{reason} (a pattern is as in bus.on: order.created, order.*, order.**)")
            }
            other => other.to_string(),
        })
}

/// A `--listen` value: HOST:PORT, resolved when the dashboard starts.
fn parse_listen(text: &str) -> Result<String, String> {
    if text.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    let bad = || "expected HOST:PORT (localhost:8686, 127.0.0.1:8686, [::1]:8686)".to_owned();
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains([':', '[', ']', '/', ' ']) || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_options_are_consistent() {
        Opt::command().debug_assert();
    }

    #[test]
    fn store_options_go_before_or_after_the_subcommand() {
        let before = Opt::try_parse_from(["soiree", "--store", "redis://h", "stats"]).unwrap();
        let after = Opt::try_parse_from(["soiree", "stats", "--store", "redis://h"]).unwrap();
        assert_eq!(before.store.store.as_deref(), Some("redis://h"));
        assert_eq!(after.store.store.as_deref(), Some("redis://h"));
    }

    #[test]
    fn bad_topic_patterns_are_usage_errors() {
        for args in [
            &["soiree", "events", "--topic", "order.[x"][..],
            &["soiree", "results", "--topic", "a..b"],
            &["soiree", "dead-letters", "list", "--topic", "a?"],
            &["soiree", "dead-letters", "purge", "--topic", "order.x*"],
            &["soiree", "tail", "bad["],
            &["soiree", "tail", " "],
        ] {
            let err = Opt::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            let text = err.to_string();
            assert!(text.contains("pattern is as in bus.on"), "{text}");
        }
        let err = Opt::try_parse_from(["soiree", "events", "--topic", "order.[x"]).unwrap_err();
        assert!(err.to_string().contains("`[` are reserved"), "{err}");
        let ok = Opt::try_parse_from(["soiree", "events", "--topic", " order.** "]).unwrap();
        let Command::Events(list) = ok.command else {
            panic!("{ok:?}")
        };
        assert_eq!(list.filter.topic.as_deref(), Some("order.**"));
    }

    #[test]
    fn listen_takes_host_names_and_addresses() {
        for good in [
            "localhost:8691",
            "127.0.0.1:0",
            "[::1]:8686",
            "dash.internal:80",
        ] {
            let opt = Opt::try_parse_from(["soiree", "dashboard", "--listen", good])
                .unwrap_or_else(|err| panic!("{good}: {err}"));
            let Command::Dashboard(dashboard) = opt.command else {
                panic!("{opt:?}")
            };
            assert_eq!(dashboard.listen, good);
        }
        for bad in [
            "localhost",
            "localhost:http",
            ":8686",
            "::1:8686",
            "a b:1",
            "x:70000",
        ] {
            let err = Opt::try_parse_from(["soiree", "dashboard", "--listen", bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(err.to_string().contains("HOST:PORT"), "{err}");
        }
    }

    #[test]
    fn selections_are_described_as_options_for_the_audit() {
        let describe = |args: &[&str]| {
            let opt = Opt::try_parse_from(args).unwrap();
            let Command::DeadLetters(DeadLettersCommand::Replay(select)) = opt.command else {
                panic!("{opt:?}")
            };
            select.describe()
        };
        assert_eq!(
            describe(&["soiree", "dead-letters", "replay", "--id", "3", "--id", "4"]),
            r#"--id "3" --id "4""#
        );
        assert_eq!(
            describe(&[
                "soiree",
                "dead-letters",
                "replay",
                "--topic",
                "order.*",
                "--since",
                "1970-01-01T00:00:10Z",
                "--limit",
                "5",
            ]),
            r#"--topic "order.*" --since 1970-01-01T00:00:10.000Z --limit 5"#
        );
        assert_eq!(
            describe(&["soiree", "dead-letters", "replay", "--all"]),
            "--all"
        );
    }

    #[test]
    fn ids_and_filters_do_not_mix() {
        let err = Opt::try_parse_from([
            "soiree",
            "dead-letters",
            "purge",
            "--id",
            "1",
            "--topic",
            "a.b",
        ])
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Opt::try_parse_from(["soiree", "dead-letters", "purge", "--all", "--topic", "a"])
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
