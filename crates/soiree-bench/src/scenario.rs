//! What a scenario is, and what it is given to run.

use std::time::Duration;

use futures::future::BoxFuture;

use super::report::Report;
use crate::delayed_lateness::Store;
use crate::error::{Error, Result};

/// One benchmark scenario of the table.
#[derive(Debug)]
pub(crate) struct Scenario {
    /// The name on the command line and in the output.
    pub(crate) name: &'static str,
    /// Events when `--n` is not given.
    pub(crate) default_n: u64,
    /// The server it needs, if any.
    pub(crate) needs: Needs,
    /// Runs the scenario (on a runtime worker thread) and reports its figures.
    pub(crate) run: fn(Setup) -> BoxFuture<'static, Result<Report>>,
}

/// The server a scenario needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// None: the scenario runs in memory and is part of the default run.
    Memory,
    /// A Redis server (`--redis`).
    #[allow(dead_code, reason = "no Redis scenario is in the table yet")]
    Redis,
    /// A Postgres server (`--postgres`; without it the runner starts a
    /// throwaway one).
    Postgres,
    /// No server, but a database file in a temporary directory: run when named.
    File,
    /// Throwaway nats-server processes the scenario starts: run when named.
    Nats,
}

/// What one run of a scenario is given.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    /// The scenario's name.
    pub(crate) scenario: &'static str,
    /// Events to emit.
    pub(crate) n: u64,
    /// `--redis`.
    pub(crate) redis: Option<String>,
    /// `--postgres`.
    pub(crate) postgres: Option<String>,
    /// `--spread` (delayed-lateness).
    pub(crate) spread: Duration,
    /// `--stores` (delayed-lateness).
    pub(crate) stores: Vec<Store>,
}

impl Setup {
    /// Checks that the server the scenario needs was named.
    ///
    /// # Errors
    ///
    /// [`Error::MissingUrl`] when it was not.
    pub(crate) fn validate(&self, needs: Needs) -> Result<()> {
        let (url, option) = match needs {
            Needs::Memory | Needs::File | Needs::Postgres | Needs::Nats => return Ok(()),
            Needs::Redis => (&self.redis, "redis"),
        };
        match url {
            Some(_) => Ok(()),
            None => Err(Error::MissingUrl {
                scenario: self.scenario,
                option,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_scenario_needs_its_url() {
        let mut setup = Setup {
            scenario: "redis-durable",
            n: 1,
            redis: None,
            postgres: None,
            spread: Duration::from_secs(1),
            stores: Vec::new(),
        };
        assert!(setup.validate(Needs::Memory).is_ok());
        // Without --postgres the runner starts a throwaway server.
        assert!(setup.validate(Needs::Postgres).is_ok());
        let err = setup.validate(Needs::Redis).unwrap_err();
        assert!(matches!(
            err,
            Error::MissingUrl {
                option: "redis",
                ..
            }
        ));
        assert_eq!(err.exit_code(), 2);
        setup.redis = Some("redis://127.0.0.1:6379".into());
        assert!(setup.validate(Needs::Redis).is_ok());
    }
}
