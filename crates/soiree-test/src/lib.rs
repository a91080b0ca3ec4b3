//! Test support for soiree: the store conformance suite every store runs
//! (one line in the store's tests: [`conformance_suite!`]), throwaway
//! servers for the backends' tests, test binaries that are their own
//! child processes ([`process`], for `kill -9` fault tests), the
//! leader-failover check of periodic events any store with leases runs
//! ([`periodic`]), the journal of the per-key ordering tests
//! ([`ordering`]) and bounded waits ([`wait`]).

#![doc(test(attr(deny(warnings))))]

pub mod conformance;
pub mod inspect;
pub mod nats;
pub mod ordering;
pub mod periodic;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod tls;
pub mod wait;
