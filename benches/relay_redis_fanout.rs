//! Placeholder, replaced by the three-node fan-out bench.
fn main() {}
