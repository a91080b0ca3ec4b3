//! A scenario's figures and checks, and their one-line forms.

use std::time::Duration;

use super::scenario::Setup;

/// What one scenario measured and whether its result was right.
#[derive(Debug)]
pub(crate) struct Report {
    scenario: &'static str,
    n: u64,
    seconds: f64,
    rate: f64,
    extras: Vec<Figure>,
    failures: Vec<String>,
}

/// An extra `key=value` figure, printed with a fixed number of decimals.
#[derive(Debug)]
struct Figure {
    key: &'static str,
    value: f64,
    decimals: usize,
}

impl Report {
    /// A report of `units` (events or invocations) done in `elapsed`.
    pub(crate) fn new(setup: &Setup, elapsed: Duration, units: u64) -> Self {
        let seconds = elapsed.as_secs_f64();
        Self {
            scenario: setup.scenario,
            n: setup.n,
            seconds,
            // u64 to f64 loses precision only past 2^53 units.
            rate: units as f64 / seconds.max(f64::MIN_POSITIVE),
            extras: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Adds an extra figure.
    pub(crate) fn figure(mut self, key: &'static str, value: f64, decimals: usize) -> Self {
        self.extras.push(Figure {
            key,
            value,
            decimals,
        });
        self
    }

    /// Adds an extra count.
    pub(crate) fn count(self, key: &'static str, value: u64) -> Self {
        self.figure(key, value as f64, 0)
    }

    /// Records a failed check unless `ok`.
    pub(crate) fn check(mut self, ok: bool, failure: impl FnOnce() -> String) -> Self {
        if !ok {
            self.failures.push(failure());
        }
        self
    }

    /// The checks that failed.
    pub(crate) fn failures(&self) -> &[String] {
        &self.failures
    }

    /// `scenario=<name> n=<events> seconds=<wall> rate=<per second> <extras>`.
    pub(crate) fn line(&self) -> String {
        self.fields()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The same fields as one JSON object.
    pub(crate) fn json(&self) -> String {
        let fields: Vec<String> = self
            .fields()
            .map(|(key, value)| {
                // The name is the only string; every other value is a finite
                // number already in JSON's number syntax.
                let value = if key == "scenario" {
                    serde_json::Value::from(value).to_string()
                } else {
                    value
                };
                format!("\"{key}\":{value}")
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    fn fields(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        [
            ("scenario", self.scenario.to_owned()),
            ("n", self.n.to_string()),
            ("seconds", format!("{:.4}", self.seconds)),
            ("rate", format!("{:.0}", self.rate)),
        ]
        .into_iter()
        .chain(
            self.extras
                .iter()
                .map(|f| (f.key, format!("{:.*}", f.decimals, f.value))),
        )
    }
}
