//! Options and connection: `NatsStore::builder(url)…build().await`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use soiree::MetricsRegistry;

use crate::redact::{redact_urls, scrub};
use crate::{Error, NatsStore, Result};

/// What the store does with a delivery whose listener still failed after
/// the bus's retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Move it to the dead-letter stream with the error, at once (the
    /// default): listable and replayable through [`soiree::Inspect`].
    #[default]
    DeadLetter,
    /// Hand it back with a delay (a NAK with delay: the retry delay,
    /// doubled per delivery up to a minute), and dead-letter it with its
    /// last error once it has been delivered `max_deliveries` times.
    Redeliver,
    /// Acknowledge it: the error reaches only the bus's error handler, the
    /// log and the results stream.
    Acknowledge,
}

/// How the store authenticates: at most one of these.
#[derive(Clone, Default)]
pub(crate) enum Auth {
    #[default]
    None,
    UserPassword(String, String),
    Token(String),
    Nkey(String),
    CredsFile(PathBuf),
}

impl Auth {
    fn kind(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::UserPassword(..) => "user and password",
            Auth::Token(_) => "token",
            Auth::Nkey(_) => "nkey",
            Auth::CredsFile(_) => "credentials file",
        }
    }

    /// The secrets to scrub from the client's error texts.
    fn secrets(&self) -> Vec<String> {
        match self {
            Auth::UserPassword(_, password) => vec![password.clone()],
            Auth::Token(token) => vec![token.clone()],
            Auth::Nkey(seed) => vec![seed.clone()],
            _ => Vec::new(),
        }
    }
}

/// The URLs without user info, and the credentials of the first URL that
/// had some (`user:password@`: a user and password; `token@`: a token).
fn strip_credentials(urls: &str) -> (Vec<String>, Option<Auth>) {
    let mut found = None;
    let mut out = Vec::new();
    for part in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let with_scheme = if part.contains("://") {
            part.to_owned()
        } else {
            format!("nats://{part}")
        };
        let Ok(mut url) = url::Url::parse(&with_scheme) else {
            out.push(part.to_owned());
            continue;
        };
        let decode = |text: &str| {
            url::form_urlencoded::parse(format!("x={text}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let user = decode(url.username());
        let password = url.password().map(decode);
        if found.is_none() && !user.is_empty() {
            found = Some(match password {
                Some(password) => Auth::UserPassword(user, password),
                None => Auth::Token(user),
            });
        }
        let _ = url.set_username("");
        let _ = url.set_password(None);
        out.push(url.to_string().trim_end_matches('/').to_owned());
    }
    (out, found)
}

/// The options of a built store.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) prefix: String,
    pub(crate) group: String,
    pub(crate) replicas: usize,
    pub(crate) claim_timeout: Duration,
    pub(crate) max_deliveries: u32,
    pub(crate) on_failure: FailurePolicy,
    pub(crate) retry_delay: Duration,
    pub(crate) filter: Option<String>,
    pub(crate) duplicate_window: Duration,
    pub(crate) max_age: Option<Duration>,
    pub(crate) dedup_ttl: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) memory: bool,
    pub(crate) create_missing: bool,
    /// Partitions of keyed events; 0: not ordered by key.
    pub(crate) partitions: u16,
}

/// Builds a [`NatsStore`]: `NatsStore::builder(url)…build().await`.
///
/// | option | default | what it does |
/// |---|---|---|
/// | [`prefix`](Self::prefix) | `soiree` | subjects `<prefix>.>`, streams `SOIREE_<prefix>_EVENTS`, `…_DEAD`, `…_RESULTS`, bucket `SOIREE_<prefix>_DEDUP` |
/// | [`group`](Self::group) | `soiree` | the durable pull consumer: processes with the same group share the work |
/// | [`replicas`](Self::replicas) | 1 | stream replicas (3 on a 3-server cluster) |
/// | [`claim_timeout`](Self::claim_timeout) | 30 s | AckWait: how long a delivery stays with a consumer that neither acknowledges nor extends it |
/// | [`max_deliveries`](Self::max_deliveries) | 5 | deliveries after which an event goes to the dead letters |
/// | [`on_failure`](Self::on_failure) | dead letter | what a failed delivery becomes ([`FailurePolicy`]) |
/// | [`retry_delay`](Self::retry_delay) | 1 s | first NAK delay under [`FailurePolicy::Redeliver`] |
/// | [`filter`](Self::filter) | all topics | one topic pattern the group takes (others never reach it) |
/// | [`duplicate_window`](Self::duplicate_window) | 2 min | a publish with an event id seen within it is stored once |
/// | [`max_age`](Self::max_age) | none | events older than this are removed from the stream |
/// | [`dedup_ttl`](Self::dedup_ttl) | 7 days | how long listener successes are remembered |
/// | [`request_timeout`](Self::request_timeout) | 10 s | every request and publish ack is answered within it or fails (creating a stream, which a cluster electing leaders can take longer to place, is asked up to 3 times) |
/// | [`metrics_registry`](Self::metrics_registry) | [`MetricsRegistry::global`] | where the store's series go (`soiree_store_*{backend="nats"}`) |
/// | [`ordered_by_key`](Self::ordered_by_key) | off | events with the same ordering key run one at a time, in stream order, across the group |
/// | [`create_missing`](Self::create_missing) | true | create the streams and the consumer, or fail when they are missing |
/// | credentials | none | [`user_and_password`](Self::user_and_password), [`token`](Self::token), [`nkey`](Self::nkey), [`credentials_file`](Self::credentials_file), or in the URL |
/// | TLS | as the URL (`tls://`) | [`require_tls`](Self::require_tls), [`tls_root_certificate`](Self::tls_root_certificate), [`tls_client_certificate`](Self::tls_client_certificate) |
///
/// Debug output shows the servers without credentials, and which kind of
/// credentials is set, never them.
#[derive(Clone)]
pub struct NatsStoreBuilder {
    urls: String,
    options: Options,
    auth: Auth,
    require_tls: bool,
    root_cert: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
    registry: Option<MetricsRegistry>,
}

impl fmt::Debug for NatsStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsStoreBuilder")
            .field("servers", &redact_urls(&self.urls))
            .field("options", &self.options)
            .field("auth", &self.auth.kind())
            .field("require_tls", &self.require_tls)
            .field("root_cert", &self.root_cert)
            .field("client_cert", &self.client_cert)
            .finish()
    }
}

impl NatsStoreBuilder {
    pub(crate) fn new(urls: &str) -> Self {
        Self {
            urls: urls.to_owned(),
            options: Options {
                prefix: "soiree".into(),
                group: "soiree".into(),
                replicas: 1,
                claim_timeout: Duration::from_secs(30),
                max_deliveries: 5,
                on_failure: FailurePolicy::DeadLetter,
                retry_delay: Duration::from_secs(1),
                filter: None,
                duplicate_window: Duration::from_secs(120),
                max_age: None,
                dedup_ttl: Duration::from_secs(7 * 24 * 3600),
                request_timeout: Duration::from_secs(10),
                max_in_flight: 1024,
                memory: false,
                create_missing: true,
                partitions: 0,
            },
            auth: Auth::None,
            require_tls: false,
            root_cert: None,
            client_cert: None,
            registry: None,
        }
    }

    /// The subject prefix and the name part of the streams: ASCII letters,
    /// digits and `-`, at most 64 bytes. Stores with different prefixes on
    /// one server never see each other's events.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.options.prefix = prefix.into();
        self
    }

    /// The consumer group (the durable consumer's name): ASCII letters,
    /// digits, `-` and `_`, at most 64 bytes.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.options.group = group.into();
        self
    }

    /// How many servers hold each stream (1 to 5; 3 on a 3-server cluster).
    #[must_use]
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.options.replicas = replicas;
        self
    }

    /// How long a delivery stays with a consumer that neither acknowledges
    /// nor extends it (the consumer's AckWait); the bus extends the
    /// deliveries it runs every third of it.
    #[must_use]
    pub fn claim_timeout(mut self, timeout: Duration) -> Self {
        self.options.claim_timeout = timeout;
        self
    }

    /// Deliveries after which an event goes to the dead letters (at least 1).
    #[must_use]
    pub fn max_deliveries(mut self, max: u32) -> Self {
        self.options.max_deliveries = max;
        self
    }

    /// What a delivery whose listeners failed becomes.
    #[must_use]
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.options.on_failure = policy;
        self
    }

    /// The first NAK delay under [`FailurePolicy::Redeliver`].
    #[must_use]
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.options.retry_delay = delay;
        self
    }

    /// Only events whose topic matches `pattern` reach this group: `*`
    /// and a trailing `**` are filtered by the server, a `**` inside the
    /// pattern by the store (events it filters out are acknowledged).
    #[must_use]
    pub fn filter(mut self, pattern: impl Into<String>) -> Self {
        self.options.filter = Some(pattern.into());
        self
    }

    /// The stream's duplicate window.
    #[must_use]
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.options.duplicate_window = window;
        self
    }

    /// Events older than this are removed from the stream (`None`: kept).
    #[must_use]
    pub fn max_age(mut self, age: Option<Duration>) -> Self {
        self.options.max_age = age;
        self
    }

    /// How long listener successes are remembered for de-duplication.
    #[must_use]
    pub fn dedup_ttl(mut self, ttl: Duration) -> Self {
        self.options.dedup_ttl = ttl;
        self
    }

    /// Reports the store's series (`soiree_store_*{backend="nats",
    /// store=<events stream>, group=<group>}`, see [`soiree::StoreMetrics`])
    /// to `registry` instead of [`MetricsRegistry::global`].
    #[must_use]
    pub fn metrics_registry(mut self, registry: MetricsRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Every request (and publish acknowledgement) is answered within this
    /// or fails.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.options.request_timeout = timeout;
        self
    }

    /// Publishes awaiting their acknowledgement at once, at most.
    #[must_use]
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.options.max_in_flight = max;
        self
    }

    /// Keeps the streams in memory rather than on disk (tests, caches).
    #[must_use]
    pub fn memory_storage(mut self, memory: bool) -> Self {
        self.options.memory = memory;
        self
    }

    /// Whether `build` creates the streams and the group's consumer when
    /// they are missing (the default), or fails with [`Error::Missing`]
    /// (tools that only inspect, such as the `soiree` CLI).
    #[must_use]
    pub fn create_missing(mut self, create: bool) -> Self {
        self.options.create_missing = create;
        self
    }

    /// Hands events with the same ordering key (the
    /// [`PROPERTY_KEY`](crate::PROPERTY_KEY) property, `soiree.key`, a
    /// string) to the group one at a time, in stream order, across every
    /// process of the group; `partitions` (1 to
    /// [`MAX_PARTITIONS`](crate::MAX_PARTITIONS)) is how many keys' events
    /// may run at once. 0 turns it off (the default).
    ///
    /// How: a keyed event is published to partition `i` (a stable hash of
    /// the key, [`partition_of`](crate::partition_of)), the subject
    /// `<prefix>_p<i>.<topic>` (unkeyed events stay at `<prefix>.<topic>`),
    /// and the group reads each partition through a durable consumer of its
    /// own, `<group>~p<i>`, with `max_ack_pending = 1`: JetStream hands out
    /// a partition's next event only once the one before is acknowledged
    /// or terminated, to whichever process asks. Every process asks every
    /// partition, one event each, as far as its bus has free workers.
    ///
    /// Trade-off: each partition runs one event at a time group-wide, so
    /// keyed throughput is at most `partitions` events per listener run
    /// time (plus a round trip each); keys sharing a partition wait for
    /// each other. Unkeyed events take the group's consumer at the usual
    /// speed.
    ///
    /// Failures: a delivery that fails and is redelivered
    /// ([`FailurePolicy::Redeliver`], a NAK with delay), or that a process
    /// stops acknowledging (it died: after the claim timeout), stays in
    /// front of its partition and holds back the events after it until it
    /// succeeds or is dead-lettered; a dead-lettered (terminated) or
    /// acknowledged-on-failure event lets the next through. Delivery stays
    /// at least once: a delivery whose claim timeout passed while its
    /// listener still ran is delivered again and may overlap the next one.
    ///
    /// Every store handle that emits keyed events, and every process of
    /// the group, must use the same `partitions` (a handle without the
    /// option publishes keyed events unpartitioned, and they are not
    /// ordered). Groups without the option read both layouts: without a
    /// filter their consumer takes the whole stream; with one, a group
    /// created once the stream has partition subjects takes the whole
    /// stream and the store filters (nats-server 2.9 has one filter subject
    /// per consumer, and none matches both layouts). A group created
    /// before (with a filter, or by an earlier version, whose filter
    /// `<prefix>.…` nats-server 2.9 cannot change) does not see keyed
    /// events: build a store with this option first, or delete such a
    /// group's consumer to have it made anew.
    ///
    /// A process that stops (its bus closed, or killed) may still be
    /// handed a keyed event by a pull request it left open: that event
    /// comes back after the claim timeout, and holds back its partition
    /// meanwhile. Inspection's pending and stats count the group's own
    /// consumer, not its partitions; [`EventQueue::backlog`](soiree::EventQueue::backlog)
    /// counts both.
    #[must_use]
    pub fn ordered_by_key(mut self, partitions: u16) -> Self {
        self.options.partitions = partitions;
        self
    }

    /// Authenticates with a user name and password.
    #[must_use]
    pub fn user_and_password(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.auth = Auth::UserPassword(user.into(), password.into());
        self
    }

    /// Authenticates with a token.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(token.into());
        self
    }

    /// Authenticates with an nkey seed (`SU…`).
    #[must_use]
    pub fn nkey(mut self, seed: impl Into<String>) -> Self {
        self.auth = Auth::Nkey(seed.into());
        self
    }

    /// Authenticates with a `.creds` file (a JWT and an nkey seed).
    #[must_use]
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth = Auth::CredsFile(path.into());
        self
    }

    /// Refuses to talk to the server without TLS.
    #[must_use]
    pub fn require_tls(mut self, required: bool) -> Self {
        self.require_tls = required;
        self
    }

    /// Trusts the CA certificate(s) in this PEM file.
    #[must_use]
    pub fn tls_root_certificate(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_cert = Some(path.into());
        self
    }

    /// Presents this client certificate and key (PEM files).
    #[must_use]
    pub fn tls_client_certificate(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.client_cert = Some((cert.into(), key.into()));
        self
    }

    fn validate(&self) -> Result<()> {
        let o = &self.options;
        let name_ok = |s: &str, extra: &[u8]| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || extra.contains(&b))
        };
        if !name_ok(&o.prefix, &[]) {
            return Err(Error::InvalidOption {
                option: "prefix",
                reason: "use 1 to 64 ASCII letters, digits or `-`".into(),
            });
        }
        if !name_ok(&o.group, b"_") {
            return Err(Error::InvalidOption {
                option: "group",
                reason: "use 1 to 64 ASCII letters, digits, `-` or `_`".into(),
            });
        }
        if !(1..=5).contains(&o.replicas) {
            return Err(Error::InvalidOption {
                option: "replicas",
                reason: format!("{} is not 1 to 5", o.replicas),
            });
        }
        if o.partitions > crate::MAX_PARTITIONS {
            return Err(Error::InvalidOption {
                option: "ordered_by_key",
                reason: format!(
                    "{} partitions: at most {}",
                    o.partitions,
                    crate::MAX_PARTITIONS
                ),
            });
        }
        if o.max_deliveries == 0 {
            return Err(Error::InvalidOption {
                option: "max_deliveries",
                reason: "at least 1".into(),
            });
        }
        if o.claim_timeout < Duration::from_millis(100) {
            return Err(Error::InvalidOption {
                option: "claim_timeout",
                reason: "at least 100 ms".into(),
            });
        }
        if let Some(pattern) = &o.filter
            && (pattern.trim().is_empty() || pattern.split('.').any(str::is_empty))
        {
            return Err(Error::InvalidOption {
                option: "filter",
                reason: "a topic pattern with no empty segment".into(),
            });
        }
        if self.urls.trim().is_empty() {
            return Err(Error::InvalidOption {
                option: "url",
                reason: "no server given (nats://host:4222)".into(),
            });
        }
        Ok(())
    }

    /// Connects, creates (or updates) the streams, the dedup bucket and the
    /// group's durable consumer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for an option out of range,
    /// [`Error::Connect`] when no server answers or the credentials are
    /// refused, [`Error::File`] for an unreadable credentials file,
    /// [`Error::JetStream`] when JetStream is off or refuses a stream.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: what was created stays and is reused by the next build.
    pub async fn build(self) -> Result<NatsStore> {
        self.validate()?;
        let location = redact_urls(&self.urls);
        let mut secrets = self.auth.secrets();
        // A URL may carry a password or token too.
        for part in self.urls.split(',') {
            if let Ok(url) = url::Url::parse(part.trim()) {
                if let Some(password) = url.password() {
                    secrets.push(password.to_owned());
                }
                if !url.username().is_empty() {
                    secrets.push(url.username().to_owned());
                }
            }
        }
        // And decoded (`%40` is `@`), as the client is given it.
        if let (_, Some(Auth::UserPassword(_, secret) | Auth::Token(secret))) =
            strip_credentials(&self.urls)
        {
            secrets.push(secret);
        }
        let connect_error = |cause: String| Error::Connect {
            server: location.clone(),
            cause: scrub(&cause, &secrets),
        };
        let mut connect = async_nats::ConnectOptions::new()
            .name(format!(
                "soiree-{}-{}",
                self.options.prefix, self.options.group
            ))
            .connection_timeout(self.options.request_timeout)
            .request_timeout(Some(self.options.request_timeout))
            .require_tls(self.require_tls);
        connect = match &self.auth {
            Auth::None => connect,
            Auth::UserPassword(user, password) => {
                connect.user_and_password(user.clone(), password.clone())
            }
            Auth::Token(token) => connect.token(token.clone()),
            Auth::Nkey(seed) => connect.nkey(seed.clone()),
            Auth::CredsFile(path) => {
                connect
                    .credentials_file(path)
                    .await
                    .map_err(|source| Error::File {
                        path: path.display().to_string(),
                        // The file's text is never quoted: only the kind of error.
                        source: std::io::Error::new(source.kind(), "not a readable .creds file"),
                    })?
            }
        };
        if let Some(path) = &self.root_cert {
            if !path.is_file() {
                return Err(Error::File {
                    path: path.display().to_string(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                });
            }
            connect = connect.add_root_certificates(path.clone());
        }
        if let Some((cert, key)) = &self.client_cert {
            connect = connect.add_client_certificate(cert.clone(), key.clone());
        }
        // The client logs the URLs it connects to (async-nats, at DEBUG,
        // user info included): they go to it without credentials, which
        // go as options instead.
        let (urls, from_url) = strip_credentials(&self.urls);
        if matches!(self.auth, Auth::None) {
            connect = match from_url {
                Some(Auth::UserPassword(user, password)) => {
                    connect.user_and_password(user, password)
                }
                Some(Auth::Token(token)) => connect.token(token),
                _ => connect,
            };
        }
        let client =
            tokio::time::timeout(self.options.request_timeout * 2, connect.connect(&urls[..]))
                .await
                .map_err(|_| connect_error("timed out".into()))?
                .map_err(|err| connect_error(err.to_string()))?;
        let registry = self
            .registry
            .unwrap_or_else(|| MetricsRegistry::global().clone());
        NatsStore::open(client, self.options, location, secrets, &registry).await
    }
}
