//! Opening a store from its URL, for inspection: the one place that knows
//! the store crates; the commands see only `Arc<dyn Inspect>`.
//!
//! Opening never starts consumers and creates nothing: no file, table,
//! stream, consumer group or cursor; an unknown group, prefix or schema is
//! an error naming those that exist. Commands that only read open the
//! store read-only ([`Access::Inspect`]): a read-only SQLite connection (no
//! PRAGMA that changes the file), read-only PostgreSQL transactions, no
//! background task on Redis.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use soiree::Inspect;

use crate::error::{Error, Result};
use crate::opt::StoreOpt;

/// A store named by a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `redis://`, `rediss://`, `redis+unix://`: the URL as given.
    Redis(String),
    /// `postgres://`, `postgresql://`: the URL as given.
    Postgres(String),
    /// `nats://`, `tls://`: the server list as given (comma-separated URLs).
    Nats(String),
    /// `sqlite://PATH`, `sqlite:PATH`: the file, and the URL's query
    /// (`mode=ro`, …) when it has one.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The query after `?`, without it.
        query: Option<String>,
    },
}

/// What a command does with the store it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads only: the store is opened read-only.
    Inspect,
    /// Replays or purges (the dashboard can too): the store is opened for
    /// writing, still creating nothing.
    Repair,
}

impl Access {
    /// What `command` needs.
    pub(crate) fn of(command: &crate::opt::Command) -> Self {
        use crate::opt::{Command, DeadLettersCommand};
        match command {
            Command::Replay(_)
            | Command::Dashboard(_)
            | Command::DeadLetters(DeadLettersCommand::Replay(_) | DeadLettersCommand::Purge(_)) => {
                Self::Repair
            }
            _ => Self::Inspect,
        }
    }
}

impl Target {
    /// Reads a store URL. Errors name the scheme, never the URL (it may hold
    /// a password).
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        let scheme = match url.split_once(':') {
            Some((scheme, _))
                if !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                scheme.to_ascii_lowercase()
            }
            _ if !url.is_empty() => {
                return Err(Error::BarePath {
                    path: url.to_owned(),
                });
            }
            _ => {
                return Err(Error::UnsupportedScheme {
                    scheme: String::new(),
                });
            }
        };
        match scheme.as_str() {
            "redis" | "rediss" | "redis+unix" | "unix" => {
                parse_server_url(&scheme, url)?;
                Ok(Self::Redis(url.to_owned()))
            }
            "postgres" | "postgresql" => {
                parse_server_url(&scheme, url)?;
                Ok(Self::Postgres(url.to_owned()))
            }
            "nats" | "tls" => {
                for part in url.split(',') {
                    let part = part.trim();
                    let part = if part.contains("://") {
                        part.to_owned()
                    } else {
                        format!("{scheme}://{part}")
                    };
                    parse_server_url(&scheme, &part)?;
                }
                Ok(Self::Nats(url.to_owned()))
            }
            "sqlite" => {
                let rest = &url["sqlite:".len()..];
                let rest = rest.strip_prefix("//").unwrap_or(rest);
                let (path, query) = match rest.split_once('?') {
                    Some((path, query)) => (path, Some(query)),
                    None => (rest, None),
                };
                if path.is_empty() {
                    return Err(Error::BadUrl {
                        scheme,
                        reason: "no file: use sqlite://PATH or sqlite:PATH".into(),
                    });
                }
                if path == ":memory:" {
                    return Err(Error::BadUrl {
                        scheme,
                        reason: "an in-memory database holds nothing to inspect".into(),
                    });
                }
                Ok(Self::Sqlite {
                    path: PathBuf::from(path),
                    query: query.filter(|query| !query.is_empty()).map(str::to_owned),
                })
            }
            _ => Err(Error::UnsupportedScheme { scheme }),
        }
    }
}

/// Checks that a server URL parses (the error does not show it).
fn parse_server_url(scheme: &str, url: &str) -> Result<url::Url> {
    url::Url::parse(url).map_err(|err| Error::BadUrl {
        scheme: scheme.to_owned(),
        reason: format!("it does not parse ({err}); not shown, as it may hold a password"),
    })
}

/// `host:port` of a server URL, for errors (never the credentials).
pub(crate) fn server_address(url: &str, default_port: u16) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().filter(|host| !host.is_empty());
            match host {
                Some(host) => format!("{host}:{}", parsed.port().unwrap_or(default_port)),
                None => format!("localhost:{}", parsed.port().unwrap_or(default_port)),
            }
        }
        Err(_) => "<address not shown>".to_owned(),
    }
}

/// `text` with the URL's password (raw and percent-decoded) masked.
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let mut text = text.to_owned();
    if let Ok(parsed) = url::Url::parse(url)
        && let Some(password) = parsed.password()
        && !password.is_empty()
    {
        text = text.replace(password, "***");
        if let Ok(decoded) = percent_decode(password)
            && !decoded.is_empty()
        {
            text = text.replace(&decoded, "***");
        }
    }
    for (key, value) in url::Url::parse(url)
        .map(|parsed| {
            parsed
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    {
        if ["pass", "password"].contains(&key.to_ascii_lowercase().as_str()) && !value.is_empty() {
            text = text.replace(&value, "***");
        }
    }
    text
}

fn percent_decode(text: &str) -> std::result::Result<String, ()> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).map_err(|_| ())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// Opens the store named by `--store` (or `SOIREE_STORE`) for `access`.
pub(crate) async fn open(opt: &StoreOpt, access: Access) -> Result<Arc<dyn Inspect>> {
    let url = opt.store.as_deref().ok_or(Error::NoStore)?;
    match Target::parse(url)? {
        Target::Redis(url) => open_redis(&url, opt, access).await,
        Target::Postgres(url) => open_postgres(&url, opt, access).await,
        Target::Nats(url) => open_nats(&url, opt).await,
        Target::Sqlite { path, query } => open_sqlite(&path, query.as_deref(), opt, access).await,
    }
}

/// The consumer name the CLI's store handles carry: they never consume.
const CONSUMER: &str = "soiree-cli";

async fn open_redis(url: &str, opt: &StoreOpt, access: Access) -> Result<Arc<dyn Inspect>> {
    let mut builder = soiree_redis::RedisStore::builder(url)
        .consumer(CONSUMER)
        .remove_idle_consumers(None)
        .create_missing(false)
        .read_only(access == Access::Inspect);
    if let Some(group) = &opt.group {
        builder = builder.group(group);
    }
    if let Some(prefix) = &opt.prefix {
        builder = builder.prefix(prefix);
    }
    if let Some(path) = &opt.tls_ca {
        let pem = std::fs::read(path).map_err(|err| Error::BadUrl {
            scheme: "rediss".to_owned(),
            reason: format!("cannot read --tls-ca {}: {err}", path.display()),
        })?;
        builder = builder.tls_root_cert(pem);
    }
    match builder.build().await {
        Ok(store) => Ok(Arc::new(store)),
        Err(err) => Err(redis_error(url, err)),
    }
}

fn redis_error(url: &str, err: soiree_redis::Error) -> Error {
    use soiree_redis::Error as E;
    match err {
        E::Connect { server, cause } => Error::Unreachable {
            kind: "redis",
            server,
            reason: scrub(&cause.to_string(), url),
        },
        E::Timeout(after) => Error::Unreachable {
            kind: "redis",
            server: server_address(url, 6379),
            reason: format!("no answer within {after:?}"),
        },
        E::InvalidConfig(reason) => Error::BadUrl {
            scheme: "redis".to_owned(),
            reason: scrub(&reason, url),
        },
        missing @ (E::NotAStore { .. } | E::NoSuchGroup { .. }) => Error::Missing {
            kind: "redis",
            reason: missing.to_string(),
        },
        other => Error::Store {
            kind: "redis".to_owned(),
            reason: scrub(&other.to_string(), url),
        },
    }
}

/// Opens a NATS JetStream store: its streams and the group's durable
/// consumer must exist (nothing is created); the CLI never pulls from it.
async fn open_nats(url: &str, opt: &StoreOpt) -> Result<Arc<dyn Inspect>> {
    let mut builder = soiree_nats::NatsStore::builder(url)
        .create_missing(false)
        .request_timeout(CONNECT_TIMEOUT);
    if let Some(group) = &opt.group {
        builder = builder.group(group);
    }
    if let Some(prefix) = &opt.prefix {
        builder = builder.prefix(prefix);
    }
    if let Some(path) = &opt.tls_ca {
        builder = builder.tls_root_certificate(path);
    }
    match builder.build().await {
        Ok(store) => Ok(Arc::new(store)),
        Err(err) => Err(nats_error(url, err)),
    }
}

fn nats_error(url: &str, err: soiree_nats::Error) -> Error {
    use soiree_nats::Error as E;
    match err {
        E::Connect { server, cause } => Error::Unreachable {
            kind: "nats",
            server,
            reason: scrub(&cause, url),
        },
        E::InvalidOption { .. } => Error::BadUrl {
            scheme: "nats".to_owned(),
            reason: scrub(&err.to_string(), url),
        },
        missing @ E::Missing { .. } => Error::Missing {
            kind: "nats",
            reason: missing.to_string(),
        },
        other => Error::Store {
            kind: "nats".to_owned(),
            reason: scrub(&other.to_string(), url),
        },
    }
}

async fn open_postgres(url: &str, opt: &StoreOpt, access: Access) -> Result<Arc<dyn Inspect>> {
    // sqlx reports a refused connection as a pool timeout, after the
    // acquire timeout: try the address first, for a prompt, precise error.
    if let Some(server) = tcp_address(url) {
        let connect = tokio::net::TcpStream::connect(server.clone());
        let reason = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(_)) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(_) => Some(format!("no answer within {CONNECT_TIMEOUT:?}")),
        };
        if let Some(reason) = reason {
            return Err(Error::Unreachable {
                kind: "postgres",
                server,
                reason,
            });
        }
    }
    let mut builder = soiree_sql::PostgresStore::builder(url)
        .consumer(CONSUMER)
        .create_missing(false)
        .read_only(access == Access::Inspect)
        .listen(false)
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(5));
    if let Some(group) = &opt.group {
        builder = builder.group(group);
    }
    if let Some(schema) = &opt.schema {
        builder = builder.schema(schema);
    }
    match builder.build().await {
        Ok(store) => Ok(Arc::new(store)),
        Err(err) => Err(sql_error("postgres", url, err)),
    }
}

async fn open_sqlite(
    path: &Path,
    query: Option<&str>,
    opt: &StoreOpt,
    access: Access,
) -> Result<Arc<dyn Inspect>> {
    // sqlx would create a missing file: inspecting never does.
    if !path.is_file() {
        return Err(Error::NoSuchFile {
            path: path.display().to_string(),
        });
    }
    // The URL's options (`mode=ro`, …) go to sqlx with the file.
    let target = match query {
        Some(query) => PathBuf::from(format!("sqlite:{}?{query}", path.display())),
        None => path.to_path_buf(),
    };
    let mut builder = soiree_sql::SqliteStore::builder(target)
        .consumer(CONSUMER)
        .create_missing(false)
        .read_only(access == Access::Inspect)
        .max_connections(2);
    if let Some(group) = &opt.group {
        builder = builder.group(group);
    }
    match builder.build().await {
        Ok(store) => Ok(Arc::new(store)),
        Err(err) => Err(sql_error("sqlite", "", err)),
    }
}

/// How long opening a PostgreSQL store waits for the server.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `host:port` of a PostgreSQL URL naming one TCP host (not a socket
/// directory, a host list or a `host=` parameter).
fn tcp_address(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if parsed
        .query_pairs()
        .any(|(key, _)| key == "host" || key == "hostaddr")
    {
        return None;
    }
    let host = parsed
        .host_str()
        .filter(|host| !host.is_empty() && !host.contains(','))?;
    Some(format!("{host}:{}", parsed.port().unwrap_or(5432)))
}

fn sql_error(kind: &'static str, url: &str, err: soiree_sql::Error) -> Error {
    use soiree_sql::Error as E;
    let reason = scrub(&err.to_string(), url);
    match err {
        E::Database(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_))
            if kind == "postgres" =>
        {
            Error::Unreachable {
                kind,
                server: server_address(url, 5432),
                reason,
            }
        }
        E::Connect { server, reason } => Error::Unreachable {
            kind,
            server,
            reason: scrub(&reason, url),
        },
        E::InvalidConfig(reason) => Error::BadUrl {
            scheme: kind.to_owned(),
            reason: scrub(&reason, url),
        },
        E::NotAStore { .. } | E::NoSuchGroup { .. } => Error::Missing { kind, reason },
        _ if reason.contains("no such table")
            || (reason.contains("relation") && reason.contains("does not exist")) =>
        {
            Error::Store {
                kind: kind.to_owned(),
                reason: format!(
                    "{reason} (not a soiree store, or one its application has not migrated yet)"
                ),
            }
        }
        _ => Error::Store {
            kind: kind.to_owned(),
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_urls_name_a_nats_store() {
        assert_eq!(
            Target::parse("nats://127.0.0.1:4222").unwrap(),
            Target::Nats("nats://127.0.0.1:4222".into())
        );
        assert!(matches!(
            Target::parse("nats://a:4222,nats://b:4222").unwrap(),
            Target::Nats(_)
        ));
        assert!(matches!(
            Target::parse("tls://h:4222").unwrap(),
            Target::Nats(_)
        ));
    }

    #[test]
    fn urls_name_their_store() {
        assert_eq!(
            Target::parse("redis://127.0.0.1:6379/0").unwrap(),
            Target::Redis("redis://127.0.0.1:6379/0".into())
        );
        assert!(matches!(
            Target::parse("rediss://h").unwrap(),
            Target::Redis(_)
        ));
        assert!(matches!(
            Target::parse("postgresql://u:p@h/db").unwrap(),
            Target::Postgres(_)
        ));
        assert!(matches!(
            Target::parse("postgres://h/db").unwrap(),
            Target::Postgres(_)
        ));
        let sqlite = |path: &str, query: Option<&str>| Target::Sqlite {
            path: path.into(),
            query: query.map(str::to_owned),
        };
        assert_eq!(
            Target::parse("sqlite:///var/lib/events.db").unwrap(),
            sqlite("/var/lib/events.db", None)
        );
        assert_eq!(
            Target::parse("sqlite://events.db?mode=ro").unwrap(),
            sqlite("events.db", Some("mode=ro"))
        );
        assert_eq!(
            Target::parse("sqlite:data/events.db").unwrap(),
            sqlite("data/events.db", None)
        );
    }

    #[test]
    fn bad_urls_name_the_scheme_not_the_password() {
        let err = Target::parse("mysql://root:hunter2@db/app").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(text.contains("\"mysql\""), "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        for path in ["orders.db", "./x.db", "/abs/x.db"] {
            let err = Target::parse(path).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{path}: {err}");
            let text = err.to_string();
            assert!(text.contains(&format!("sqlite:{path}")), "{text}");
        }

        let err = Target::parse("redis://:hunter2@[bad").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("bad redis store url"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        for url in ["sqlite:", "sqlite://", "sqlite::memory:"] {
            let err = Target::parse(url).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{url}: {err}");
        }
    }

    #[test]
    fn addresses_and_scrubbing() {
        assert_eq!(
            server_address("redis://:pw@10.0.0.1/0", 6379),
            "10.0.0.1:6379"
        );
        assert_eq!(
            server_address("postgres://u:pw@db.example:5433/x", 5432),
            "db.example:5433"
        );
        assert_eq!(
            scrub(
                "auth failed for p@ss and p%40ss",
                "postgres://u:p%40ss@h/db"
            ),
            "auth failed for *** and ***"
        );
        assert_eq!(
            scrub("bad s3cret", "redis+unix:///run/r.sock?pass=s3cret"),
            "bad ***"
        );
    }

    #[test]
    fn postgres_tcp_addresses() {
        assert_eq!(
            tcp_address("postgres://u:pw@db:5433/x").as_deref(),
            Some("db:5433")
        );
        assert_eq!(
            tcp_address("postgresql://127.0.0.1/x").as_deref(),
            Some("127.0.0.1:5432")
        );
        assert_eq!(tcp_address("postgres:///x?host=/run/postgresql"), None);
        assert_eq!(tcp_address("postgres://h1,h2/x"), None);
    }

    #[tokio::test]
    async fn a_missing_sqlite_file_is_not_created() {
        let path =
            std::env::temp_dir().join(format!("soiree-cli-missing-{}.db", std::process::id()));
        let opt = StoreOpt {
            store: Some(format!("sqlite://{}", path.display())),
            ..StoreOpt::default()
        };
        let err = open(&opt, Access::Inspect).await.unwrap_err();
        assert_eq!(err.exit_code(), 3, "{err}");
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!path.exists());
    }
}
