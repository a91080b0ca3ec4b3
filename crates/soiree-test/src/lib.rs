//! Test support for soiree: the store conformance suite every store runs, and
//! throwaway servers for the backends' tests.

pub mod conformance;
pub mod redis;
