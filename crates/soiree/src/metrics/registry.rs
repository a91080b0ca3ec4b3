//! A shareable Prometheus registry that registers each metric family once.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::{Metric, Registry};

/// A handle to a Prometheus registry (from the official `prometheus-client`
/// crate), cheap to clone and shared between threads.
///
/// Soiree registers each metric family once per registry, whatever the number
/// of buses and pools that report to it; their series are told apart by
/// labels (`pool`, `operation`, …).
///
/// # Examples
///
/// ```
/// use soiree::{MetricsRegistry, Pool, PoolOptions};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let registry = MetricsRegistry::new();
/// let pool = Pool::new(PoolOptions::default().name("jobs").registry(registry.clone())).unwrap();
/// pool.submit(async {}).unwrap();
/// pool.wait_for_idle().await;
/// let text = registry.encode();
/// assert!(text.contains(r#"soiree_pool_tasks_completed_total{pool="jobs"} 1"#));
/// # }
/// ```
#[derive(Clone)]
pub struct MetricsRegistry {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    registry: Registry,
    families: HashMap<String, Box<dyn Any + Send>>,
    /// `pool` labels of live pools, so that two do not share series.
    pools: std::collections::HashSet<String>,
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::from_registry(Registry::default())
    }

    /// Wraps an existing `prometheus-client` registry.
    pub fn from_registry(registry: Registry) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                registry,
                families: HashMap::new(),
                pools: std::collections::HashSet::new(),
            })),
        }
    }

    /// The process-wide default registry that soiree reports to unless told
    /// otherwise.
    pub fn global() -> &'static MetricsRegistry {
        static GLOBAL: OnceLock<MetricsRegistry> = OnceLock::new();
        GLOBAL.get_or_init(MetricsRegistry::new)
    }

    /// Returns the metric registered under `name`, registering `make()` first
    /// if there is none. A name already registered with another metric type
    /// gets a fresh, unregistered metric and a logged warning, never a panic.
    pub fn metric<M>(&self, name: &str, help: &str, make: impl FnOnce() -> M) -> M
    where
        M: Metric + Clone,
    {
        let mut inner = self.lock();
        if let Some(existing) = inner.families.get(name) {
            if let Some(metric) = existing.downcast_ref::<M>() {
                return metric.clone();
            }
            tracing::warn!(name, "metric already registered with another type");
            return make();
        }
        let metric = make();
        inner.registry.register(name, help, metric.clone());
        inner
            .families
            .insert(name.to_owned(), Box::new(metric.clone()));
        metric
    }

    /// Encodes every registered metric in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.lock().registry);
        text
    }

    /// Runs `f` with the underlying registry, to register metrics of your own
    /// or to encode in another format.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.lock().registry)
    }

    /// Takes a `pool` label for a live pool: `name` itself, or, while another
    /// live pool of this registry has it, `name-2`, `name-3`, … so that no
    /// two pools share series. Given back when the claim drops.
    pub(crate) fn claim_pool_label(&self, name: &str) -> PoolLabel {
        let mut inner = self.lock();
        let mut label = name.to_owned();
        let mut n = 1;
        while inner.pools.contains(&label) {
            n += 1;
            label = format!("{name}-{n}");
        }
        if n > 1 {
            tracing::debug!(
                name,
                label,
                "a live pool has this name: its metrics use another label"
            );
        }
        inner.pools.insert(label.clone());
        PoolLabel {
            label,
            registry: self.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let families: Vec<String> = self.lock().families.keys().cloned().collect();
        f.debug_struct("MetricsRegistry")
            .field("families", &families)
            .finish()
    }
}

/// A live pool's claim on its `pool` label.
pub(crate) struct PoolLabel {
    label: String,
    registry: MetricsRegistry,
}

impl PoolLabel {
    pub(crate) fn as_str(&self) -> &str {
        &self.label
    }
}

impl fmt::Debug for PoolLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

impl Drop for PoolLabel {
    fn drop(&mut self) {
        self.registry.lock().pools.remove(&self.label);
    }
}
