//! Delays between attempts, built on `backon`'s backoff builders.

use std::time::Duration;

use backon::{BackoffBuilder, ConstantBuilder, ExponentialBuilder};

use crate::{Error, Result};

/// How long to wait before each retry.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use soiree::Backoff;
///
/// let backoff = Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1), 2.0)
///     .unwrap()
///     .with_jitter(false);
/// let delays: Vec<_> = backoff.delays().take(3).collect();
/// assert_eq!(delays, [Duration::from_millis(10), Duration::from_millis(20), Duration::from_millis(40)]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    kind: Kind,
    jitter: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Exponential {
        min: Duration,
        max: Duration,
        factor: f32,
    },
    Constant(Duration),
}

impl Default for Backoff {
    /// Exponential from 100 ms, doubling, capped at 10 s, with jitter.
    fn default() -> Self {
        Self {
            kind: Kind::Exponential {
                min: Duration::from_millis(100),
                max: Duration::from_secs(10),
                factor: 2.0,
            },
            jitter: true,
        }
    }
}

impl Backoff {
    /// Delays that start at `min` and grow by `factor` up to `max`; jitter on.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `factor` is below 1 (or not finite) or
    /// `min` exceeds `max`.
    pub fn exponential(min: Duration, max: Duration, factor: f32) -> Result<Self> {
        if !factor.is_finite() || factor < 1.0 {
            return Err(Error::InvalidConfig(format!(
                "backoff factor must be at least 1, got {factor}"
            )));
        }
        if min > max {
            return Err(Error::InvalidConfig(format!(
                "backoff minimum {min:?} exceeds its maximum {max:?}"
            )));
        }
        Ok(Self {
            kind: Kind::Exponential { min, max, factor },
            jitter: true,
        })
    }

    /// The same delay before every retry; jitter off.
    pub fn constant(delay: Duration) -> Self {
        Self {
            kind: Kind::Constant(delay),
            jitter: false,
        }
    }

    /// Retries at once.
    pub fn none() -> Self {
        Self::constant(Duration::ZERO)
    }

    /// Turns random jitter on or off (off makes delays deterministic).
    #[must_use]
    pub fn with_jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delays before the first retry, the second, and so on, without end,
    /// rounded to whole microseconds (the builders multiply in floating point).
    pub fn delays(&self) -> Box<dyn Iterator<Item = Duration> + Send> {
        Box::new(self.raw_delays().map(round_to_micros))
    }

    fn raw_delays(&self) -> Box<dyn Iterator<Item = Duration> + Send> {
        match self.kind {
            Kind::Exponential { min, max, factor } => {
                let builder = ExponentialBuilder::default()
                    .with_min_delay(min)
                    .with_max_delay(max)
                    .with_factor(factor)
                    .without_max_times();
                let builder = if self.jitter {
                    builder.with_jitter()
                } else {
                    builder
                };
                Box::new(builder.build())
            }
            Kind::Constant(delay) => {
                let builder = ConstantBuilder::default()
                    .with_delay(delay)
                    .without_max_times();
                let builder = if self.jitter {
                    builder.with_jitter()
                } else {
                    builder
                };
                Box::new(builder.build())
            }
        }
    }
}

fn round_to_micros(delay: Duration) -> Duration {
    // `as` saturates for out-of-range floats, so this cannot overflow.
    Duration::from_micros((delay.as_secs_f64() * 1e6).round() as u64)
}
