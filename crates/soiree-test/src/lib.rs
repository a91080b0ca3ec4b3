//! Test support for soiree.
