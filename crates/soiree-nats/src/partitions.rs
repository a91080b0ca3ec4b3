//! Per-key ordering across processes ([`NatsStoreBuilder::ordered_by_key`]):
//! keyed events go to partitions, each consumed one event at a time.
//!
//! An event's ordering key is its [`PROPERTY_KEY`] property (`soiree.key`,
//! a string), as in `soiree-sql`. A store built with `ordered_by_key(n)`:
//!
//! - publishes an event with a key to the subject `<prefix>_p<i>.<topic>`,
//!   where `i` is a stable 64-bit FNV-1a hash of the key modulo `n`
//!   (unkeyed events stay at `<prefix>.<topic>`); the events stream gets
//!   the subjects `<prefix>_p0.>` … `<prefix>_p<n-1>.>` beside `<prefix>.>`
//!   (prefixes hold no `_`, so these are never another prefix's subjects,
//!   and every stream of the prefix stays apart);
//! - reads for its group through one durable consumer per partition,
//!   `<group>~p<i>`, filtered on `<prefix>_p<i>.<filter>` with
//!   `max_ack_pending = 1`: JetStream hands out a partition's next event
//!   only once the one before is acknowledged or terminated, to whichever
//!   process of the group asks, and a delivery handed back (a NAK, with or
//!   without delay) or not acknowledged within the claim timeout is
//!   delivered again before anything after it. The group's own consumer
//!   takes the unkeyed events, as without the option.
//!
//! Every process pulls from every partition (a pull request of one event
//! per partition it has room for), so the partitions give the parallelism
//! and each partition runs one event at a time, group-wide: events of one
//! key never overlap, and run in the order the stream stored them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::{Message, StatusCode, Subscriber};
use futures::{FutureExt, StreamExt};
use soiree::{Delivery, StoredEvent};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::builder::Options;
use crate::names::Names;
use crate::{Error, NatsStore, Result};

/// The property holding an event's ordering key (a string), as in
/// `soiree-sql`.
pub const PROPERTY_KEY: &str = "soiree.key";

/// The most partitions a store may have.
pub const MAX_PARTITIONS: u16 = 256;

/// The ordering key of an event: its [`PROPERTY_KEY`] property, when it is
/// a string.
pub(crate) fn key_of(event: &StoredEvent) -> Option<&str> {
    event.properties.get(PROPERTY_KEY)?.as_str()
}

/// The partition of `key` among `partitions` (at least 1): FNV-1a, stable
/// across versions and platforms, as every process must agree on it.
///
/// # Examples
///
/// ```
/// use soiree_nats::partition_of;
///
/// let p = partition_of("order-42", 8);
/// assert!(p < 8);
/// assert_eq!(p, partition_of("order-42", 8));
/// ```
pub fn partition_of(key: &str, partitions: u16) -> u16 {
    let hash = crate::subject::fnv(key);
    u16::try_from(hash % u64::from(partitions.max(1))).unwrap_or(0)
}

/// The subject prefix of partition `i`: `<prefix>_p<i>`.
pub(crate) fn subject_prefix(prefix: &str, i: u16) -> String {
    format!("{prefix}_p{i}")
}

/// The durable consumer of partition `i` of `group`: `<group>~p<i>` (no
/// group name holds a `~`).
pub(crate) fn consumer_name(group: &str, i: u16) -> String {
    format!("{group}~p{i}")
}

/// The partitions a store handle reads.
#[derive(Debug)]
pub(crate) struct Partitions {
    consumers: Vec<consumer::PullConsumer>,
    /// Per partition, the stream sequence of the last event this handle
    /// published to it (see `backlog`).
    published: Vec<AtomicU64>,
    /// Pull requests of partition `i` are answered on `<inbox>.<i>`.
    inbox: String,
    /// `<group>~p`: the partition consumers' names without the number.
    consumer_prefix: String,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    sub: Subscriber,
    /// Per partition: until when its pull request may still be answered.
    open: Vec<Option<Instant>>,
    /// Where the next round of requests starts, so that every partition
    /// gets its turn when the bus has room for fewer than all.
    next: usize,
}

impl Partitions {
    /// Opens (or creates) the partition consumers of `names.group`.
    pub(crate) async fn open(
        client: &async_nats::Client,
        events: &stream::Stream,
        names: &Names,
        options: &Options,
        fail: &(dyn Fn(&'static str, &str, String) -> Error + Sync),
    ) -> Result<Self> {
        let mut consumers = Vec::with_capacity(usize::from(options.partitions));
        for i in 0..options.partitions {
            let name = consumer_name(&names.group, i);
            let prefix = subject_prefix(&names.prefix, i);
            let filter_subject = match &options.filter {
                Some(pattern) => crate::subject::pattern_filter(&prefix, pattern).0,
                None => format!("{prefix}.>"),
            };
            let config = consumer::pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: options.claim_timeout,
                max_deliver: -1,
                filter_subject,
                // The partition's order: one event out at a time, group-wide.
                max_ack_pending: 1,
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            };
            let consumer = if options.create_missing {
                match events.create_consumer(config).await {
                    Ok(consumer) => consumer,
                    Err(first) => events
                        .get_consumer(&name)
                        .await
                        .map_err(|_| fail("create consumer", &name, first.to_string()))?,
                }
            } else {
                events
                    .get_consumer(&name)
                    .await
                    .map_err(|_| Error::Missing {
                        what: "consumer group",
                        name: name.clone(),
                        hint: format!(
                            "the group's partition consumer; build the store once with create_missing and ordered_by_key({})",
                            options.partitions
                        ),
                    })?
            };
            consumers.push(consumer);
        }
        let inbox = client.new_inbox();
        let sub = client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(|err| fail("subscribe", "the partitions' pull inbox", err.to_string()))?;
        Ok(Self {
            published: (0..options.partitions).map(|_| AtomicU64::new(0)).collect(),
            state: Mutex::new(State {
                sub,
                open: vec![None; usize::from(options.partitions)],
                next: 0,
            }),
            consumers,
            inbox,
            consumer_prefix: consumer_name(&names.group, 0)
                .trim_end_matches('0')
                .to_owned(),
        })
    }
}

/// The events stream's subjects: `<prefix>.>`, then those of `partitions`
/// partitions.
pub(crate) fn stream_subjects(names: &Names, partitions: u16) -> Vec<String> {
    std::iter::once(names.events_subjects.clone())
        .chain((0..partitions).map(|i| format!("{}.>", subject_prefix(&names.prefix, i))))
        .collect()
}

/// Adds the partitions' subjects to an events stream made without them
/// (or with fewer partitions), keeping the subjects it has.
pub(crate) async fn add_subjects(
    js: &jetstream::Context,
    events: stream::Stream,
    wanted: Vec<String>,
    create: bool,
    fail: &(dyn Fn(&'static str, &str, String) -> Error + Sync),
) -> Result<stream::Stream> {
    let mut config = events.cached_info().config.clone();
    let missing: Vec<String> = wanted
        .into_iter()
        .filter(|subject| !config.subjects.contains(subject))
        .collect();
    if missing.is_empty() {
        return Ok(events);
    }
    if !create {
        return Err(Error::Missing {
            what: "stream",
            name: config.name.clone(),
            hint: format!(
                "the stream lacks the partition subjects {}; build the store once with create_missing and ordered_by_key",
                missing.join(", ")
            ),
        });
    }
    config.subjects.extend(missing);
    js.update_stream(&config)
        .await
        .map_err(|err| fail("update stream", &config.name, err.to_string()))?;
    js.get_stream(&config.name)
        .await
        .map_err(|err| fail("get stream", &config.name, err.to_string()))
}

/// How long a partition's pull request lasts on the server: the bus's
/// wait, at most 0.382 of the claim timeout (as the group's long polls,
/// see `puller::long_poll`: nats-server 2.9 can lose a redelivery
/// handed to a request that expires at that instant).
fn request_expiry(wait: Duration, claim: Duration) -> Duration {
    wait.min(claim.mul_f64(0.382)).max(Duration::from_millis(1))
}

impl NatsStore {
    /// The subject prefix and partition of `event`: `<prefix>_p<i>` and
    /// `Some(i)` for a keyed event of a partitioned store, else the
    /// store's prefix and `None`.
    pub(crate) fn partition_for(&self, event: &StoredEvent) -> (String, Option<u16>) {
        let prefix = &self.inner.names.prefix;
        let partitions = self.inner.options.partitions;
        match key_of(event) {
            Some(key) if partitions > 0 => {
                let i = partition_of(key, partitions);
                (subject_prefix(prefix, i), Some(i))
            }
            _ => (prefix.clone(), None),
        }
    }

    /// Notes that this handle published stream sequence `sequence` to
    /// partition `i`, for `backlog`.
    pub(crate) fn published_to(&self, i: u16, sequence: u64) {
        if let Some(parts) = &self.inner.partitions
            && let Some(published) = parts.published.get(usize::from(i))
        {
            published.fetch_max(sequence, Ordering::AcqRel);
        }
    }

    /// Dequeue for a partitioned store: the keyed deliveries that arrived,
    /// pull requests for the partitions there is room for, the unkeyed
    /// events of the group's consumer; and when there is nothing, waits up
    /// to `wait` for whichever comes first.
    pub(crate) async fn dequeue_partitioned(
        &self,
        max: usize,
        wait: Duration,
    ) -> crate::Result<Vec<Delivery>> {
        let Some(parts) = &self.inner.partitions else {
            return self.dequeue_unkeyed(max, wait, false).await;
        };
        let max = max.max(1);
        let mut messages = self.keyed_messages(parts, max, wait).await?;
        let mut out = self.deliveries(messages.drain(..)).await?;
        if out.len() < max {
            out.extend(
                self.dequeue_unkeyed(max - out.len(), Duration::ZERO, false)
                    .await?,
            );
        }
        if out.is_empty() && !wait.is_zero() {
            let claim = self.inner.options.claim_timeout;
            // Both futures only take a message once it is there and return
            // it without awaiting again: the one dropped loses nothing (a
            // late answer stays in its inbox for the next dequeue).
            let (mut arrived, keyed) = tokio::select! {
                unkeyed = self.pull(1, Some(request_expiry(wait, claim))) => (unkeyed?, None),
                keyed = parts.next_message(wait) => (Vec::new(), keyed),
            };
            let mut state = parts.state.lock().await;
            if let Some(message) = keyed
                && parts.note(&mut state, &message)
            {
                arrived.push(message);
            }
            let room = max.saturating_sub(arrived.len());
            arrived.extend(parts.drain(&mut state, room));
            drop(state);
            out = self.deliveries(arrived.into_iter()).await?;
        }
        Ok(out)
    }

    async fn deliveries(
        &self,
        messages: impl Iterator<Item = Message>,
    ) -> crate::Result<Vec<Delivery>> {
        let mut out = Vec::new();
        for message in messages {
            if let Some(delivery) = self.delivery(message).await? {
                out.push(delivery);
            }
        }
        self.prefetch_successes(&out).await;
        Ok(out)
    }

    /// Up to `max` keyed messages that have arrived, after asking the
    /// partitions with no request open for one event each (as many as
    /// there is room for).
    async fn keyed_messages(
        &self,
        parts: &Partitions,
        max: usize,
        wait: Duration,
    ) -> crate::Result<Vec<Message>> {
        let mut state = parts.state.lock().await;
        let mut out = parts.drain(&mut state, max);
        let now = Instant::now();
        for open in &mut state.open {
            if open.is_some_and(|until| until <= now) {
                // Its status got lost: ask again.
                *open = None;
            }
        }
        let busy = state.open.iter().filter(|open| open.is_some()).count();
        let room = max.saturating_sub(out.len() + busy);
        let count = state.open.len();
        let timeout = self.inner.options.request_timeout;
        let expiry = request_expiry(wait, self.inner.options.claim_timeout);
        let mut asked = Vec::new();
        for step in 0..count {
            if asked.len() >= room {
                break;
            }
            let i = (state.next + step) % count;
            if state.open[i].is_some() {
                continue;
            }
            let request = if wait.is_zero() {
                serde_json::json!({ "batch": 1, "no_wait": true })
            } else {
                serde_json::json!({
                    "batch": 1,
                    "expires": u64::try_from(expiry.as_nanos()).unwrap_or(u64::MAX),
                })
            };
            let name = consumer_name(&self.inner.names.group, u16::try_from(i).unwrap_or(0));
            let subject = format!(
                "$JS.API.CONSUMER.MSG.NEXT.{}.{name}",
                self.inner.names.events_stream
            );
            self.inner
                .client
                .publish_with_reply(
                    subject,
                    format!("{}.{i}", parts.inbox),
                    request.to_string().into(),
                )
                .await
                .map_err(|err| self.err("pull", &name, err))?;
            let lasts = if wait.is_zero() {
                Duration::ZERO
            } else {
                expiry
            };
            state.open[i] = Some(Instant::now() + lasts + timeout);
            asked.push(i);
        }
        state.next = (state.next + asked.len().max(1)) % count.max(1);
        if !asked.is_empty() && wait.is_zero() && out.len() < max {
            // Requests answered at once: read their answers, within the
            // request timeout.
            let deadline = Instant::now() + timeout;
            while out.len() < max && asked.iter().any(|i| state.open[*i].is_some()) {
                match tokio::time::timeout_at(deadline, state.sub.next()).await {
                    Ok(Some(message)) => {
                        if parts.note(&mut state, &message) {
                            out.push(message);
                        }
                    }
                    Ok(None) => {
                        return Err(self.err(
                            "pull",
                            &self.inner.names.group,
                            "the subscription ended",
                        ));
                    }
                    Err(_) => break,
                }
            }
        }
        Ok(out)
    }

    /// The keyed deliveries this handle holds and has not handed to the
    /// bus (at close, to hand them back).
    pub(crate) async fn take_held_keyed(&self) -> Vec<String> {
        let Some(parts) = &self.inner.partitions else {
            return Vec::new();
        };
        let mut state = parts.state.lock().await;
        crate::receipt::of_all(&parts.drain(&mut state, usize::MAX))
    }

    /// The unacknowledged keyed events of the group, as its partition
    /// consumers count them (each asked again, as `backlog` asks the
    /// group's consumer, while its view ends before the last event this
    /// handle published to it).
    pub(crate) async fn keyed_backlog(&self) -> crate::Result<u64> {
        let Some(parts) = &self.inner.partitions else {
            return Ok(0);
        };
        let mut total = 0;
        for (consumer, published) in parts.consumers.iter().zip(&parts.published) {
            let mark = published.load(Ordering::Acquire);
            let mut checks = 0;
            let backlog = loop {
                let mut consumer = consumer.clone();
                let info = consumer
                    .info()
                    .await
                    .map_err(|err| self.err("consumer info", &self.inner.names.group, err))?;
                let backlog = info.num_pending + info.num_ack_pending as u64;
                let seen = if backlog > 0 {
                    u64::MAX
                } else {
                    info.delivered.stream_sequence
                };
                if seen >= mark || checks >= BACKLOG_RECHECKS {
                    if seen < mark {
                        let _ = published.compare_exchange(
                            mark,
                            0,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        );
                    }
                    break backlog;
                }
                checks += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            total += backlog;
        }
        Ok(total)
    }
}

/// Times a partition's backlog is asked again (as the group's).
const BACKLOG_RECHECKS: usize = 20;

impl Partitions {
    /// Notes what `message` says of its partition's request (answered by a
    /// delivery, or ended by a status); whether it is a delivery.
    fn note(&self, state: &mut State, message: &Message) -> bool {
        // A status comes on the request's inbox, `<inbox>.<i>`; a delivery
        // under the event's own subject, its ack subject naming the
        // partition's consumer (`$JS.ACK.<stream>.<group>~p<i>.…`).
        let partition = match (&message.status, &message.reply) {
            (None, Some(reply)) => reply
                .as_str()
                .split('.')
                .find_map(|token| token.strip_prefix(self.consumer_prefix.as_str()))
                .and_then(|i| i.parse::<usize>().ok()),
            _ => message
                .subject
                .as_str()
                .strip_prefix(self.inbox.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
                .and_then(|i| i.parse::<usize>().ok()),
        };
        if matches!(message.status, Some(StatusCode::IDLE_HEARTBEAT)) {
            return false;
        }
        if let Some(open) = partition.and_then(|i| state.open.get_mut(i)) {
            *open = None;
        }
        message.status.is_none() && message.reply.is_some()
    }

    /// Up to `max` deliveries held or already in the inbox, without
    /// waiting.
    fn drain(&self, state: &mut State, max: usize) -> Vec<Message> {
        let mut out = Vec::new();
        while out.len() < max {
            match state.sub.next().now_or_never() {
                Some(Some(message)) => {
                    if self.note(state, &message) {
                        out.push(message);
                    }
                }
                _ => break,
            }
        }
        out
    }

    /// The next message to arrive within `wait`, if any.
    async fn next_message(&self, wait: Duration) -> Option<Message> {
        let mut state = self.state.lock().await;
        tokio::time::timeout(wait, state.sub.next())
            .await
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        // Stored subjects depend on it: these values must never change.
        assert_eq!(partition_of("order-42", 16), partition_of("order-42", 16));
        assert_eq!(partition_of("anything", 1), 0);
        assert_eq!(partition_of("anything", 0), 0);
        let mut seen = std::collections::HashSet::new();
        for k in 0..200 {
            let p = partition_of(&format!("key-{k}"), 8);
            assert!(p < 8);
            seen.insert(p);
        }
        assert_eq!(seen.len(), 8, "200 keys reach every one of 8 partitions");
    }

    #[test]
    fn partition_names_are_never_a_prefix_or_a_group() {
        assert_eq!(subject_prefix("shop", 3), "shop_p3");
        assert_eq!(consumer_name("mailer", 3), "mailer~p3");
        assert_eq!(
            stream_subjects(&Names::new("shop", "g"), 2),
            vec!["shop.>", "shop_p0.>", "shop_p1.>"]
        );
    }
}
