//! Test support for soiree: the store conformance suite every store runs, and
//! throwaway servers for the backends' tests.

#![doc(test(attr(deny(warnings))))]

pub mod conformance;
pub mod inspect;
pub mod nats;
pub mod postgres;
pub mod redis;
pub mod tls;
