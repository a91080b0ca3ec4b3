//! The `soiree` command.

fn main() {}
