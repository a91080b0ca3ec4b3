//! The stats history: a background task samples the store every
//! `sample_every` into a ring buffer, for throughput and backlog over time.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError, atomic::Ordering},
    time::{Duration, SystemTime},
};

use serde::Serialize;
use soiree::StoreStats;

/// One point of the chart.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Sample {
    /// Milliseconds since the Unix epoch.
    pub(crate) t: u64,
    pub(crate) emitted: u64,
    pub(crate) events: u64,
    pub(crate) backlog: u64,
    pub(crate) in_flight: u64,
    pub(crate) dead_letters: u64,
    /// Rates since the previous sample (none for the first).
    pub(crate) emitted_per_sec: Option<f64>,
    pub(crate) handled_per_sec: Option<f64>,
}

#[derive(Debug, Default)]
struct Ring {
    samples: VecDeque<Sample>,
    last: Option<StoreStats>,
    error: Option<String>,
}

/// The ring buffer of samples.
#[derive(Debug)]
pub(crate) struct Sampler {
    capacity: usize,
    ring: Mutex<Ring>,
}

impl Sampler {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ring: Mutex::new(Ring::default()),
        }
    }

    /// Adds a snapshot, with the rates since the previous one.
    pub(crate) fn record(&self, stats: StoreStats) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let rates = ring
            .last
            .as_ref()
            .and_then(|before| stats.rates_since(before));
        let sample = Sample {
            t: millis(stats.taken_at.unwrap_or_else(SystemTime::now)),
            emitted: stats.emitted,
            events: stats.events,
            backlog: stats.backlog,
            in_flight: stats.in_flight,
            dead_letters: stats.dead_letters,
            emitted_per_sec: rates.map(|r| r.emitted_per_sec),
            handled_per_sec: rates.map(|r| r.handled_per_sec),
        };
        if ring.samples.len() == self.capacity {
            ring.samples.pop_front();
        }
        ring.samples.push_back(sample);
        ring.last = Some(stats);
        ring.error = None;
    }

    pub(crate) fn failed(&self, error: String) {
        self.ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .error = Some(error);
    }

    /// The samples, oldest first, the last snapshot and the last error.
    pub(crate) fn snapshot(&self) -> (Vec<Sample>, Option<StoreStats>, Option<String>) {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        (
            ring.samples.iter().cloned().collect(),
            ring.last.clone(),
            ring.error.clone(),
        )
    }
}

pub(crate) fn millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long one stats read may take.
const STATS_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts the sampling task once; it holds the dashboard weakly and stops
/// when the router is dropped.
pub(crate) fn start(shared: &crate::State) {
    if shared.sampling.swap(true, Ordering::AcqRel) {
        return;
    }
    let weak = Arc::downgrade(shared);
    let every = shared.options.sample_every;
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(shared) = weak.upgrade() else { break };
            match tokio::time::timeout(STATS_TIMEOUT, shared.store.stats()).await {
                Ok(Ok(stats)) => shared.sampler.record(stats),
                Ok(Err(err)) => shared.sampler.failed(err.to_string()),
                Err(_) => shared
                    .sampler
                    .failed("reading the store's stats timed out".into()),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(secs: u64, emitted: u64, backlog: u64) -> StoreStats {
        let mut stats = StoreStats::default();
        stats.taken_at = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        stats.emitted = emitted;
        stats.backlog = backlog;
        stats
    }

    #[test]
    fn keeps_the_newest_samples_with_rates() {
        let sampler = Sampler::new(3);
        for (i, emitted) in [0, 10, 30, 60].into_iter().enumerate() {
            sampler.record(stats(i as u64, emitted, 0));
        }
        let (samples, last, error) = sampler.snapshot();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].emitted, 10);
        assert_eq!(samples[2].emitted_per_sec, Some(30.0));
        assert_eq!(last.unwrap().emitted, 60);
        assert!(error.is_none());
    }
}
