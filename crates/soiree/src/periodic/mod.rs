//! Periodic events across processes: schedules ([`Schedule`]: every
//! interval, or a cron expression) fired by one leader elected through the
//! store's [`LeaderLease`](crate::LeaderLease), each tick once.
//!
//! Every process starts the same schedule (the same name) on a bus over
//! one store. The process holding the schedule's lease fires each due
//! tick: it emits the tick's event, whose id and unique key are made of
//! the schedule's name and the tick's time ([`PROPERTY_TICK`]), waits
//! until it is stored, and records the tick with the lease. When the
//! leader dies, its lease expires and another process takes it over; it
//! goes on from the last tick recorded, firing the ticks missed meanwhile
//! as [`MissedTicks`] says. A tick the dead leader stored but had not yet
//! recorded is fired again, and its unique key stores nothing the second
//! time: each tick is stored once.

mod missed;
pub(crate) mod runner;
mod schedule;
mod tick;
pub(crate) mod timing;

pub use missed::MissedTicks;
pub use schedule::{DEFAULT_LEASE_TTL, MIN_LEASE_TTL, Schedule};
pub use tick::{PROPERTY_SCHEDULE, PROPERTY_TICK};
