//! Every seed of every fuzz target's corpus (`fuzz/corpus/<target>/seed-*`), run through the
//! target's own checks: `cargo test` proves the seeds and the properties on stable, without
//! nightly or cargo-fuzz. The checks are `fuzz/src/checks.rs`, the very file the fuzz targets use.
#![cfg(feature = "millicast")]

#[path = "../support/mod.rs"]
mod support;

// The checks are `pub` for the fuzz crate's lib; here they are a private module.
#[allow(unreachable_pub)]
#[path = "../../fuzz/src/checks.rs"]
mod checks;

use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

/// Each target keeps at least this many seeds.
const MIN_SEEDS: usize = 8;

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) => panic!("cannot read {}: {error}", dir.display()),
    };
    let mut seeds: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("seed-"))
        })
        .collect();
    seeds.sort();
    seeds
}

/// Runs every seed of `target`, reporting all failing seeds at once (each one's panic message
/// is printed above the report).
fn run_seeds(target: &str, check: fn(&[u8])) {
    let seeds = seeds(target);
    assert!(
        seeds.len() >= MIN_SEEDS,
        "{target} has {} seeds, fewer than {MIN_SEEDS}",
        seeds.len()
    );
    let failing: Vec<String> = seeds
        .iter()
        .filter(|path| {
            let input = match std::fs::read(path) {
                Ok(input) => input,
                Err(error) => panic!("cannot read {}: {error}", path.display()),
            };
            catch_unwind(|| check(&input)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failing.is_empty(),
        "{} of {} {target} seeds fail its checks: {failing:#?}",
        failing.len(),
        seeds.len()
    );
}

#[test]
fn every_signaling_message_seed_holds_the_target_properties() {
    run_seeds("signaling_message", checks::signaling_message);
}

#[test]
fn every_director_response_seed_holds_the_target_properties() {
    run_seeds("director_response", checks::director_response);
}

#[test]
fn every_command_seed_holds_the_target_properties() {
    run_seeds("command", checks::command);
}

#[cfg(feature = "relay")]
#[test]
fn every_relay_frame_seed_passes_the_relay_frame_checks() {
    run_seeds("relay_frame", checks::relay_frame);
}
