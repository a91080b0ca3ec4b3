//! A topic with a payload type.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ObservabilitySpec, unwrap_payload};
use crate::topic::validate_topic;
use crate::{Event, Payload, Result};

type WrapFn<T> = Arc<dyn Fn(T) -> Event + Send + Sync>;
pub(crate) type UnwrapFn<T> = Arc<dyn Fn(&Event) -> Result<T> + Send + Sync>;

/// A topic whose events carry a `T`: it wraps payloads into events and
/// unwraps them for [typed listeners](crate::bind_listener).
///
/// The default wrap makes an [`Event`] with the payload; the default unwrap is
/// [`unwrap_payload`] (downcast, then JSON for payloads from a store). Either
/// can be replaced.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use soiree::{EventBus, TypedTopic, bind_listener};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct UserEvent { id: String }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
/// let topic = TypedTopic::<UserEvent>::new("user.created");
/// let bus = EventBus::new();
/// bus.register_listeners([bind_listener(&topic, |ctx, user: UserEvent| async move {
///     ctx.properties().set("user_id", user.id);
///     Ok(())
/// })])?;
///
/// let event = topic.wrap(UserEvent { id: "user-123".into() })?;
/// let errors: Vec<_> = bus.emit(topic.name(), event).collect().await;
/// assert!(errors.is_empty());
/// # Ok(()) }
/// ```
pub struct TypedTopic<T> {
    name: Arc<str>,
    wrap: WrapFn<T>,
    unwrap: UnwrapFn<T>,
    observability: Option<ObservabilitySpec<T>>,
}

impl<T> TypedTopic<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// A typed topic with the default wrap and unwrap.
    pub fn new(name: impl AsRef<str>) -> Self {
        let name: Arc<str> = Arc::from(name.as_ref().trim());
        let topic = Arc::clone(&name);
        Self {
            name,
            wrap: Arc::new(move |payload| Event::new(&*topic, payload)),
            unwrap: Arc::new(unwrap_payload::<T>),
            observability: None,
        }
    }
}

impl<T: Clone + Send + Sync + 'static> TypedTopic<T> {
    /// A typed topic for payloads that stay in this process and need no
    /// serde: a payload holding a client, a channel or a handle (the Go
    /// package's `MutationPayload` carries its ent client). Listeners get
    /// the value itself (downcast, cloned).
    ///
    /// Such a payload has no JSON form, so a bus with a store refuses it:
    /// the emission fails with [`Error::Serialization`](crate::Error::Serialization)
    /// naming the type, and nothing is stored half-way.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use futures::StreamExt;
    /// use soiree::{EventBus, TypedTopic, bind_listener};
    ///
    /// struct Mailer; // no serde
    ///
    /// #[derive(Clone)]
    /// struct SendWelcome { to: String, mailer: Arc<Mailer> }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
    /// let topic = TypedTopic::<SendWelcome>::in_memory("mail.welcome");
    /// let bus = EventBus::new();
    /// bind_listener(&topic, |_ctx, job: SendWelcome| async move {
    ///     let _mailer = &job.mailer;
    ///     println!("welcome {}", job.to);
    ///     Ok(())
    /// })
    /// .register(&bus)?;
    /// let event = topic.wrap(SendWelcome { to: "ada@example.com".into(), mailer: Arc::new(Mailer) })?;
    /// let errors: Vec<_> = bus.emit(topic.name(), event).collect().await;
    /// assert!(errors.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn in_memory(name: impl AsRef<str>) -> Self {
        let name: Arc<str> = Arc::from(name.as_ref().trim());
        let topic = Arc::clone(&name);
        Self {
            name,
            wrap: Arc::new(move |payload| Event::with_payload(&*topic, Payload::opaque(payload))),
            unwrap: Arc::new(|event: &Event| {
                event.payload().downcast_ref::<T>().cloned().ok_or_else(|| {
                    crate::Error::PayloadTypeMismatch {
                        expected: std::any::type_name::<T>(),
                        reason: format!(
                            "an in-memory typed topic's payload must be the value itself, found {}",
                            event.payload().type_name().unwrap_or("JSON")
                        ),
                    }
                })
            }),
            observability: None,
        }
    }
}

impl<T> TypedTopic<T> {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The observability spec, if one was set.
    pub fn observability(&self) -> Option<&ObservabilitySpec<T>> {
        self.observability.as_ref()
    }
}

impl<T: Send + Sync + 'static> TypedTopic<T> {
    /// Replaces how a payload becomes an event.
    #[must_use]
    pub fn with_wrap(mut self, wrap: impl Fn(T) -> Event + Send + Sync + 'static) -> Self {
        self.wrap = Arc::new(wrap);
        self
    }

    /// Replaces how an event yields its payload.
    #[must_use]
    pub fn with_unwrap(
        mut self,
        unwrap: impl Fn(&Event) -> Result<T> + Send + Sync + 'static,
    ) -> Self {
        self.unwrap = Arc::new(unwrap);
        self
    }

    /// Records a span and the listener duration histogram for every listener run.
    #[must_use]
    pub fn with_observability(mut self, spec: ObservabilitySpec<T>) -> Self {
        self.observability = Some(spec);
        self
    }

    /// Wraps a payload into an event on this topic.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTopicName`](crate::Error::InvalidTopicName) when the
    /// topic's name is not a valid concrete topic, and
    /// [`Error::EventTopicMismatch`](crate::Error::EventTopicMismatch) when a
    /// custom wrap put the event on another topic.
    pub fn wrap(&self, payload: T) -> Result<Event> {
        validate_topic(&self.name)?;
        let event = (self.wrap)(payload);
        if event.topic().trim() != &*self.name {
            return Err(crate::Error::EventTopicMismatch {
                emitted: self.name.to_string(),
                event: event.topic().to_owned(),
            });
        }
        Ok(event)
    }

    /// Unwraps an event's payload with this topic's unwrap.
    ///
    /// # Errors
    ///
    /// Whatever the unwrap returns; by default as [`unwrap_payload`].
    pub fn unwrap(&self, event: &Event) -> Result<T> {
        (self.unwrap)(event)
    }

    pub(crate) fn unwrapper(&self) -> UnwrapFn<T> {
        Arc::clone(&self.unwrap)
    }
}

impl<T> Clone for TypedTopic<T> {
    fn clone(&self) -> Self {
        Self {
            name: Arc::clone(&self.name),
            wrap: Arc::clone(&self.wrap),
            unwrap: Arc::clone(&self.unwrap),
            observability: self.observability.clone(),
        }
    }
}

impl<T> fmt::Debug for TypedTopic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedTopic")
            .field("name", &self.name)
            .field("payload", &std::any::type_name::<T>())
            .field("observability", &self.observability)
            .finish()
    }
}
