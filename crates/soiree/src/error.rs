//! The crate's error type.

use std::error::Error as StdError;

use crate::ListenerId;

/// A boxed error, as returned by listeners and stores.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result` with [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Soiree.
///
/// The first variants are the Go package's sentinel errors; the rest carry the
/// context a caller needs to act on a failure (which listener, which topic).
///
/// # Examples
///
/// ```
/// use soiree::{EventBus, Error};
///
/// let bus = EventBus::new();
/// let err = bus.on("bad..name", |_ctx| async { Ok(()) }).unwrap_err();
/// assert!(matches!(err, Error::InvalidTopicName { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A topic name or pattern is empty, has an empty segment, contains `?` or
    /// `[`, is longer than [`MAX_TOPIC_LEN`](crate::MAX_TOPIC_LEN) bytes or
    /// has more than [`MAX_TOPIC_SEGMENTS`](crate::MAX_TOPIC_SEGMENTS)
    /// segments, or (for an emitted topic) contains a wildcard.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The name as given, cut to its first 64 characters followed by `…`
        /// when it is longer, so that a huge name makes a small error.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// `off` named a pattern with no listeners.
    #[error("topic not found: {0:?}")]
    TopicNotFound(String),
    /// A listener with this id is already registered on the bus (ids name
    /// listeners in stores' de-duplication, so they must be unique).
    #[error("listener id already registered: {0:?}")]
    DuplicateListener(String),
    /// `off` named a listener id that is not registered on the pattern.
    #[error("listener not found: {0:?}")]
    ListenerNotFound(String),
    /// The bus (or pool) is closed.
    #[error("event bus is closed")]
    Closed,
    /// A standalone [`Pool`](crate::Pool) was released and takes no more tasks.
    #[error("pool is released")]
    PoolReleased,
    /// `close` was called on a bus that was already closed.
    #[error("event bus is already closed")]
    AlreadyClosed,
    /// The event carries no payload where one was required.
    #[error("nil payload")]
    NilPayload,
    /// The payload is not of the requested type and could not be decoded into it.
    #[error("payload type mismatch: expected {expected}: {reason}")]
    PayloadTypeMismatch {
        /// The requested type.
        expected: &'static str,
        /// What was found instead, or why decoding failed.
        reason: String,
    },
    /// The topic passed to `emit` disagrees with the event's own topic.
    #[error("event topic mismatch: emitted on {emitted:?} but the event's topic is {event:?}")]
    EventTopicMismatch {
        /// The topic given to `emit`.
        emitted: String,
        /// The event's own topic.
        event: String,
    },
    /// A listener returned an error (after its last retry, or at once for a
    /// [`Permanent`] one).
    #[error("listener {listener_id} failed on {topic:?}: {source}")]
    Listener {
        /// The listener that failed.
        listener_id: ListenerId,
        /// The emitted topic.
        topic: String,
        /// What the listener returned (a [`Permanent`] stays one: downcast
        /// to tell).
        #[source]
        source: BoxError,
    },
    /// A listener panicked; the panic was caught and the other listeners ran.
    #[error("listener {listener_id} panicked: {message}")]
    Panicked {
        /// The listener that panicked.
        listener_id: ListenerId,
        /// The panic message.
        message: String,
    },
    /// A listener ran longer than the bus's
    /// [`listener_timeout`](crate::EventBusBuilder::listener_timeout) and was
    /// cancelled. Not retried: a hung listener would hang again.
    #[error("listener {listener_id} timed out after {after:?} on {topic:?}")]
    TimedOut {
        /// The listener that was cancelled.
        listener_id: ListenerId,
        /// The event's topic.
        topic: String,
        /// The limit it ran into.
        after: std::time::Duration,
    },
    /// A store operation failed.
    #[error("store error: {0}")]
    Store(#[source] BoxError),
    /// [`EventQueue::ack`](crate::EventQueue::ack) (or `fail`, `defer`)
    /// settled the other deliveries but not these: a listener result of
    /// theirs could not be saved (results before ack). They are delivered
    /// again after their lease; the bus does not try the call again.
    #[error(
        "{deliveries} deliveries not settled: listener results of theirs could not be saved (delivered again)"
    )]
    ResultsNotSaved {
        /// How many deliveries were not settled.
        deliveries: usize,
    },
    /// [`EventQueue::ack`](crate::EventQueue::ack) (or `fail`, `defer`)
    /// settled the other deliveries but not these: their leases had expired
    /// or been claimed again by another consumer, which now holds them. They
    /// are delivered again (or already were); the bus does not try the call
    /// again, which could settle nothing more.
    #[error(
        "{deliveries} deliveries not settled: their leases expired or were claimed again (delivered again)"
    )]
    LeasesLost {
        /// How many deliveries were not settled.
        deliveries: usize,
    },
    /// A payload or stored entry could not be (de)serialized.
    #[error("serialization error: {0}")]
    Serialization(#[source] BoxError),
    /// The emission's context was cancelled, or its deadline passed, before
    /// this listener started.
    #[error("cancelled before listener {listener_id} started")]
    Cancelled {
        /// The listener that was skipped.
        listener_id: ListenerId,
    },
    /// A configuration value was rejected.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The bus's (or pool's) queue is full: a non-waiting emit or submit was
    /// refused rather than queued beyond the bound. Use the waiting form
    /// ([`EventBus::emit_async`](crate::EventBus::emit_async),
    /// [`Pool::submit_async`](crate::Pool::submit_async)) for backpressure.
    #[error("queue is full")]
    QueueFull,
    /// No tokio runtime was available to run the work.
    #[error("no tokio runtime: call this from within a tokio runtime")]
    NoRuntime,
    /// A string is not one of the values of an enumeration (for example a
    /// `WorkflowActionType` of the `workflow` feature).
    #[error("invalid {kind} value {value:?}")]
    InvalidValue {
        /// The enumeration's name.
        kind: &'static str,
        /// The string as given.
        value: String,
    },
    /// An event is past one of the [`limits`](crate::limits) that every
    /// entry point enforces (nesting depth, payload or properties size,
    /// event id or property key length): refused before anything was
    /// written. `what` is one of the `limits::WHAT_*` names; `actual` is the
    /// size found, or for a nesting depth the first level past the limit
    /// (what lies deeper is not looked at).
    #[error("{what} over the limit: {actual} (limit {limit})")]
    LimitExceeded {
        /// What is over its limit, such as `payload nesting depth`.
        what: &'static str,
        /// The limit.
        limit: usize,
        /// What was found.
        actual: usize,
    },
    /// An event id cannot be stored (it holds a NUL character).
    #[error("invalid event id {id:?}: {reason}")]
    InvalidEventId {
        /// The id as given, cut as [`Error::InvalidTopicName`]'s `name`.
        id: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The bus or its store cannot do what was asked (a delayed event on a
    /// queue store that does not schedule, a unique key on a store without
    /// [`append_unique`](crate::EventStore::append_unique)): refused before
    /// anything was written, rather than done wrong (delivered early,
    /// stored twice). The text says what and where it is supported.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An inspection or replay named something the store does not hold.
    #[error("no {what} with id {id:?}")]
    NotFound {
        /// What was looked for: `event`, `dead letter`.
        what: &'static str,
        /// The id as given.
        id: String,
    },
}

impl Error {
    /// The listener this error is about, if it is about one.
    pub(crate) fn listener_id(&self) -> Option<&ListenerId> {
        match self {
            Self::Listener { listener_id, .. }
            | Self::Panicked { listener_id, .. }
            | Self::TimedOut { listener_id, .. }
            | Self::Cancelled { listener_id } => Some(listener_id),
            _ => None,
        }
    }

    /// Wraps any error as a [`Error::Store`] error.
    pub fn store(err: impl Into<BoxError>) -> Self {
        Self::Store(err.into())
    }

    /// Wraps any error as a [`Error::Serialization`] error.
    pub fn serialization(err: impl Into<BoxError>) -> Self {
        Self::Serialization(err.into())
    }

    /// A copy for a second reader (the error handler, beside the emission
    /// that keeps the original): the same variant and message, with a source
    /// error kept as its text.
    pub(crate) fn duplicate(&self) -> Self {
        let text = |source: &BoxError| -> BoxError { source.to_string().into() };
        match self {
            Self::InvalidTopicName { name, reason } => Self::InvalidTopicName {
                name: name.clone(),
                reason,
            },
            Self::TopicNotFound(name) => Self::TopicNotFound(name.clone()),
            Self::DuplicateListener(id) => Self::DuplicateListener(id.clone()),
            Self::ListenerNotFound(id) => Self::ListenerNotFound(id.clone()),
            Self::Closed => Self::Closed,
            Self::PoolReleased => Self::PoolReleased,
            Self::AlreadyClosed => Self::AlreadyClosed,
            Self::NilPayload => Self::NilPayload,
            Self::PayloadTypeMismatch { expected, reason } => Self::PayloadTypeMismatch {
                expected,
                reason: reason.clone(),
            },
            Self::EventTopicMismatch { emitted, event } => Self::EventTopicMismatch {
                emitted: emitted.clone(),
                event: event.clone(),
            },
            Self::Listener {
                listener_id,
                topic,
                source,
            } => Self::Listener {
                listener_id: listener_id.clone(),
                topic: topic.clone(),
                source: text(source),
            },
            Self::Panicked {
                listener_id,
                message,
            } => Self::Panicked {
                listener_id: listener_id.clone(),
                message: message.clone(),
            },
            Self::TimedOut {
                listener_id,
                topic,
                after,
            } => Self::TimedOut {
                listener_id: listener_id.clone(),
                topic: topic.clone(),
                after: *after,
            },
            Self::Store(source) => Self::Store(text(source)),
            Self::ResultsNotSaved { deliveries } => Self::ResultsNotSaved {
                deliveries: *deliveries,
            },
            Self::LeasesLost { deliveries } => Self::LeasesLost {
                deliveries: *deliveries,
            },
            Self::Serialization(source) => Self::Serialization(text(source)),
            Self::Cancelled { listener_id } => Self::Cancelled {
                listener_id: listener_id.clone(),
            },
            Self::InvalidConfig(reason) => Self::InvalidConfig(reason.clone()),
            Self::QueueFull => Self::QueueFull,
            Self::NoRuntime => Self::NoRuntime,
            Self::InvalidValue { kind, value } => Self::InvalidValue {
                kind,
                value: value.clone(),
            },
            Self::Unsupported(what) => Self::Unsupported(what.clone()),
            Self::NotFound { what, id } => Self::NotFound {
                what,
                id: id.clone(),
            },
            Self::LimitExceeded {
                what,
                limit,
                actual,
            } => Self::LimitExceeded {
                what,
                limit: *limit,
                actual: *actual,
            },
            Self::InvalidEventId { id, reason } => Self::InvalidEventId {
                id: id.clone(),
                reason,
            },
        }
    }

    pub(crate) fn invalid_topic(name: &str, reason: &'static str) -> Self {
        Self::InvalidTopicName {
            name: shown(name),
            reason,
        }
    }

    pub(crate) fn invalid_event_id(id: &str, reason: &'static str) -> Self {
        Self::InvalidEventId {
            id: shown(id),
            reason,
        }
    }
}

/// The part of a rejected name that its error keeps: a huge name makes a
/// small error.
fn shown(name: &str) -> String {
    /// The characters of a rejected name that its error keeps.
    const SHOWN_CHARS: usize = 64;
    match name.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &name[..cut]),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown_name(name: &str) -> String {
        match Error::invalid_topic(name, "test") {
            Error::InvalidTopicName { name, .. } => name,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_topic_names_are_cut_to_64_characters() {
        let short = "é".repeat(64);
        assert_eq!(shown_name(&short), short);
        let long = format!("{short}x{}", "y".repeat(1 << 20));
        assert_eq!(shown_name(&long), format!("{short}…"));
    }
}

/// A listener error that retrying will not fix: the bus does not run the
/// listener again, whatever its [`RetryPolicy`](crate::RetryPolicy) (apalis'
/// `AbortError` is the precedent).
///
/// It is transparent: it displays as, and has the source of, the error it
/// wraps. The final [`Error::Listener`] carries it as its source, so that
/// callers can tell by downcasting. Only a listener's error itself is looked
/// at, not its `source()` chain.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures::StreamExt;
/// use soiree::{Backoff, Error, EventBus, Permanent, RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let retry = RetryPolicy::attempts(5)
///     .unwrap()
///     .with_backoff(Backoff::constant(Duration::from_millis(10)));
/// let bus = EventBus::builder().retry(retry).build().unwrap();
/// bus.on("user.created", |ctx| async move {
///     let Some(email) = ctx.property_str("email") else {
///         // No attempt will bring the email: do not retry.
///         return Err(Permanent::new("no email").into());
///     };
///     println!("welcome {email}");
///     Ok(())
/// }).unwrap();
///
/// let errors: Vec<Error> = bus.emit("user.created", ()).collect().await;
/// let [Error::Listener { source, .. }] = errors.as_slice() else {
///     panic!("expected one listener error, got {errors:?}");
/// };
/// assert!(source.is::<Permanent>());
/// assert_eq!(source.to_string(), "no email");
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Permanent {
    inner: BoxError,
}

impl Permanent {
    /// Marks `err` permanent (an error that is already [`Permanent`] is not
    /// wrapped again).
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::Permanent;
    ///
    /// let err = Permanent::new("the order was deleted");
    /// assert_eq!(err.to_string(), "the order was deleted");
    /// let again = Permanent::new(err);
    /// assert!(!again.get_ref().is::<Permanent>(), "not nested");
    /// ```
    pub fn new(err: impl Into<BoxError>) -> Self {
        match err.into().downcast::<Self>() {
            Ok(permanent) => *permanent,
            Err(inner) => Self { inner },
        }
    }

    /// The wrapped error.
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner
    }

    /// Unwraps the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree::Permanent;
    ///
    /// let inner = Permanent::new("gone").into_inner();
    /// assert_eq!(inner.to_string(), "gone");
    /// ```
    pub fn into_inner(self) -> BoxError {
        self.inner
    }
}

/// Marks `err` [`Permanent`], as a listener's [`BoxError`]: the listener is
/// not retried.
///
/// # Examples
///
/// ```
/// use soiree::{BoxError, EventBus, EventContext, permanent};
///
/// async fn charge(ctx: EventContext) -> Result<(), BoxError> {
///     let amount: u64 = ctx
///         .property_str("amount")
///         .ok_or_else(|| permanent("no amount"))?
///         .parse()
///         .map_err(permanent)?;
///     println!("charging {amount}");
///     Ok(())
/// }
///
/// let bus = EventBus::new();
/// bus.on("order.placed", charge).unwrap();
/// ```
pub fn permanent(err: impl Into<BoxError>) -> BoxError {
    Box::new(Permanent::new(err))
}
