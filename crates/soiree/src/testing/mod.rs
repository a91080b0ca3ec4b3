//! Testing code that uses soiree: a double that records emits
//! ([`RecordingEmitter`]), and a bus over an in-memory store that a test
//! runs to idle and drives with a paused clock ([`TestBus`]).
//!
//! Always compiled (no cargo feature): it adds nothing to the bus. To
//! drive time, a test needs tokio's `test-util` feature in its own
//! dev-dependencies and a paused clock (`#[tokio::test(start_paused = true)]`).

mod recording;
mod test_bus;

pub use recording::RecordingEmitter;
pub use test_bus::TestBus;
