//! What a listener is limited to.

use std::time::Duration;

/// How long a slot of a shared store is held without renewal: a process
/// that dies holding one frees it after this long.
pub(crate) const DEFAULT_SLOT_TTL: Duration = Duration::from_secs(30);

/// A listener's limits, set on its [`ListenerBinding`](crate::ListenerBinding)
/// ([`max_concurrent`](crate::ListenerBinding::max_concurrent),
/// [`max_concurrent_per_key`](crate::ListenerBinding::max_concurrent_per_key),
/// [`rate`](crate::ListenerBinding::rate)). Every limit set applies: a run
/// starts once each has room.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerLimits {
    /// The most runs of the listener at once.
    pub max_concurrent: Option<u32>,
    /// The event property naming a run's key, and the most runs per key at once.
    pub per_key: Option<(String, u32)>,
    /// The most runs started per period: `(count, period)`.
    pub rate: Option<(u32, Duration)>,
    /// How long a shared store's slot lives without renewal (default 30 s).
    pub slot_ttl: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_concurrent: None,
            per_key: None,
            rate: None,
            slot_ttl: DEFAULT_SLOT_TTL,
        }
    }
}

impl ListenerLimits {
    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.max_concurrent.is_some() || self.per_key.is_some() || self.rate.is_some()
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        let zero = |what: &str| {
            Err(crate::Error::InvalidConfig(format!(
                "{what} must be at least 1: a listener limited to 0 would never run"
            )))
        };
        if self.max_concurrent == Some(0) {
            return zero("max_concurrent");
        }
        if matches!(self.per_key, Some((_, 0))) {
            return zero("max_concurrent_per_key");
        }
        if let Some((count, period)) = self.rate {
            if count == 0 {
                return zero("the rate's count");
            }
            if period.is_zero() {
                return zero("the rate's period");
            }
        }
        if self.slot_ttl < Duration::from_millis(30) {
            return Err(crate::Error::InvalidConfig(
                "limit_slot_ttl must be at least 30 ms: slots are renewed every third of it".into(),
            ));
        }
        Ok(())
    }
}
