//! The store: connections, keys, options, and the base store traits.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAddOptions, StreamInfoGroupsReply, StreamTrimOptions, StreamTrimStrategy,
    StreamTrimmingMode,
};
use redis::{Client, FromRedisValue};
use soiree::{
    EventHistory, EventQueue, EventStore, HandlerDedup, MetricsRegistry, StoredEvent, StoredResult,
};
use tokio::sync::{Mutex, oneshot};

use crate::builder::{NameLease, Options};
use crate::keys::{Keys, field};
use crate::metrics::RedisMetrics;
use crate::queue::ConsumerState;
use crate::writer::{WriteLimits, Writer};
use crate::{Error, RedisStoreBuilder, Result};
use soiree::kit::DedupCache;

/// Removes the group's consumers other than ARGV[3] that have nothing
/// pending and were idle for at least ARGV[2] ms; returns their names.
/// Atomic: a consumer that has entries pending is never removed (XGROUP
/// DELCONSUMER would drop them from the pending list).
///
/// KEYS: events stream. ARGV: group, min idle ms, this consumer.
const REMOVE_IDLE_CONSUMERS: &str = r"
local removed = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, pending, idle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1]
    elseif c[i] == 'pending' then pending = c[i + 1]
    elseif c[i] == 'idle' then idle = c[i + 1] end
  end
  if name ~= ARGV[3] and pending == 0 and idle >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    removed[#removed + 1] = name
  end
end
return removed
";

/// How often the store's maintenance task refreshes the queue-length gauge,
/// applies the TTLs and (less often) removes idle consumers.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// A soiree store on Redis Streams: an at-least-once event queue shared by
/// every process in a consumer group, with handler results, de-duplication
/// by event id, dead letters, inspection and replay.
///
/// Give it to a bus with [`EventBusBuilder::store`](soiree::EventBusBuilder::store):
/// `emit` then appends the event to the stream and the bus's consumers read
/// it back through the group, run the listeners and acknowledge it. The
/// store is cheap to clone; keep a clone to inspect it.
///
/// # Examples
///
/// ```no_run
/// use soiree::EventBus;
/// use soiree_redis::RedisStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let bus = EventBus::builder().store(store.clone()).build()?;
/// bus.on_named("welcome", "user.created", |_ctx| async { Ok(()) })?;
/// bus.start()?;
/// let errors: Vec<_> = futures::StreamExt::collect(bus.emit("user.created", "ada")).await;
/// assert!(errors.is_empty(), "the event was stored");
/// bus.wait_for_idle().await;
/// bus.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) inner: Arc<Inner>,
    /// Shared by the handles given out, not by the maintenance task's
    /// view of the store: dropped with the last of them.
    _handle: Option<Arc<Handle>>,
}

/// What the store's handles hold and its maintenance task does not: it
/// goes with the last handle, even while a maintenance round runs.
struct Handle {
    /// Dropped: stops the maintenance task.
    _stop_maintenance: oneshot::Sender<()>,
    /// Keeps the default consumer name of this store for it while it lives.
    _name_lease: Option<NameLease>,
}

pub(crate) struct Inner {
    /// Shared, multiplexed connection for everything but blocking reads.
    pub(crate) conn: ConnectionManager,
    /// A second connection for XREADGROUP … BLOCK, which would otherwise
    /// hold up every command queued behind it.
    pub(crate) blocking: ConnectionManager,
    pub(crate) keys: Keys,
    pub(crate) options: Options,
    pub(crate) metrics: RedisMetrics,
    pub(crate) consumer: Mutex<ConsumerState>,
    pub(crate) dead_letter_script: redis::Script,
    pub(crate) release_script: redis::Script,
    pub(crate) extend_script: redis::Script,
    pub(crate) writer: Writer,
    /// Results and acknowledgements, one pipeline at a time: a delivery's
    /// results always reach Redis before its acknowledgement.
    pub(crate) results_writer: Writer,
    /// Shared with the results writer's failure reports (results before
    /// ack: a delivery whose result was lost is not acknowledged).
    pub(crate) dedup_cache: Arc<DedupCache>,
    started: Instant,
    next_consumer_cleanup_ms: AtomicU64,
    /// Until when (Unix ms) the group's dedup sets of earlier versions are
    /// read (see `successes`).
    pub(crate) dedup_legacy_until_ms: AtomicU64,
    pub(crate) remove_consumers_script: redis::Script,
    /// Where the server is, without credentials (`redis://host:port/db`).
    pub(crate) location: String,
}

impl RedisStore {
    /// What the results writer does with a result of `event_id` it could
    /// not write (it logs each itself): one Redis refuses for good is
    /// counted and dropped (its delivery is acknowledged, it cannot wedge
    /// it); one lost for a transient reason holds its delivery back.
    fn on_result_failure(&self, event_id: &str) -> crate::writer::OnFailure {
        let dedup = Arc::clone(&self.inner.dedup_cache);
        let refused = self.inner.metrics.results_refused.clone();
        let event_id = event_id.to_owned();
        Box::new(move |err: &Error| {
            if err.refused_for_good() {
                refused.inc();
            } else {
                dedup.results_lost(&event_id);
            }
        })
    }

    /// Waits until every result handed to the writer so far is in Redis.
    /// A failed write is logged: the result is lost, and with it the dedup
    /// record (a replay runs that listener again: at least once).
    pub(crate) async fn flush_results(&self) {
        // The writer logs each failed write itself.
        if let Err(err) = self.inner.results_writer.flush().await {
            tracing::warn!(%err, "cannot wait for the listener results to be written");
        }
    }
}

impl RedisStore {
    /// Connects with the default options (prefix `soiree:`, group `soiree`).
    ///
    /// # Errors
    ///
    /// As for [`RedisStoreBuilder::build`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).build().await
    }

    /// A builder for a store on the Redis server at `url`.
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder::new(url)
    }

    pub(crate) async fn connect_with(
        client: Client,
        options: Options,
        name_lease: Option<NameLease>,
        registry: &MetricsRegistry,
    ) -> Result<Self> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(options.response_timeout))
            .set_connection_timeout(Some(options.response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        // The address alone: a connection error names the server, never
        // the credentials of the URL.
        let server = client.get_connection_info().addr().to_string();
        let location = crate::redact::server_location(client.get_connection_info());
        let connect_error = |err: redis::RedisError| match Error::from(err) {
            Error::Redis(source)
                if source.is_connection_refusal()
                    || source.is_io_error()
                    || source.is_timeout()
                    || source.is_connection_dropped() =>
            {
                Error::Connect {
                    server: server.clone(),
                    cause: source,
                }
            }
            other => other,
        };
        let conn = ConnectionManager::new_with_config(client.clone(), config.clone())
            .await
            .map_err(connect_error)?;
        // Blocking reads are bounded by our own timeout (poll time + response timeout).
        let blocking =
            ConnectionManager::new_with_config(client, config.set_response_timeout(None))
                .await
                .map_err(connect_error)?;
        // Every write is answered within the response timeout, however long
        // a reconnection would take.
        let limits = WriteLimits {
            server: server.as_str().into(),
            timeout: options.response_timeout,
        };
        let writer = Writer::spawn(conn.clone(), crate::writer::MAX_IN_FLIGHT, limits.clone())?;
        // One pipeline at a time: results are read back in the order they
        // were saved.
        let results_writer = Writer::spawn(conn.clone(), 1, limits)?;
        let keys = Keys::new(&options.prefix, &options.group);
        let metrics = crate::metrics::store_metrics(registry, &keys.events, &options.group);
        let (stop_maintenance, maintenance_stopped) = oneshot::channel();
        let store = Self {
            inner: Arc::new(Inner {
                conn,
                blocking,
                keys,
                options,
                metrics,
                consumer: Mutex::new(ConsumerState::new()),
                dead_letter_script: redis::Script::new(crate::dead_letter::SCRIPT),
                release_script: redis::Script::new(crate::queue::RELEASE_SCRIPT),
                extend_script: redis::Script::new(crate::queue::EXTEND_SCRIPT),
                writer,
                results_writer,
                dedup_cache: Arc::default(),
                started: Instant::now(),
                next_consumer_cleanup_ms: AtomicU64::new(0),
                dedup_legacy_until_ms: AtomicU64::new(0),
                remove_consumers_script: redis::Script::new(REMOVE_IDLE_CONSUMERS),
                location,
            }),
            _handle: Some(Arc::new(Handle {
                _stop_maintenance: stop_maintenance,
                _name_lease: name_lease,
            })),
        };
        let options = &store.inner.options;
        if options.create_missing && !options.read_only {
            store.ensure_group().await?;
        } else {
            store.check_existing().await?;
            if !options.read_only {
                store.open_dedup_legacy(None).await?;
            }
        }
        if !options.read_only {
            // Inside a runtime: the writers above were spawned on it.
            tokio::spawn(maintenance(
                Arc::downgrade(&store.inner),
                maintenance_stopped,
            ));
        }
        Ok(store)
    }

    /// The consumer group this store reads with.
    pub fn group(&self) -> &str {
        &self.inner.options.group
    }

    /// This process's consumer name in the group.
    pub fn consumer_name(&self) -> &str {
        &self.inner.options.consumer
    }

    /// The key prefix (keys are `{prefix}:events`, `{prefix}:results`, …).
    pub fn prefix(&self) -> &str {
        &self.inner.options.prefix
    }

    /// The key of the events stream (the queue).
    pub fn events_key(&self) -> &str {
        &self.inner.keys.events
    }

    /// The key of the handler results stream.
    pub fn results_key(&self) -> &str {
        &self.inner.keys.results
    }

    /// The key of the dead-letter stream.
    pub fn dead_letter_key(&self) -> &str {
        &self.inner.keys.dead
    }

    /// Deletes the keys this store writes — its streams (the consumer group
    /// with them), and every group's dedup and `error:` records — and returns how
    /// many were deleted. Nothing outside `{prefix}:` is touched, nor keys
    /// of other names inside it; meant for throwaway prefixes in tests,
    /// examples and benchmarks.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when Redis cannot be read or written; keys deleted
    /// before the failure stay deleted.
    ///
    /// # Cancel safety
    ///
    /// Cancelling leaves some keys deleted and others not.
    pub async fn purge(&self) -> Result<u64> {
        let keys = &self.inner.keys;
        let mut deleted = self
            .query::<u64>(&redis::Cmd::unlink(&keys.fixed()[..]))
            .await?;
        for pattern in keys.per_event_patterns() {
            let mut cursor = 0u64;
            loop {
                let (next, found) = self.scan(&pattern, cursor).await?;
                if !found.is_empty() {
                    deleted += self.query::<u64>(&redis::Cmd::unlink(&found)).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }

    /// Runs one command on the shared connection.
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut conn = self.inner.conn.clone();
        Ok(cmd.query_async(&mut conn).await?)
    }

    /// Runs a pipeline on the shared connection.
    pub(crate) async fn query_pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T> {
        let mut conn = self.inner.conn.clone();
        Ok(pipe.query_async(&mut conn).await?)
    }

    /// One `SCAN` call from `cursor` for keys matching `pattern` (about
    /// 1000 looked at): the next cursor (0: done) and the keys found.
    pub(crate) async fn scan(&self, pattern: &str, cursor: u64) -> Result<(u64, Vec<String>)> {
        self.query(
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000),
        )
        .await
    }

    /// Creates the consumer group (and the stream) unless it exists. The
    /// group starts at the beginning of the stream, so events appended
    /// before any consumer ran are delivered. Then decides whether the
    /// group's dedup sets of earlier versions are read (see `successes`).
    pub(crate) async fn ensure_group(&self) -> Result<()> {
        let inner = &self.inner;
        let created: Result<()> = self
            .query(&redis::Cmd::xgroup_create_mkstream(
                &inner.keys.events,
                &inner.options.group,
                "0",
            ))
            .await;
        let created = match created {
            Ok(()) => true,
            Err(err) if err.code() == Some("BUSYGROUP") => false,
            Err(err) => return Err(err),
        };
        self.open_dedup_legacy(Some(created)).await
    }

    /// Appends an event to the events stream.
    pub(crate) async fn append(&self, event: &StoredEvent) -> Result<()> {
        // The one branch of events without a due time.
        if event.properties.contains_key(soiree::PROPERTY_DUE_AT)
            && self.append_delayed(event).await?
        {
            return Ok(());
        }
        self.inner
            .writer
            .write(vec![self.xadd_event(event)?])
            .await?;
        self.inner.metrics.persisted.inc();
        Ok(())
    }

    /// Appends events to the events stream, pipelined together, each with
    /// its own outcome: one that fails fails alone.
    pub(crate) async fn append_each(&self, events: &[StoredEvent]) -> Vec<Result<()>> {
        if events
            .iter()
            .any(|event| event.properties.contains_key(soiree::PROPERTY_DUE_AT))
        {
            // Delayed events go through their script, one at a time.
            let mut outcomes = Vec::with_capacity(events.len());
            for event in events {
                outcomes.push(self.append(event).await);
            }
            return outcomes;
        }
        // Every append is handed over before any is awaited, so that they
        // share pipelines.
        let pending: Vec<_> = events
            .iter()
            .map(|event| {
                self.xadd_event(event)
                    .and_then(|cmd| self.inner.writer.write_behind(vec![cmd]))
            })
            .collect();
        let mut outcomes = Vec::with_capacity(pending.len());
        for written in pending {
            let outcome = match written {
                Ok(written) => written.wait().await,
                Err(err) => Err(err),
            };
            if outcome.is_ok() {
                self.inner.metrics.persisted.inc();
            }
            outcomes.push(outcome);
        }
        outcomes
    }

    /// The XADD of an event, trimmed to the store's `max_len`, after every
    /// check of [`soiree::limits`] (made while its JSON is written).
    fn xadd_event(&self, event: &StoredEvent) -> Result<redis::Cmd> {
        let json = soiree::limits::encode_event(event).map_err(Error::Event)?;
        Ok(xadd(
            &self.inner.keys.events,
            self.inner.options.max_len,
            field::EVENT,
            &json,
        ))
    }

    /// Refreshes the queue-length gauge, applies the TTLs and removes idle
    /// consumers (when due). Run by the maintenance task every
    /// [`MAINTENANCE_INTERVAL`]; failures are only logged: this is
    /// housekeeping.
    async fn maintain(&self) {
        let inner = &self.inner;
        let now_ms = u64::try_from(inner.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Err(err) = self.backlog_count().await {
            tracing::debug!(%err, "cannot refresh the queue length");
        }
        let ttls = [
            (&inner.keys.events, inner.options.events_ttl),
            (&inner.keys.results, inner.options.results_ttl),
        ];
        if let Some(idle) = inner.options.remove_idle_consumers {
            self.remove_idle_consumers(now_ms, idle).await;
        }
        for (key, ttl) in ttls {
            let Some(ttl) = ttl else { continue };
            let min_id =
                unix_ms().saturating_sub(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
            let trimmed: Result<u64> = self
                .query(&redis::Cmd::xtrim_options(
                    key,
                    &StreamTrimOptions::minid(StreamTrimmingMode::Exact, min_id.to_string()),
                ))
                .await;
            if let Err(err) = trimmed {
                tracing::debug!(%err, key, "cannot apply the ttl");
            }
        }
    }

    /// Every so often (a fraction of `idle`, at most a minute): removes the
    /// group's consumers, other than this one, that have nothing pending
    /// and were idle for at least `idle`.
    async fn remove_idle_consumers(&self, now_ms: u64, idle: Duration) {
        let inner = &self.inner;
        let every = (idle / 2).clamp(MAINTENANCE_INTERVAL, Duration::from_secs(60));
        let due = inner.next_consumer_cleanup_ms.load(Ordering::Relaxed);
        if now_ms < due {
            return;
        }
        let next = now_ms + u64::try_from(every.as_millis()).unwrap_or(60_000);
        inner
            .next_consumer_cleanup_ms
            .store(next, Ordering::Relaxed);
        let mut invocation = inner.remove_consumers_script.prepare_invoke();
        invocation
            .key(&inner.keys.events)
            .arg(&inner.options.group)
            .arg(u64::try_from(idle.as_millis()).unwrap_or(u64::MAX))
            .arg(&inner.options.consumer);
        let mut conn = inner.conn.clone();
        match invocation.invoke_async::<Vec<String>>(&mut conn).await {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(?removed, group = %inner.options.group, "removed idle consumers with nothing pending");
            }
            Ok(_) => {}
            Err(err) => tracing::debug!(%err, "cannot remove idle consumers"),
        }
    }

    /// Entries not yet acknowledged by the group: never delivered (the
    /// group's lag) plus pending, from XINFO GROUPS and XLEN in one round
    /// trip: no entry is read (but after deletions inside the stream, when
    /// Redis cannot tell the lag). Also sets the queue-length gauge.
    pub(crate) async fn backlog_count(&self) -> Result<u64> {
        let events = &self.inner.keys.events;
        let mut pipe = redis::pipe();
        pipe.ignore_errors().xinfo_groups(events).xlen(events);
        let mut conn = self.inner.conn.clone();
        let replies: Vec<redis::RedisResult<redis::Value>> = pipe.query_async(&mut conn).await?;
        let mut replies = replies.into_iter().map(|reply| reply.map_err(Error::from));
        let short = || Err(Error::UnexpectedReply("a short pipeline reply".into()));
        let groups = replies.next().unwrap_or_else(short);
        let length = match replies.next().unwrap_or_else(short) {
            Ok(length) => Some(
                redis::from_redis_value::<u64>(length)
                    .map_err(|err| Error::UnexpectedReply(err.to_string()))?,
            ),
            Err(_) => None,
        };
        Ok(self.group_state(groups, length).await?.backlog)
    }

    /// The state of the store's group from an `XINFO GROUPS` reply on the
    /// events stream (the error, when it failed) and the stream's length
    /// (`None`: unknown, asked when needed); sets the queue-length gauge.
    pub(crate) async fn group_state(
        &self,
        groups: Result<redis::Value>,
        length: Option<u64>,
    ) -> Result<GroupState> {
        let inner = &self.inner;
        let groups = match groups {
            Ok(groups) => groups,
            Err(err) if is_no_such_key(&err) => {
                inner.metrics.queue_length.set(0);
                return Ok(GroupState::default());
            }
            Err(err) => return Err(err),
        };
        let groups: StreamInfoGroupsReply = redis::from_redis_value(groups)
            .map_err(|err| Error::UnexpectedReply(err.to_string()))?;
        let group = groups
            .groups
            .into_iter()
            .find(|group| group.name == inner.options.group);
        let length = match length {
            Some(length) => length,
            None => self.query(&redis::Cmd::xlen(&inner.keys.events)).await?,
        };
        let state = match group {
            // The group vanished: it is recreated at the start of the stream.
            None => GroupState {
                backlog: length,
                ..GroupState::default()
            },
            Some(group) => {
                let pending = group.pending as u64;
                let last = group.last_delivered_id;
                let lag = match group.lag {
                    // Redis keeps counting entries that trimming (MAXLEN, the
                    // events TTL) removed before delivery. Trimming takes the
                    // oldest entries first: when it took undelivered ones,
                    // every entry left is undelivered, so the stream's length
                    // bounds the lag.
                    Some(lag) if lag as u64 > length => {
                        tracing::warn!(
                            lag,
                            length,
                            stream = %inner.keys.events,
                            "entries were trimmed before delivery: raise max_len or events_ttl"
                        );
                        length
                    }
                    Some(lag) => lag as u64,
                    None => self.count_after_up_to(&last, u64::MAX).await?,
                };
                GroupState {
                    pending,
                    backlog: pending + lag,
                    last_delivered: Some(last),
                }
            }
        };
        inner
            .metrics
            .queue_length
            .set(i64::try_from(state.backlog).unwrap_or(i64::MAX));
        Ok(state)
    }

    /// Counts entries after `id`, stopping at `limit`: the whole lag when
    /// Redis cannot tell it (after deletions inside the stream), or whether
    /// anything at all is left to deliver.
    async fn count_after_up_to(&self, id: &str, limit: u64) -> Result<u64> {
        const PAGE: usize = 1000;
        let mut start = format!("({id}");
        let mut count = 0u64;
        loop {
            if count >= limit {
                return Ok(count);
            }
            let ids: Vec<(String, redis::Value)> = self
                .query(&redis::Cmd::xrange_count(
                    &self.inner.keys.events,
                    &start,
                    "+",
                    PAGE,
                ))
                .await?;
            count += ids.len() as u64;
            match ids.last() {
                Some((last, _)) if ids.len() == PAGE => start = format!("({last}"),
                _ => return Ok(count),
            }
        }
    }
}

/// The store's maintenance task: runs [`RedisStore::maintain`] every
/// [`MAINTENANCE_INTERVAL`] (the first time at once) until the last store
/// handle is dropped, which also cuts a running round short. It holds the
/// store's state only while a round runs, and never its handle (the
/// consumer name lease goes with the last handle at once).
async fn maintenance(inner: Weak<Inner>, mut stopped: oneshot::Receiver<()>) {
    let mut ticks = tokio::time::interval(MAINTENANCE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = ticks.tick() => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        let store = RedisStore {
            inner,
            _handle: None,
        };
        tokio::select! {
            _ = &mut stopped => return,
            () = store.maintain() => {}
        }
    }
}

/// The store's consumer group, as `XINFO GROUPS` tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GroupState {
    /// Entries delivered and not yet acknowledged.
    pub(crate) pending: u64,
    /// Entries not yet acknowledged: pending plus never delivered.
    pub(crate) backlog: u64,
    /// The last entry delivered to the group (`None`: no group).
    pub(crate) last_delivered: Option<String>,
}

/// Whether Redis said the key does not exist (XINFO on a missing stream).
pub(crate) fn is_no_such_key(err: &Error) -> bool {
    matches!(err, Error::Redis(err) if err.to_string().contains("no such key"))
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("RedisStore")
            .field("events", &inner.keys.events)
            .field("group", &inner.options.group)
            .field("consumer", &inner.options.consumer)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl EventStore for RedisStore {
    /// Appends the event to the events stream: the stream is both the event
    /// log and the queue, so a saved event is also delivered to the group.
    async fn save_event(&self, event: &StoredEvent) -> soiree::Result<()> {
        self.append(event).await?;
        Ok(())
    }

    async fn save_handler_result(&self, result: &StoredResult) -> soiree::Result<()> {
        let inner = &self.inner;
        let json = serde_json::to_vec(result).map_err(Error::from)?;
        let mut cmds = Vec::with_capacity(3);
        cmds.push(xadd(
            &inner.keys.results,
            inner.options.results_max_len,
            field::RESULT,
            &json,
        ));
        if !result.event_id.is_empty() {
            match &result.error {
                None => {
                    // Recorded before it is written: the event's later
                    // listeners see it, and the first writes with one SET.
                    let first = inner
                        .dedup_cache
                        .record_first(&result.event_id, &result.handler_id);
                    cmds.extend(self.success_cmds(&result.event_id, &result.handler_id, first));
                }
                Some(error) => {
                    // Kept so that a dead letter can say why the event kept failing.
                    let ttl = inner.options.dedup_ttl.as_secs().max(1);
                    cmds.push(redis::Cmd::set_ex(
                        inner.keys.last_error(&result.event_id),
                        error,
                        ttl,
                    ));
                }
            }
        }
        // Written behind: the listener's worker does not wait for Redis.
        // `ack` and `fail` wait for these writes first, so a result is in
        // Redis before its delivery is settled, and hold back a delivery
        // whose result was lost (see `EventQueue::ack`).
        let on_failure =
            (!result.event_id.is_empty()).then(|| self.on_result_failure(&result.event_id));
        inner.results_writer.write_detached(cmds, on_failure)?;
        inner.metrics.results.inc();
        Ok(())
    }

    /// `SET NX PX` on `{prefix}:unique:<key>` and the append in one script:
    /// atomic across processes.
    async fn append_unique(
        &self,
        event: &StoredEvent,
        key: &str,
        window: Duration,
    ) -> soiree::Result<soiree::Appended> {
        Ok(self.append_unique_inner(event, key, window).await?)
    }

    fn queue(&self) -> Option<&dyn EventQueue> {
        Some(self)
    }

    fn dedup(&self) -> Option<&dyn HandlerDedup> {
        Some(self)
    }

    fn history(&self) -> Option<&dyn EventHistory> {
        Some(self)
    }

    /// A hash per lease name, each operation one script (see `leader`).
    fn leases(&self) -> Option<&dyn soiree::LeaderLease> {
        Some(self)
    }

    /// Listener limits hold across every process of the store (Lua
    /// scripts on `{<prefix>}:limit:…` keys).
    fn limits(&self) -> Option<&dyn soiree::SharedLimits> {
        Some(self)
    }
}

/// An XADD of one field at an automatic id, trimmed to about `max_len`.
fn xadd(key: &str, max_len: Option<usize>, field: &str, value: &[u8]) -> redis::Cmd {
    let mut options = StreamAddOptions::default();
    if let Some(max) = max_len {
        options = options.trim(StreamTrimStrategy::maxlen(StreamTrimmingMode::Approx, max));
    }
    redis::Cmd::xadd_options(key, "*", &[(field, value)], &options)
}

/// Milliseconds since the Unix epoch (Redis stream ids are such timestamps).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}
