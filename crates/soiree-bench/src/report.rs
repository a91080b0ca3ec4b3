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
            // u64 to f64 loses precision only past 2^53 units. A clock that
            // did not move gives no rate rather than an infinite one.
            rate: if seconds > 0.0 {
                units as f64 / seconds
            } else {
                0.0
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            scenario: "fanout-10",
            n: 4,
            redis: None,
            postgres: None,
            spread: Duration::from_secs(1),
            stores: Vec::new(),
        }
    }

    #[test]
    fn line_and_json_carry_the_same_fields_in_order() {
        let report = Report::new(&setup(), Duration::from_millis(500), 40)
            .count("invocations", 40)
            .figure("p50_us", 1.25, 1);
        assert_eq!(
            report.line(),
            "scenario=fanout-10 n=4 seconds=0.5000 rate=80 invocations=40 p50_us=1.2"
        );
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "scenario": "fanout-10", "n": 4, "seconds": 0.5, "rate": 80,
                "invocations": 40, "p50_us": 1.2,
            })
        );
    }

    #[test]
    fn failed_checks_are_kept_and_passed_ones_are_not() {
        let report = Report::new(&setup(), Duration::from_secs(1), 4)
            .check(true, || "not this one".into())
            .check(false, || "the listener ran 3 times".into());
        assert_eq!(report.failures(), ["the listener ran 3 times"]);
    }

    #[test]
    fn a_zero_duration_gives_a_finite_rate() {
        let report = Report::new(&setup(), Duration::ZERO, 4);
        assert!(report.rate.is_finite());
        assert!(serde_json::from_str::<serde_json::Value>(&report.json()).is_ok());
    }
}
