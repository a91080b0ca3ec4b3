//! The store: connection, streams, and the base store traits.

use std::fmt;
use std::sync::Arc;

use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
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
    /// Listener successes: one subject per (group, listener, event id),
    /// one message per subject (a key-value bucket made of a plain stream:
    /// the client's KV layer cannot read nats-server 2.9's answers).
    pub(crate) dedup: stream::Stream,
    pub(crate) consumer: consumer::PullConsumer,
    pub(crate) puller: crate::puller::Puller,
    /// Result and dedup publishes sent and not yet confirmed: confirmed
    /// (flushed) before any acknowledgement, so a delivery's results are in
    /// the streams before it is acknowledged, without a round trip per
    /// result.
    pub(crate) pending_writes:
        std::sync::Mutex<Vec<(Option<String>, jetstream::context::PublishAckFuture)>>,
    /// One flush at a time: a caller that finds the list empty while
    /// another flush awaits its confirmations waits for that flush too.
    pub(crate) flushing: tokio::sync::Mutex<()>,
    /// Dedup keys written by this handle and not yet confirmed: a lookup
    /// of one answers from here, without waiting for the confirmation.
    pub(crate) pending_dedup: std::sync::Mutex<std::collections::HashSet<String>>,
    /// A pattern the server cannot filter (a `**` inside it): deliveries
    /// are checked against it and acknowledged unseen when they miss.
    pub(crate) client_filter: Option<String>,
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
        let subject = crate::subject::topic_to_subject(&self.inner.names.prefix, &event.topic);
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
        ack.await.map_err(|err| self.err("publish", stream, err))?;
        Ok(())
    }

    pub(crate) async fn open(
        client: async_nats::Client,
        options: Options,
        location: String,
        secrets: Vec<String>,
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
            vec![names.events_subjects.clone()],
            options.max_age,
        ))
        .await?;
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
        let dedup = open_stream(stream::Config {
            max_messages_per_subject: 1,
            ..make(
                &names.dedup_bucket,
                vec![format!("{}_dedup.>", names.prefix)],
                Some(options.dedup_ttl),
            )
        })
        .await?;
        let (filter_subject, client_filter) = match &options.filter {
            Some(pattern) => {
                let (subject, client_side) = crate::subject::pattern_filter(&names.prefix, pattern);
                (subject, client_side.then(|| pattern.clone()))
            }
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
        let puller = crate::puller::Puller::new(&client)
            .await
            .map_err(|err| fail("subscribe", "the pull inbox", err.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                pending_writes: std::sync::Mutex::new(Vec::new()),
                flushing: tokio::sync::Mutex::new(()),
                pending_dedup: std::sync::Mutex::new(std::collections::HashSet::new()),
                puller,
                client,
                js,
                names,
                options,
                events,
                dead,
                results,
                dedup,
                consumer,
                client_filter,
                location,
                secrets,
            }),
        })
    }
}

/// Result and dedup publishes awaiting confirmation before they are
/// confirmed inline.
const MAX_PENDING_WRITES: usize = 1024;

impl NatsStore {
    fn pending_write(&self, key: Option<String>, ack: jetstream::context::PublishAckFuture) {
        if let Ok(mut pending) = self.inner.pending_writes.lock() {
            pending.push((key, ack));
        }
    }

    /// Waits until every result and dedup record sent so far is confirmed
    /// by its stream.
    ///
    /// # Errors
    ///
    /// [`Error::JetStream`] naming how many were not confirmed: those
    /// results are lost, and with them their dedup records (a redelivery
    /// runs those listeners again: at least once).
    pub(crate) async fn flush_writes(&self) -> Result<()> {
        let _one_at_a_time = self.inner.flushing.lock().await;
        let pending = match self.inner.pending_writes.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => Vec::new(),
        };
        if pending.is_empty() {
            return Ok(());
        }
        let total = pending.len();
        let (keys, acks): (Vec<_>, Vec<_>) = pending.into_iter().unzip();
        let failed =
            futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future))
                .await
                .into_iter()
                .filter(Result::is_err)
                .count();
        // Confirmed (or lost) from here on: lookups read the stream again.
        if let Ok(mut written) = self.inner.pending_dedup.lock() {
            for key in keys.into_iter().flatten() {
                written.remove(&key);
            }
        }
        if failed == 0 {
            Ok(())
        } else {
            Err(self.err(
                "publish",
                &self.inner.names.results_stream,
                format!("{failed} of {total} results were not confirmed"),
            ))
        }
    }
}

#[async_trait]
impl EventStore for NatsStore {
    async fn save_event(&self, event: &StoredEvent) -> soiree::Result<()> {
        self.enqueue(event).await
    }

    async fn save_handler_result(&self, result: &StoredResult) -> soiree::Result<()> {
        let json = serde_json::to_vec(result).map_err(soiree::Error::serialization)?;
        let subject = self.inner.names.results_subject.clone();
        let ack = self
            .inner
            .js
            .publish(subject.clone(), json.into())
            .await
            .map_err(|err| self.err("publish", &subject, err))?;
        self.pending_write(None, ack);
        if result.succeeded() && !result.event_id.is_empty() {
            let key = self
                .inner
                .names
                .dedup_key(&result.handler_id, &result.event_id);
            let bucket = &self.inner.names.dedup_bucket;
            if let Ok(mut pending) = self.inner.pending_dedup.lock() {
                pending.insert(key.clone());
            }
            let ack = self
                .inner
                .js
                .publish(key.clone(), bytes::Bytes::from_static(b"1"))
                .await
                .map_err(|err| self.err("publish", bucket, err))?;
            self.pending_write(Some(key), ack);
        }
        if self.inner.pending_writes.lock().map_or(0, |p| p.len()) >= MAX_PENDING_WRITES {
            self.flush_writes().await?;
        }
        Ok(())
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
}

#[async_trait]
impl HandlerDedup for NatsStore {
    async fn handler_succeeded(&self, event_id: &str, handler_id: &str) -> soiree::Result<bool> {
        let key = self.inner.names.dedup_key(handler_id, event_id);
        // A success this handle wrote and the stream has not confirmed yet.
        if self
            .inner
            .pending_dedup
            .lock()
            .is_ok_and(|pending| pending.contains(&key))
        {
            return Ok(true);
        }
        match self.inner.dedup.get_last_raw_message_by_subject(&key).await {
            Ok(_) => Ok(true),
            Err(err) if matches!(err.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => {
                Ok(false)
            }
            Err(err) => Err(self.err("get", &self.inner.names.dedup_bucket, err).into()),
        }
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
async fn create_stream(
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
