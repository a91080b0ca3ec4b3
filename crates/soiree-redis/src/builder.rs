//! Configuring and connecting a [`RedisStore`].

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use soiree::MetricsRegistry;

use crate::redact::{redact_url, url_error};
use crate::{Error, RedisStore, Result};

/// Settings of a [`RedisStore`], set through [`RedisStoreBuilder`].
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) prefix: String,
    pub(crate) max_len: Option<usize>,
    pub(crate) results_max_len: Option<usize>,
    pub(crate) dead_letter_max_len: Option<usize>,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) claim_timeout: Duration,
    pub(crate) max_deliveries: u32,
    pub(crate) events_ttl: Option<Duration>,
    pub(crate) results_ttl: Option<Duration>,
    pub(crate) dedup_ttl: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) on_failure: FailurePolicy,
    pub(crate) remove_idle_consumers: Option<Duration>,
    /// Build creates the stream and group when missing.
    pub(crate) create_missing: bool,
    /// No background writes (maintenance), nothing created; repairs refused.
    pub(crate) read_only: bool,
}

/// What the store does with a delivery the bus reports as failed (through
/// [`EventQueue::fail`](soiree::EventQueue::fail)): its listeners still
/// failed or panicked after their retries, or its topic is invalid.
///
/// # Examples
///
/// ```no_run
/// use soiree_redis::{FailurePolicy, RedisStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree_redis::Result<()> {
/// let store = RedisStore::builder("redis://127.0.0.1:6379")
///     .on_failure(FailurePolicy::Redeliver)
///     .build()
///     .await?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Move it to the dead-letter stream with the error, at once (the
    /// default): listable with [`RedisStore::dead_letters`], replayable with
    /// [`RedisStore::replay_dead_letters`].
    #[default]
    DeadLetter,
    /// Leave it pending: it is delivered again after the claim timeout,
    /// and dead-lettered with its last error once it has been delivered
    /// `max_deliveries` times.
    Redeliver,
    /// Acknowledge it: the error reaches only the bus's error handler, the
    /// log and the results stream.
    Acknowledge,
}

/// Builds a [`RedisStore`]: `RedisStore::builder(url)…build().await`.
///
/// | option | default | what it does |
/// |---|---|---|
/// | [`prefix`](Self::prefix) | `soiree` | keys are `{prefix}:events`, `{prefix}:dead`, … |
/// | [`max_len`](Self::max_len) | 1,000,000 | approximate MAXLEN of the events stream |
/// | [`results_max_len`](Self::results_max_len) | 1,000,000 | approximate MAXLEN of the results stream |
/// | [`dead_letter_max_len`](Self::dead_letter_max_len) | 100,000 | approximate MAXLEN of the dead-letter stream |
/// | [`group`](Self::group) | `soiree` | consumer group: processes with the same group share the work |
/// | [`consumer`](Self::consumer) | `<host>-<instance id>` | this process's consumer name in the group, stable across restarts |
/// | [`instance_id`](Self::instance_id) | `0` | the instance id in the default consumer name |
/// | [`claim_timeout`](Self::claim_timeout) | 30 s | idle time after which another consumer's pending entry is claimed |
/// | [`max_deliveries`](Self::max_deliveries) | 5 | deliveries after which an entry is dead-lettered |
/// | [`events_ttl`](Self::events_ttl) | none | drop events older than this from the stream |
/// | [`results_ttl`](Self::results_ttl) | none | drop results older than this |
/// | [`dedup_ttl`](Self::dedup_ttl) | 7 days | how long handler successes are remembered |
/// | [`response_timeout`](Self::response_timeout) | 5 s | how long to wait for a (non-blocking) reply |
/// | [`remove_idle_consumers`](Self::remove_idle_consumers) | 1 day | remove consumers with nothing pending idle for this long |
/// | [`on_failure`](Self::on_failure) | [`FailurePolicy::DeadLetter`] | what happens to a delivery whose listeners failed |
/// | [`create_missing`](Self::create_missing) | on | create the stream and group when missing (off: open only an existing one) |
/// | [`read_only`](Self::read_only) | off | inspect only: no background task, nothing created, repairs refused |
/// | [`metrics_registry`](Self::metrics_registry) | [`MetricsRegistry::global`] | where the metrics go |
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use soiree_redis::RedisStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree_redis::Result<()> {
/// let store = RedisStore::builder("redis://127.0.0.1:6379")
///     .prefix("orders")
///     .group("order-workers")
///     .claim_timeout(Duration::from_secs(60))
///     .max_deliveries(10)
///     .build()
///     .await?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct RedisStoreBuilder {
    url: String,
    options: Options,
    /// Set by [`RedisStoreBuilder::consumer`]; otherwise `<host>-<instance id>`.
    consumer: Option<String>,
    instance_id: String,
    registry: Option<MetricsRegistry>,
    /// PEM root certificate(s) to trust for `rediss://` instead of the system's.
    #[cfg(feature = "tls")]
    tls_root_cert: Option<Vec<u8>>,
}

/// Shows the URL with its password masked (`redis://user:***@host`).
impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &redact_url(&self.url))
            .field("options", &self.options)
            .field("consumer", &self.consumer)
            .field("instance_id", &self.instance_id)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            options: Options {
                prefix: "soiree".to_owned(),
                max_len: Some(1_000_000),
                results_max_len: Some(1_000_000),
                dead_letter_max_len: Some(100_000),
                group: "soiree".to_owned(),
                consumer: String::new(),
                claim_timeout: Duration::from_secs(30),
                max_deliveries: 5,
                events_ttl: None,
                results_ttl: None,
                dedup_ttl: Duration::from_secs(7 * 24 * 3600),
                response_timeout: Duration::from_secs(5),
                on_failure: FailurePolicy::DeadLetter,
                remove_idle_consumers: Some(DAY),
                create_missing: true,
                read_only: false,
            },
            consumer: None,
            instance_id: "0".to_owned(),
            registry: None,
            #[cfg(feature = "tls")]
            tls_root_cert: None,
        }
    }

    /// Sets the prefix of the store's keys (default `soiree`). Keys are
    /// `{prefix}:events`, `{prefix}:results`, `{prefix}:dead`, the success
    /// records `{prefix}:done@<group length>:<group>:<event id>`, and
    /// `{prefix}:error:<event id>` (the crate docs list them all): the
    /// braces delimit the prefix (so `tenant-1` and `tenant-10` never share
    /// a key) and make it a Redis Cluster hash tag (all of a store's keys
    /// are in one slot).
    ///
    /// Checked by [`build`](Self::build): non-empty, at most 128 ASCII
    /// letters, digits and `-_.:/`, not ending with `:`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.options.prefix = prefix.into();
        self
    }

    /// Sets the approximate maximum length of the events stream (`None`: no
    /// trimming). Keep it well above the largest backlog you expect: Redis
    /// trims the oldest entries whether or not they were handled.
    pub fn max_len(mut self, max_len: Option<usize>) -> Self {
        self.options.max_len = max_len;
        self
    }

    /// Sets the approximate maximum length of the results stream.
    pub fn results_max_len(mut self, max_len: Option<usize>) -> Self {
        self.options.results_max_len = max_len;
        self
    }

    /// Sets the approximate maximum length of the dead-letter stream.
    pub fn dead_letter_max_len(mut self, max_len: Option<usize>) -> Self {
        self.options.dead_letter_max_len = max_len;
        self
    }

    /// Sets the consumer group (default `soiree`). Buses whose stores share
    /// a prefix and a group share the work; different groups each get every
    /// event.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.options.group = group.into();
        self
    }

    /// Sets this process's consumer name in the group (default
    /// `<host>-<instance id>`, see [`instance_id`](Self::instance_id)). Keep
    /// it stable across restarts and unique among the live processes of the
    /// group: a process restarted under the same name first re-reads the
    /// entries it had not acknowledged, without waiting for the claim
    /// timeout.
    pub fn consumer(mut self, consumer: impl Into<String>) -> Self {
        self.consumer = Some(consumer.into());
        self
    }

    /// Sets the instance id of the default consumer name
    /// `<host>-<instance id>` (default `0`; a second store built in the same
    /// process gets `-2` appended, a third `-3`, in build order). Give each
    /// process on a host its own id that it keeps across restarts — a
    /// replica index, a systemd instance name — so that a restarted process
    /// finds its own pending entries; two live processes with the same
    /// consumer name would re-read each other's entries at start.
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = id.into();
        self
    }

    /// Sets how long an entry may stay pending with a consumer before
    /// another consumer claims it (default 30 s; 1 ms to 365 days). The
    /// bus extends the entries it runs or holds every third of it, so a
    /// slow listener keeps its entry; what this bounds is how soon the
    /// entries of a consumer that died (or hung without a listener
    /// timeout) go to another one.
    pub fn claim_timeout(mut self, timeout: Duration) -> Self {
        self.options.claim_timeout = timeout;
        self
    }

    /// Sets after how many deliveries an entry goes to the dead-letter
    /// stream instead of being delivered again (default 5).
    pub fn max_deliveries(mut self, max: u32) -> Self {
        self.options.max_deliveries = max;
        self
    }

    /// Drops events older than `ttl` from the events stream (the Go package's
    /// `WithEventsTTL`), checked about once a second (1 s to 3,650 days).
    /// Entries still undelivered are dropped too: choose a TTL far above
    /// your backlog.
    pub fn events_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.options.events_ttl = ttl;
        self
    }

    /// Drops results older than `ttl` from the results stream
    /// (`WithResultsTTL`; 1 s to 3,650 days).
    pub fn results_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.options.results_ttl = ttl;
        self
    }

    /// Sets how long the set of succeeded handlers of an event id is kept
    /// (`WithDedupTTL`, default 7 days; 1 s to 3,650 days, in whole seconds):
    /// a redelivery or replay after that runs every listener again.
    pub fn dedup_ttl(mut self, ttl: Duration) -> Self {
        self.options.dedup_ttl = ttl;
        self
    }

    /// Sets how long to wait for Redis to answer a command (default 5 s; 1 ms
    /// to 1 day); blocking reads wait for the poll time plus this. It is
    /// also the deadline of every write from hand-over to answer (an emit
    /// fails with [`Error::Unanswered`](crate::Error::Unanswered) after it),
    /// and how long a bus's `close` waits for its last acknowledgements
    /// after its listeners finished.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.options.response_timeout = timeout;
        self
    }

    /// Sets what happens to a delivery whose listeners still failed (or
    /// panicked) after their retries, or whose topic is invalid (default
    /// [`FailurePolicy::DeadLetter`]).
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.options.on_failure = policy;
        self
    }

    /// Removes from the group the consumers (of any process) that have
    /// nothing pending and have not read for `idle` (default 1 day; `None`
    /// keeps them forever; 1 s to 3,650 days). A consumer that crashed and
    /// never came back under its name otherwise stays listed in the group
    /// for good. Checked atomically in a script, so a consumer with pending
    /// entries is never removed; a live one that is removed is recreated by
    /// its next read.
    pub fn remove_idle_consumers(mut self, idle: Option<Duration>) -> Self {
        self.options.remove_idle_consumers = idle;
        self
    }

    /// Whether [`build`](Self::build) creates the events stream and the
    /// consumer group when they do not exist (default `true`). With
    /// `false` it opens only an existing store and group: it fails with
    /// [`Error::NotAStore`] (naming the prefixes that hold a store) or
    /// [`Error::NoSuchGroup`] (naming the groups that exist). For tools that
    /// operate a store (replay, purge) without consuming from it.
    pub fn create_missing(mut self, create: bool) -> Self {
        self.options.create_missing = create;
        self
    }

    /// Opens the store for inspection only (default `false`): as
    /// `create_missing(false)`, with no background task (no trimming, no
    /// removal of idle consumers), and repairs through
    /// [`soiree::Inspect`] (replay, purge) are refused. The commands it
    /// sends are read commands (see the CLI's README for the ACL they need).
    /// Do not consume from such a store.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.options.read_only = read_only;
        self
    }

    /// Trusts the root certificate(s) in `pem` for a `rediss://` URL
    /// instead of the system's roots (a private CA). Needs the `tls`
    /// feature.
    #[cfg(feature = "tls")]
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_cert = Some(pem.into());
        self
    }

    /// Reports metrics to `registry` instead of [`MetricsRegistry::global`].
    pub fn metrics_registry(mut self, registry: MetricsRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Connects to Redis and creates the consumer group (and the stream)
    /// if they do not exist (unless [`create_missing`](Self::create_missing)
    /// is off or the store is [`read_only`](Self::read_only): then checks
    /// that they exist).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad URL, prefix or option (the message
    /// never shows the URL's password), [`Error::Auth`] when Redis refuses
    /// the credentials, [`Error::Redis`] when Redis cannot be reached,
    /// [`Error::NotAStore`] and [`Error::NoSuchGroup`] when the store or
    /// group does not exist and may not be created.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is kept from a cancelled call.
    pub async fn build(self) -> Result<RedisStore> {
        if self.consumer.is_none() && self.instance_id.is_empty() {
            return Err(Error::InvalidConfig("instance_id must not be empty".into()));
        }
        let mut options = self.options.clone();
        let o = &options;
        crate::keys::validate_prefix(&o.prefix)?;
        if o.max_deliveries == 0 {
            return Err(Error::InvalidConfig(
                "max_deliveries must be at least 1".into(),
            ));
        }
        check_duration("claim_timeout", o.claim_timeout, MILLI, YEAR)?;
        check_duration("response_timeout", o.response_timeout, MILLI, DAY)?;
        check_duration("dedup_ttl", o.dedup_ttl, SECOND, 10 * YEAR)?;
        for (name, ttl) in [
            ("events_ttl", o.events_ttl),
            ("results_ttl", o.results_ttl),
            ("remove_idle_consumers", o.remove_idle_consumers),
        ] {
            if let Some(ttl) = ttl {
                check_duration(name, ttl, SECOND, 10 * YEAR)?;
            }
        }
        if o.group.is_empty() || self.consumer.as_deref() == Some("") {
            return Err(Error::InvalidConfig(
                "group and consumer names must not be empty".into(),
            ));
        }
        if [o.max_len, o.results_max_len, o.dead_letter_max_len].contains(&Some(0)) {
            return Err(Error::InvalidConfig(
                "a stream max length must be positive".into(),
            ));
        }
        let client = self
            .client()
            .map_err(|err| Error::InvalidConfig(url_error(&self.url, &err)))?;
        let registry = self
            .registry
            .unwrap_or_else(|| MetricsRegistry::global().clone());
        let lease = match self.consumer {
            Some(consumer) => {
                options.consumer = consumer;
                None
            }
            None => {
                let (name, lease) =
                    default_consumer_name(&self.instance_id, &options.prefix, &options.group);
                options.consumer = name;
                Some(lease)
            }
        };
        RedisStore::connect_with(client, options, lease, &registry).await
    }
}

const MILLI: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(24 * 3600);
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// Checks that a duration option is within `min..=max`: Redis takes them as
/// milliseconds or seconds in a signed 64-bit integer, and a value it
/// rejects would give a store that builds but cannot consume or write.
fn check_duration(name: &str, value: Duration, min: Duration, max: Duration) -> Result<()> {
    if value < min || value > max {
        return Err(Error::InvalidConfig(format!(
            "{name} must be between {} and {}, got {value:?}",
            human(min),
            human(max)
        )));
    }
    Ok(())
}

fn human(d: Duration) -> String {
    match d.as_secs() {
        0 => format!("{} ms", d.as_millis()),
        s if s >= YEAR.as_secs() => format!("{} days", s / DAY.as_secs()),
        s if s >= DAY.as_secs() => format!("{} day(s)", s / DAY.as_secs()),
        s => format!("{s} s"),
    }
}

impl RedisStoreBuilder {
    #[cfg(not(feature = "tls"))]
    fn client(&self) -> redis::RedisResult<redis::Client> {
        redis::Client::open(self.url.as_str())
    }

    #[cfg(feature = "tls")]
    fn client(&self) -> redis::RedisResult<redis::Client> {
        // rustls needs a process-wide crypto provider: ring, unless the
        // application installed one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        match &self.tls_root_cert {
            None => redis::Client::open(self.url.as_str()),
            Some(root) => redis::Client::build_with_tls(
                self.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root.clone()),
                },
            ),
        }
    }
}

/// A default consumer name in use by a live store of this process, given
/// back when the store is dropped.
#[derive(Debug)]
pub(crate) struct NameLease(String);

static LEASED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

impl Drop for NameLease {
    fn drop(&mut self) {
        LEASED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// `<host>-<instance id>`, or `<host>-<instance id>-<n>` when a live store
/// of this process already uses that name with the same prefix and group
/// (the second gets `-2`, and so on): stable across restarts for a process
/// with one store per prefix and group.
fn default_consumer_name(instance_id: &str, prefix: &str, group: &str) -> (String, NameLease) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "soiree".to_owned());
    let base = format!("{host}-{instance_id}");
    let mut leased = LEASED.lock().unwrap_or_else(PoisonError::into_inner);
    let mut n = 1;
    loop {
        let name = match n {
            1 => base.clone(),
            n => format!("{base}-{n}"),
        };
        let key = format!("{prefix}\0{group}\0{name}");
        if leased.insert(key.clone()) {
            return (name, NameLease(key));
        }
        n += 1;
    }
}
