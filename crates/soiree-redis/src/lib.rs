//! Redis Streams store for soiree.
