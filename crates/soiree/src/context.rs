//! The request context carried from the emitter to every listener.

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The emitter's request context: a cancellation token, an optional deadline,
/// typed extensions, and the emitter's tracing span.
///
/// Every listener of an emission sees the same context. Listeners that have
/// not started when the context is cancelled (or its deadline passes) are
/// skipped and reported as [`Error::Cancelled`](crate::Error::Cancelled); a
/// running listener can watch [`Context::done`] to stop early.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use soiree::Context;
/// use tokio_util::sync::CancellationToken;
///
/// #[derive(Debug, PartialEq)]
/// struct TenantId(u64);
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let token = CancellationToken::new();
/// let ctx = Context::new()
///     .with_cancellation(token.clone())
///     .with_timeout(Duration::from_secs(5))
///     .with_extension(TenantId(42));
/// assert_eq!(ctx.extension::<TenantId>(), Some(&TenantId(42)));
/// assert!(!ctx.is_done());
/// token.cancel();
/// assert!(ctx.is_done());
/// # }
/// ```
#[derive(Clone)]
pub struct Context {
    cancellation: Option<CancellationToken>,
    deadline: Option<Instant>,
    extensions: Option<Arc<HashMap<TypeId, Extension>>>,
    span: tracing::Span,
}

#[derive(Clone)]
struct Extension {
    value: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

impl Default for Context {
    /// A context with no span (listener spans are then roots unless `emit`
    /// adopts the caller's span).
    fn default() -> Self {
        Self {
            cancellation: None,
            deadline: None,
            extensions: None,
            span: tracing::Span::none(),
        }
    }
}

impl Context {
    /// A context with no cancellation, no deadline and no extensions, whose
    /// span is the caller's current tracing span.
    pub fn new() -> Self {
        Self {
            span: tracing::Span::current(),
            ..Self::default()
        }
    }

    /// Cancels the emission's remaining listeners when `token` is cancelled.
    #[must_use]
    pub fn with_cancellation(mut self, token: CancellationToken) -> Self {
        self.cancellation = Some(token);
        self
    }

    /// Skips listeners that would start after `deadline`.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the deadline `timeout` from now (no deadline if that overflows
    /// the clock).
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.with_deadline(deadline),
            None => self,
        }
    }

    /// Attaches a typed value that listeners read with [`Context::extension`].
    /// A second value of the same type replaces the first.
    #[must_use]
    pub fn with_extension<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        let mut map = self.extensions.as_deref().cloned().unwrap_or_default();
        map.insert(
            TypeId::of::<T>(),
            Extension {
                value: Arc::new(value),
                type_name: type_name::<T>(),
            },
        );
        self.extensions = Some(Arc::new(map));
        self
    }

    /// Makes `span` the parent of the listeners' spans.
    #[must_use]
    pub fn with_span(mut self, span: tracing::Span) -> Self {
        self.span = span;
        self
    }

    /// The typed value attached with [`Context::with_extension`].
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.extensions
            .as_ref()?
            .get(&TypeId::of::<T>())?
            .value
            .downcast_ref()
    }

    /// The cancellation token, if one was attached.
    pub fn cancellation_token(&self) -> Option<&CancellationToken> {
        self.cancellation.as_ref()
    }

    /// The deadline, if one was set.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The span that listener spans are children of.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Reports whether the context was cancelled or its deadline has passed.
    pub fn is_done(&self) -> bool {
        self.cancellation
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Completes when the context is cancelled or its deadline passes; never
    /// completes for a context with neither.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: it only observes the context.
    pub async fn done(&self) {
        let cancelled = async {
            match &self.cancellation {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let expired = async {
            match self.deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = cancelled => {}
            () = expired => {}
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extensions: Vec<&str> = self
            .extensions
            .iter()
            .flat_map(|map| map.values().map(|e| e.type_name))
            .collect();
        f.debug_struct("Context")
            .field(
                "cancelled",
                &self
                    .cancellation
                    .as_ref()
                    .map(CancellationToken::is_cancelled),
            )
            .field("deadline", &self.deadline)
            .field("extensions", &extensions)
            .field("span", &self.span)
            .finish()
    }
}
