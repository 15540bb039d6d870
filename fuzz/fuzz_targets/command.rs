//! `cargo +nightly fuzz run command`: see `relive_fuzz::checks::command` for the properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| relive_fuzz::checks::command(data));
