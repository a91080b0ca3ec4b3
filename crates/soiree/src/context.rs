//! The request context carried from the emitter to every listener.

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
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
/// use soiree::{CancellationToken, Context};
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
#[derive(Clone, Default)]
pub struct Context {
    /// `None` for the empty context, which most emissions carry: it then
    /// costs one word in each event.
    parts: Option<Arc<Parts>>,
}

#[derive(Clone)]
struct Parts {
    cancellation: Option<CancellationToken>,
    deadline: Option<Instant>,
    extensions: HashMap<TypeId, Extension>,
    span: tracing::Span,
}

impl Default for Parts {
    fn default() -> Self {
        Self {
            cancellation: None,
            deadline: None,
            extensions: HashMap::new(),
            span: tracing::Span::none(),
        }
    }
}

#[derive(Clone)]
struct Extension {
    value: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

/// The span of a context that names none.
fn no_span() -> &'static tracing::Span {
    static NONE: OnceLock<tracing::Span> = OnceLock::new();
    NONE.get_or_init(tracing::Span::none)
}

impl Context {
    /// A context with no cancellation, no deadline and no extensions, whose
    /// span is the caller's current tracing span.
    pub fn new() -> Self {
        Self::default().with_span(tracing::Span::current())
    }

    fn parts(&self) -> Option<&Parts> {
        self.parts.as_deref()
    }

    fn parts_mut(&mut self) -> &mut Parts {
        Arc::make_mut(self.parts.get_or_insert_with(Arc::default))
    }

    /// Cancels the emission's remaining listeners when `token` is cancelled.
    #[must_use]
    pub fn with_cancellation(mut self, token: CancellationToken) -> Self {
        self.parts_mut().cancellation = Some(token);
        self
    }

    /// Skips listeners that would start after `deadline`.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.parts_mut().deadline = Some(deadline);
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
        self.parts_mut().extensions.insert(
            TypeId::of::<T>(),
            Extension {
                value: Arc::new(value),
                type_name: type_name::<T>(),
            },
        );
        self
    }

    /// Makes `span` the parent of the listeners' spans.
    #[must_use]
    pub fn with_span(mut self, span: tracing::Span) -> Self {
        if span.is_none() && self.parts.is_none() {
            return self;
        }
        self.parts_mut().span = span;
        self
    }

    /// The typed value attached with [`Context::with_extension`].
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.parts()?
            .extensions
            .get(&TypeId::of::<T>())?
            .value
            .downcast_ref()
    }

    /// The cancellation token, if one was attached.
    pub fn cancellation_token(&self) -> Option<&CancellationToken> {
        self.parts()?.cancellation.as_ref()
    }

    /// The deadline, if one was set.
    pub fn deadline(&self) -> Option<Instant> {
        self.parts()?.deadline
    }

    /// The span that listener spans are children of.
    pub fn span(&self) -> &tracing::Span {
        match self.parts() {
            Some(parts) => &parts.span,
            None => no_span(),
        }
    }

    /// Reports whether the context was cancelled or its deadline has passed.
    pub fn is_done(&self) -> bool {
        let Some(parts) = self.parts() else {
            return false;
        };
        parts
            .cancellation
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
            || parts.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Completes when the context is cancelled or its deadline passes; never
    /// completes for a context with neither.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: it only observes the context.
    pub async fn done(&self) {
        let cancelled = async {
            match self.cancellation_token() {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let expired = async {
            match self.deadline() {
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
            .parts()
            .iter()
            .flat_map(|parts| parts.extensions.values().map(|e| e.type_name))
            .collect();
        f.debug_struct("Context")
            .field(
                "cancelled",
                &self
                    .cancellation_token()
                    .map(CancellationToken::is_cancelled),
            )
            .field("deadline", &self.deadline())
            .field("extensions", &extensions)
            .field("span", self.span())
            .finish()
    }
}
