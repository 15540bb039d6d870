//! relive's fuzz targets, as a library so that the property checks live in one place:
//! [`checks`] is used by `fuzz_targets/*.rs` here and by the main crate's
//! `tests/fuzz_corpus.rs`, which runs every seed through it on stable.

pub mod checks;
