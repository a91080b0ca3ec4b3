//! The event bus: registration, emission, dispatch on the worker pool, and
//! the consumers of queue stores.

mod batch;
mod builder;
mod config;
mod consumer;
mod dispatch;
mod emission;
mod emitter;
mod event_bus;
mod live;
mod park;
mod periodic;
mod persist;
mod timed;
mod unheard;
mod unread;

pub use builder::EventBusBuilder;
pub(crate) use config::BusInner;
pub use config::{ErrorHandler, IdGenerator, PanicHandler};
pub use emission::Emission;
pub(crate) use emission::EmissionState;
pub use emitter::Emitter;
pub use event_bus::EventBus;
pub use live::shutdown_all;
pub use periodic::Periodic;
pub(crate) use timed::dispatch_due;
pub use unheard::UnheardDeliveries;
