//! `cargo +nightly fuzz run signaling_message`: see `relive_fuzz::checks::signaling_message` for the properties.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| relive_fuzz::checks::signaling_message(data));
