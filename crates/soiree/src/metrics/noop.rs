//! Without the `metrics` feature: the same handles, counting nothing, so
//! that the hot paths compile to nothing.

/// Stands in for the registry inside the crate.
#[derive(Debug, Clone, Default)]
pub(crate) struct MetricsRegistry;

impl MetricsRegistry {
    pub(crate) fn global() -> &'static MetricsRegistry {
        static GLOBAL: MetricsRegistry = MetricsRegistry;
        &GLOBAL
    }

    pub(crate) fn claim_pool_label(&self, name: &str) -> PoolLabel {
        PoolLabel(name.to_owned())
    }
}

#[derive(Debug)]
pub(crate) struct PoolLabel(String);

impl PoolLabel {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A counter that counts nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Noop;

impl Noop {
    #[inline]
    pub(crate) fn inc(&self) {}

    #[inline]
    pub(crate) fn observe(&self, _: f64) {}
}

#[derive(Debug, Clone, Default)]
pub(crate) struct PoolMetrics {
    pub(crate) submitted: Noop,
    pub(crate) started: Noop,
    pub(crate) completed: Noop,
    pub(crate) panicked: Noop,
    pub(crate) rejected: Noop,
}

impl PoolMetrics {
    pub(crate) fn new(_: &MetricsRegistry, _: &str) -> Self {
        Self::default()
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct BusMetrics {
    pub(crate) emitted: Noop,
    pub(crate) unrouted: Noop,
    pub(crate) unheard: Noop,
}

impl BusMetrics {
    pub(crate) fn new(_: &MetricsRegistry, _: &str, _timing: bool) -> Self {
        Self::default()
    }

    pub(crate) fn listener(&self, _: &str, _: &str) -> ListenerCounters {
        ListenerCounters::default()
    }

    pub(crate) fn limit_wait(&self, _: &str, _: &str) -> LimitWait {
        Noop
    }
}

pub(crate) type LimitWait = Noop;

#[derive(Debug, Clone, Default)]
pub(crate) struct ListenerCounters {
    pub(crate) ok: Noop,
    pub(crate) error: Noop,
    pub(crate) panic: Noop,
    pub(crate) snoozed: Noop,
    pub(crate) retried: Noop,
    pub(crate) duration: Option<Noop>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ListenerMetrics;

impl ListenerMetrics {
    pub(crate) fn new(_: &MetricsRegistry) -> Self {
        Self
    }

    pub(crate) fn observe(&self, _: &str, _: &str, _: &str, _: f64) {}
}
