//! What a check or a whole run reports.

use std::fmt;

use super::Check;

/// The outcome of one check that did not fail (a failing check panics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The check ran and the store kept every promise it checks.
    Passed,
    /// The check did not run, for the reason given (the store lacks the
    /// ability, or the check is not enabled in the settings).
    Skipped(&'static str),
}

impl Outcome {
    /// Reports whether the check ran.
    pub fn ran(self) -> bool {
        self == Self::Passed
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Passed => f.write_str("passed"),
            Self::Skipped(reason) => write!(f, "skipped ({reason})"),
        }
    }
}

/// The outcomes of a [`run_all`](super::run_all), in the order the checks ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Each check with its outcome.
    pub outcomes: Vec<(Check, Outcome)>,
}

impl Report {
    /// The checks that ran (and passed).
    pub fn passed(&self) -> Vec<Check> {
        self.outcomes
            .iter()
            .filter(|(_, outcome)| outcome.ran())
            .map(|(check, _)| *check)
            .collect()
    }

    /// The checks that were skipped, with why.
    pub fn skipped(&self) -> Vec<(Check, &'static str)> {
        self.outcomes
            .iter()
            .filter_map(|(check, outcome)| match outcome {
                Outcome::Skipped(reason) => Some((*check, *reason)),
                Outcome::Passed => None,
            })
            .collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (check, outcome) in &self.outcomes {
            writeln!(f, "{check}: {outcome}")?;
        }
        Ok(())
    }
}
