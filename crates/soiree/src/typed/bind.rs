//! Binding typed listeners to typed topics.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::Instrument;

use super::topic::UnwrapFn;
use super::{ObservabilitySpec, TypedTopic};
use crate::{BoxError, EventContext, Listener, ListenerBinding};

/// A listener that takes the typed payload: any
/// `Fn(EventContext, T) -> impl Future<Output = Result<(), BoxError>>`.
pub trait TypedListener<T>: Send + Sync + 'static {
    /// Handles one event's payload.
    fn call(&self, ctx: EventContext, payload: T) -> BoxFuture<'static, Result<(), BoxError>>;
}

impl<T, F, Fut> TypedListener<T> for F
where
    F: Fn(EventContext, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    fn call(&self, ctx: EventContext, payload: T) -> BoxFuture<'static, Result<(), BoxError>> {
        Box::pin(self(ctx, payload))
    }
}

/// Binds a typed listener to a typed topic. The binding registers on a bus
/// with [`ListenerBinding::register`] or [`EventBus::register_listeners`](crate::EventBus::register_listeners).
///
/// A payload that does not unwrap into a `T` fails the listener with
/// [`Error::PayloadTypeMismatch`](crate::Error::PayloadTypeMismatch) as its source.
///
/// # Examples
///
/// ```
/// use soiree::{EventBus, TypedTopic, bind_listener};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Invoice { cents: u64 }
///
/// let topic = TypedTopic::<Invoice>::new("invoice.paid");
/// let binding = bind_listener(&topic, |_ctx, invoice: Invoice| async move {
///     assert!(invoice.cents > 0);
///     Ok(())
/// })
/// .named("ledger");
/// let bus = EventBus::new();
/// assert_eq!(binding.register(&bus).unwrap().as_str(), "ledger");
/// ```
pub fn bind_listener<T, F, Fut>(topic: &TypedTopic<T>, listener: F) -> ListenerBinding
where
    T: Send + Sync + 'static,
    F: Fn(EventContext, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    bind_typed_listener(topic, listener)
}

/// As [`bind_listener`], for any [`TypedListener`] implementation.
pub fn bind_typed_listener<T, L>(topic: &TypedTopic<T>, listener: L) -> ListenerBinding
where
    T: Send + Sync + 'static,
    L: TypedListener<T>,
{
    ListenerBinding::from_listener(
        topic.name(),
        Typed {
            unwrap: topic.unwrapper(),
            listener,
            spec: topic.observability().cloned(),
        },
    )
}

struct Typed<T, L> {
    unwrap: UnwrapFn<T>,
    listener: L,
    spec: Option<ObservabilitySpec<T>>,
}

impl<T, L> Listener for Typed<T, L>
where
    T: Send + Sync + 'static,
    L: TypedListener<T>,
{
    fn call(&self, ctx: EventContext) -> BoxFuture<'static, Result<(), BoxError>> {
        let payload = match (self.unwrap)(ctx.event()) {
            Ok(payload) => payload,
            Err(err) => return Box::pin(std::future::ready(Err(err.into()))),
        };
        let Some(spec) = &self.spec else {
            return self.listener.call(ctx, payload);
        };
        let trigger = match &spec.trigger {
            Some(trigger) => trigger(&ctx, &payload),
            None => ctx.topic().to_owned(),
        };
        let span = tracing::info_span!(
            "soiree.observed",
            operation = %spec.operation,
            origin = %spec.origin,
            trigger = %trigger,
        );
        let metrics = ctx.listener_metrics().clone();
        let (operation, origin) = (spec.operation.clone(), spec.origin.clone());
        let run = self.listener.call(ctx, payload);
        Box::pin(async move {
            let started = Instant::now();
            let outcome = AssertUnwindSafe(run).catch_unwind().instrument(span).await;
            let label = match &outcome {
                Ok(Ok(())) => "success",
                Ok(Err(_)) => "error",
                Err(_) => "panic",
            };
            metrics.observe(&operation, &origin, label, started.elapsed().as_secs_f64());
            match outcome {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}
