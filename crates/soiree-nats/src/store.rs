//! The store: connection, streams, and the base store traits.

use std::fmt;
use std::sync::Arc;

use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
use soiree::kit::DedupCache;
use soiree::{EventHistory, EventQueue, EventStore, HandlerDedup, Page, StoredEvent, StoredResult};

use crate::builder::Options;
use crate::names::Names;
use crate::redact::scrub;
use crate::{Error, NatsStoreBuilder, Result};

/// A soiree store on NATS JetStream: an at-least-once event queue shared
/// by every process of a consumer group, replicated over a cluster, with
/// handler results, de-duplication by event id, dead letters, inspection
/// and replay.
///
/// Give it to a bus with [`EventBusBuilder::store`](soiree::EventBusBuilder::store):
/// `emit` then publishes the event to the stream (the emission's
/// `persisted()` resolves on the stream's acknowledgement) and the bus's
/// consumers pull it through the group's durable consumer, run the
/// listeners and acknowledge it. The store is cheap to clone.
///
/// # Examples
///
/// ```no_run
/// use soiree::EventBus;
/// use soiree_nats::NatsStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = NatsStore::builder("nats://127.0.0.1:4222")
///     .prefix("shop")
///     .group("mailer")
///     .build()
///     .await?;
/// let bus = EventBus::builder().store(store.clone()).build()?;
/// bus.on_named("welcome", "user.created", |_ctx| async { Ok(()) })?;
/// bus.start()?;
/// bus.emit("user.created", "ada").persisted().await?;
/// bus.wait_for_idle().await;
/// bus.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NatsStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) names: Names,
    pub(crate) options: Options,
    pub(crate) events: stream::Stream,
    pub(crate) dead: stream::Stream,
    pub(crate) results: stream::Stream,
    /// Listener successes: one subject per (group, event id), one message
    /// per success naming the listener (see `dedup`).
    pub(crate) dedup: stream::Stream,
    /// Whether the dedup stream is read with direct gets (see
    /// `dedup::reads_directly`).
    pub(crate) dedup_direct: bool,
    /// The successes of the events of the deliveries this handle holds,
    /// fetched with each dequeued batch.
    pub(crate) dedup_cache: DedupCache,
    pub(crate) consumer: consumer::PullConsumer,
    /// The prefix's leader leases (`lease`); `None` when the bucket is
    /// missing and was not created.
    pub(crate) leases: Option<Arc<crate::lease::Leases>>,
    /// The prefix's shared listener limits (`limits`); `None` when the
    /// bucket is missing and was not created.
    pub(crate) limits: Option<crate::limits::Limits>,
    /// The prefix's delayed events (`scheduled`); `None` when the stream
    /// is missing and was not created.
    pub(crate) scheduled: Option<crate::scheduled::Scheduled>,
    pub(crate) puller: crate::puller::Puller,
    /// Results and dedup records written behind (see `writes`).
    pub(crate) writes: tokio::sync::Mutex<crate::writes::Writes>,
    /// One flush at a time: a caller that finds nothing to flush while
    /// another flush awaits its confirmations waits for that flush too.
    pub(crate) flushing: tokio::sync::Mutex<()>,
    /// Dedup records written by this handle and not yet confirmed: a
    /// lookup of one answers from here, without waiting for the
    /// confirmation.
    pub(crate) unconfirmed: crate::dedup::Unconfirmed,
    /// A pattern the server cannot filter (a `**` inside it): deliveries
    /// are checked against it and acknowledged unseen when they miss.
    pub(crate) client_filter: Option<String>,
    /// The partitions of keyed events (`ordered_by_key`), when on.
    pub(crate) partitions: Option<crate::partitions::Partitions>,
    /// The stream sequence of the last event this handle published that
    /// the group's consumer takes (see `EventQueue::backlog`).
    pub(crate) last_published: std::sync::atomic::AtomicU64,
    /// The store's series (`backend="nats"`, the events stream, the group).
    pub(crate) metrics: soiree::StoreMetrics,
    /// The servers, without credentials.
    pub(crate) location: String,
    /// Secrets to scrub from error texts.
    pub(crate) secrets: Vec<String>,
}

impl fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsStore")
            .field("servers", &self.inner.location)
            .field("stream", &self.inner.names.events_stream)
            .field("group", &self.inner.names.group)
            .finish_non_exhaustive()
    }
}

impl NatsStore {
    /// A builder for a store on the NATS servers at `url` (one URL or
    /// several, comma-separated: `nats://a:4222,nats://b:4222`).
    pub fn builder(url: &str) -> NatsStoreBuilder {
        NatsStoreBuilder::new(url)
    }

    /// Connects with the default options (prefix and group `soiree`).
    ///
    /// # Errors
    ///
    /// As for [`NatsStoreBuilder::build`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).build().await
    }

    /// The group this store reads for.
    pub fn group(&self) -> &str {
        &self.inner.names.group
    }

    /// The subject prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.names.prefix
    }

    /// The name of the events stream.
    pub fn stream_name(&self) -> &str {
        &self.inner.names.events_stream
    }

    /// The NATS client the store uses (for probes and tools; publishing
    /// under the store's prefix bypasses its limits).
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    pub(crate) fn err(
        &self,
        operation: &'static str,
        target: &str,
        cause: impl fmt::Display,
    ) -> Error {
        Error::jetstream(
            operation,
            target,
            scrub(&cause.to_string(), &self.inner.secrets),
        )
    }

    /// The state of one of the store's streams; `name` names it in the
    /// error.
    pub(crate) async fn stream_info(
        &self,
        stream: &stream::Stream,
        name: &str,
    ) -> Result<stream::Info> {
        stream
            .get_info()
            .await
            .map_err(|err| self.err("stream info", name, err))
    }

    /// Publishes a stored event to the events stream, under `msg_id` when
    /// given (the stream drops a second message of an id within its
    /// duplicate window), and waits for the stream's acknowledgement.
    pub(crate) async fn publish(
        &self,
        event: &StoredEvent,
        msg_id: Option<String>,
    ) -> soiree::Result<()> {
        let json = soiree::limits::encode_event(event)?;
        let (prefix, partition) = self.partition_for(event);
        let subject = crate::subject::topic_to_subject(&prefix, &event.topic);
        let mut publish = jetstream::message::PublishMessage::build().payload(json.into());
        if let Some(id) = msg_id {
            publish = publish.message_id(id);
        }
        let stream = &self.inner.names.events_stream;
        let ack = self
            .inner
            .js
            .send_publish(subject, publish)
            .await
            .map_err(|err| self.err("publish", stream, err))?;
        let ack = ack.await.map_err(|err| self.err("publish", stream, err))?;
        if !ack.duplicate {
            self.inner.metrics.persisted.inc();
        }
        if let Some(i) = partition {
            self.published_to(i, ack.sequence);
        } else if self.for_this_group(&event.topic) {
            // The backlog counts it from now on (see `backlog`).
            self.inner
                .last_published
                .fetch_max(ack.sequence, std::sync::atomic::Ordering::AcqRel);
        }
        Ok(())
    }

    pub(crate) async fn open(
        client: async_nats::Client,
        options: Options,
        location: String,
        secrets: Vec<String>,
        registry: &soiree::MetricsRegistry,
    ) -> Result<Self> {
        let names = Names::new(&options.prefix, &options.group);
        let js = jetstream::ContextBuilder::new()
            .timeout(options.request_timeout)
            .max_ack_inflight(options.max_in_flight.max(1))
            .backpressure_on_inflight(true)
            .build(client.clone());
        let storage = if options.memory {
            stream::StorageType::Memory
        } else {
            stream::StorageType::File
        };
        let fail = |operation: &'static str, target: &str, cause: String| {
            Error::jetstream(operation, target, scrub(&cause, &secrets))
        };
        let make = |name: &str, subjects: Vec<String>, max_age: Option<std::time::Duration>| {
            stream::Config {
                name: name.to_owned(),
                subjects,
                storage,
                num_replicas: options.replicas,
                duplicate_window: options.duplicate_window,
                max_age: max_age.unwrap_or_default(),
                allow_direct: true,
                ..Default::default()
            }
        };
        let create = options.create_missing;
        let open_stream = |config: stream::Config| {
            let js = js.clone();
            let fail = &fail;
            async move {
                let name = config.name.clone();
                if create {
                    return create_stream(&js, config)
                        .await
                        .map_err(|err| fail("create stream", &name, err.to_string()));
                }
                js.get_stream(&name).await.map_err(|err| match err.kind() {
                    jetstream::context::GetStreamErrorKind::JetStream(e)
                        if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
                    {
                        Error::Missing {
                            what: "stream",
                            name: name.clone(),
                            hint: "check --prefix; `nats stream ls` lists the SOIREE_<prefix>_EVENTS streams there are".into(),
                        }
                    }
                    _ => fail("get stream", &name, err.to_string()),
                })
            }
        };
        let events = open_stream(make(
            &names.events_stream,
            crate::partitions::stream_subjects(&names, options.partitions),
            options.max_age,
        ))
        .await?;
        let events = if options.partitions > 0 {
            crate::partitions::add_subjects(
                &js,
                events,
                crate::partitions::stream_subjects(&names, options.partitions),
                create,
                &fail,
            )
            .await?
        } else {
            events
        };
        let dead = open_stream(make(
            &names.dead_stream,
            vec![format!("{}_dead.>", names.prefix)],
            None,
        ))
        .await?;
        let results = open_stream(make(
            &names.results_stream,
            vec![format!("{}_results.>", names.prefix)],
            options.max_age,
        ))
        .await?;
        let dedup_config = stream::Config {
            max_messages_per_subject: crate::dedup::MAX_SUCCESSES_PER_EVENT,
            ..make(
                &names.dedup_bucket,
                vec![format!("{}_dedup.>", names.prefix)],
                Some(options.dedup_ttl),
            )
        };
        let mut dedup = open_stream(dedup_config.clone()).await?;
        if create
            && dedup.cached_info().config.max_messages_per_subject
                != dedup_config.max_messages_per_subject
        {
            // A bucket of an earlier version kept one success per subject;
            // an event's successes now share one subject.
            js.update_stream(&dedup_config)
                .await
                .map_err(|err| fail("update stream", &names.dedup_bucket, err.to_string()))?;
            dedup = js
                .get_stream(&names.dedup_bucket)
                .await
                .map_err(|err| fail("get stream", &names.dedup_bucket, err.to_string()))?;
        }
        // A group ordered by key takes the unkeyed events here (its
        // partitions the keyed ones). Any other group takes every event:
        // without a filter, the whole stream; with one, on a stream that
        // has partitions, the whole stream too (nats-server 2.9 has one
        // filter subject per consumer, and no subject matches both
        // layouts), checked by the store (see `partitions`).
        let partitioned = events
            .cached_info()
            .config
            .subjects
            .iter()
            .any(|subject| subject != &names.events_subjects);
        let scheduled = crate::scheduled::open(
            &js,
            make(
                &crate::scheduled::stream_name(&names.prefix),
                vec![crate::scheduled::Scheduled::subjects(&names.prefix)],
                None,
            ),
            create,
            &secrets,
        )
        .await?
        .map(|stream| crate::scheduled::Scheduled::new(stream, &names.prefix));
        let leases = crate::lease::open(
            &js,
            &names.prefix,
            storage,
            options.replicas,
            create,
            &secrets,
        )
        .await?
        .map(Arc::new);
        let limits = crate::limits::open(
            &js,
            &names.prefix,
            storage,
            options.replicas,
            create,
            &secrets,
        )
        .await?;
        let (filter_subject, client_filter) = match &options.filter {
            Some(pattern) if options.partitions == 0 && partitioned => {
                (String::new(), Some(pattern.clone()))
            }
            Some(pattern) => {
                let (subject, client_side) = crate::subject::pattern_filter(&names.prefix, pattern);
                (subject, client_side.then(|| pattern.clone()))
            }
            None if options.partitions == 0 => (String::new(), None),
            None => (names.events_subjects.clone(), None),
        };
        let config = consumer::pull::Config {
            durable_name: Some(names.group.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: options.claim_timeout,
            // Deliveries are counted and dead-lettered by the store, so
            // that the server never stops delivering one silently.
            max_deliver: -1,
            filter_subject,
            max_ack_pending: 10_000,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        };
        let consumer = if !create {
            match events.get_consumer(&names.group).await {
                Ok(consumer) => consumer,
                Err(_) => {
                    let mut groups = Vec::new();
                    let mut listed = events.consumer_names();
                    while let Some(Ok(name)) = futures::StreamExt::next(&mut listed).await {
                        groups.push(name);
                        if groups.len() >= 50 {
                            break;
                        }
                    }
                    return Err(Error::Missing {
                        what: "consumer group",
                        name: names.group.clone(),
                        hint: format!(
                            "the groups of stream {} are: {}",
                            names.events_stream,
                            groups.join(", ")
                        ),
                    });
                }
            }
        } else {
            match events.create_consumer(config.clone()).await {
                Ok(consumer) => consumer,
                // A group made earlier with other settings (nats-server 2.9
                // cannot update a consumer in place): it is used as it is.
                Err(first) => events
                    .get_consumer(&names.group)
                    .await
                    .map_err(|_| fail("create consumer", &names.group, first.to_string()))?,
            }
        };
        let partitions = if options.partitions > 0 {
            Some(
                crate::partitions::Partitions::open(&client, &events, &names, &options, &fail)
                    .await?,
            )
        } else {
            None
        };
        let puller = crate::puller::Puller::new(&client)
            .await
            .map_err(|err| fail("subscribe", "the pull inbox", err.to_string()))?;
        let metrics = soiree::StoreMetrics::new(
            registry,
            METRICS_BACKEND,
            &names.events_stream,
            &names.group,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                metrics,
                writes: tokio::sync::Mutex::new(crate::writes::Writes::default()),
                flushing: tokio::sync::Mutex::new(()),
                unconfirmed: crate::dedup::Unconfirmed::default(),
                dedup_cache: DedupCache::default(),
                puller,
                client,
                js,
                names,
                options,
                events,
                dead,
                results,
                dedup_direct: crate::dedup::reads_directly(&dedup.cached_info().config),
                dedup,
                consumer,
                leases,
                limits,
                scheduled,
                client_filter,
                partitions,
                last_published: std::sync::atomic::AtomicU64::new(0),
                location,
                secrets,
            }),
        })
    }
}

/// The `backend` label of the store's series.
const METRICS_BACKEND: &str = "nats";

#[async_trait]
impl EventStore for NatsStore {
    async fn save_event(&self, event: &StoredEvent) -> soiree::Result<()> {
        self.enqueue(event).await
    }

    async fn save_handler_result(&self, result: &StoredResult) -> soiree::Result<()> {
        let json = serde_json::to_vec(result).map_err(soiree::Error::serialization)?;
        self.write_result(json, &result.event_id).await?;
        self.inner.metrics.results.inc();
        if result.succeeded() && !result.event_id.is_empty() {
            let (event_id, handler_id) = (&result.event_id, &result.handler_id);
            let subject = self.inner.names.dedup_subject(event_id);
            self.inner.unconfirmed.insert(event_id, handler_id);
            self.inner.dedup_cache.record(event_id, handler_id);
            let key = (event_id.clone(), handler_id.clone());
            let payload = bytes::Bytes::from(handler_id.clone().into_bytes());
            self.write_dedup(subject, payload, key).await?;
        }
        Ok(())
    }

    /// Reserves `key` in the dedup stream (a publish that only succeeds
    /// while the key is free or its window has ended), then enqueues: see
    /// the crate docs' unique keys.
    async fn append_unique(
        &self,
        event: &StoredEvent,
        key: &str,
        window: std::time::Duration,
    ) -> soiree::Result<soiree::Appended> {
        self.append_unique_inner(event, key, window).await
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

    /// Leases in the KV bucket `SOIREE_<prefix>_LEASES` (see the crate
    /// docs); `None` on a store opened without
    /// [`create_missing`](NatsStoreBuilder::create_missing) on a prefix
    /// that has no such bucket.
    fn leases(&self) -> Option<&dyn soiree::LeaderLease> {
        self.inner
            .leases
            .is_some()
            .then_some(self as &dyn soiree::LeaderLease)
    }

    /// Slots and rates in the KV bucket `SOIREE_<prefix>_LIMITS` (see the
    /// crate docs); `None` on a store opened without
    /// [`create_missing`](NatsStoreBuilder::create_missing) on a prefix
    /// that has no such bucket.
    fn limits(&self) -> Option<&dyn soiree::SharedLimits> {
        self.inner
            .limits
            .is_some()
            .then_some(self as &dyn soiree::SharedLimits)
    }
}

#[async_trait]
impl EventHistory for NatsStore {
    async fn events(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> soiree::Result<Page<StoredEvent>> {
        let query = history_query(cursor, limit);
        let page = soiree::Inspect::events(self, &query).await?;
        Ok(Page {
            items: page.items.into_iter().map(|r| r.item).collect(),
            next: page.next,
        })
    }

    async fn results(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> soiree::Result<Page<StoredResult>> {
        let query = history_query(cursor, limit);
        let page = soiree::Inspect::results(self, &query).await?;
        Ok(Page {
            items: page.items.into_iter().map(|r| r.item).collect(),
            next: page.next,
        })
    }
}

fn history_query(cursor: Option<&str>, limit: usize) -> soiree::Query {
    let query = soiree::Query::oldest(limit);
    match cursor {
        Some(cursor) => query.after(cursor),
        None => query,
    }
}

/// How many times a stream creation that timed out is asked again.
const CREATE_ATTEMPTS: usize = 3;

/// Gets or creates a stream. A cluster that has just formed, or is
/// electing leaders, can take longer than one request to place a
/// replicated stream: a timed-out or unavailable answer is asked again,
/// at most [`CREATE_ATTEMPTS`] times (so within that many request
/// timeouts). Asking again is safe: an existing stream with the same
/// configuration is returned as it is.
pub(crate) async fn create_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> std::result::Result<stream::Stream, jetstream::context::CreateStreamError> {
    use jetstream::context::CreateStreamErrorKind as Kind;
    let mut attempt = 1;
    loop {
        match js.get_or_create_stream(config.clone()).await {
            Err(err)
                if attempt < CREATE_ATTEMPTS
                    && matches!(err.kind(), Kind::TimedOut | Kind::JetStreamUnavailable) =>
            {
                attempt += 1;
                tracing::debug!(stream = %config.name, attempt, "stream creation timed out; asking again");
            }
            other => return other,
        }
    }
}
