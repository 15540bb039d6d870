//! Benchmarks of the core machine (filled in by the core-proofs branch).
fn main() {}
