//! `cargo +nightly fuzz run relay_frame`: see `relive_fuzz::checks::relay_frame` for the properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| relive_fuzz::checks::relay_frame(data));
