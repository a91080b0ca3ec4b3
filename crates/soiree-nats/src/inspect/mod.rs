//! [`soiree::Inspect`] for the NATS store: listings read the streams by
//! sequence (a record's id is its stream sequence), repairs publish and
//! delete.

mod page;
mod trait_impl;
