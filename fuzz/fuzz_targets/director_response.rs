//! `cargo +nightly fuzz run director_response`: see `relive_fuzz::checks::director_response` for the properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| relive_fuzz::checks::director_response(data));
