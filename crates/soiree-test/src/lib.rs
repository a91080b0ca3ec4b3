//! Test support for soiree: the store conformance suite every store runs
//! (one line in the store's tests: [`conformance_suite!`]), and throwaway
//! servers for the backends' tests.

#![doc(test(attr(deny(warnings))))]

pub mod conformance;
pub mod inspect;
pub mod nats;
pub mod postgres;
pub mod redis;
pub mod tls;
