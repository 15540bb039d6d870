//! How fast a viewer comes back: at once after stable play, with growing,
//! capped delays when a session keeps dropping, and bounded connect attempts.

use std::time::Duration;

use relive::{Input, Jitter, Output, Reason, Retry, State};

use crate::sim::Sim;
use crate::{TICK, build, ms, policy, secs};

/// The delay of the backoff just entered, seen from now.
fn delay(sim: &Sim) -> Duration {
    sim.state()
        .retry_in(sim.now())
        .unwrap_or_else(|| panic!("not backing off: {:?}", sim.state()))
}

#[test]
fn the_first_drop_after_stable_play_reconnects_at_once() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(11), TICK);
    assert_eq!(sim.machine().attempt(), 0, "10 s of play is stable");
    let out = sim.input(Input::TransportLost(Retry::Later));
    assert!(matches!(out[0], Output::DropSession { .. }), "{out:?}");
    assert_eq!(out.last(), Some(&Output::Connect { attempt: 1 }));
}

#[test]
fn a_flapping_session_backs_off_with_growing_delays() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    let mut delays = Vec::new();
    for _ in 0..8 {
        sim.play(secs(1), TICK);
        sim.input(Input::TransportLost(Retry::Later));
        delays.push(delay(&sim));
        sim.jump_to_deadline();
        sim.connect_and_play();
    }
    let expected: Vec<_> = [500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]
        .map(ms)
        .to_vec();
    assert_eq!(delays, expected);
    let attempts: Vec<_> = sim.connects().into_iter().map(|(_, n)| n).collect();
    assert_eq!(attempts, (1..=9).collect::<Vec<_>>());
}

#[test]
fn stable_play_starts_the_attempt_count_over() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(1), TICK);
    sim.input(Input::TransportLost(Retry::Later));
    sim.jump_to_deadline();
    sim.connect_and_play();
    assert_eq!(sim.machine().attempt(), 2);
    sim.play(ms(9_750), TICK);
    assert_eq!(sim.machine().attempt(), 2, "reset before reset_after");
    sim.play(ms(250), TICK);
    assert_eq!(sim.machine().attempt(), 0);
    let out = sim.input(Input::TransportLost(Retry::Later));
    assert_eq!(out.last(), Some(&Output::Connect { attempt: 1 }));
}

#[test]
fn a_stall_in_between_restarts_the_stable_clock() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(6), TICK);
    sim.freeze(ms(2_500), TICK);
    sim.play(secs(6), TICK);
    // 14.5 s since connecting, but only 6 s since the stall healed.
    assert_eq!(sim.machine().attempt(), 1);
}

#[test]
fn a_connect_attempt_that_hangs_is_abandoned_after_connect_timeout() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    let out = sim.advance(secs(10));
    assert_eq!(
        out[0],
        Output::AbortConnect {
            reason: Reason::ConnectTimedOut
        }
    );
    assert_eq!(sim.elapsed(), secs(10));
    assert!(matches!(sim.state(), State::Backoff { attempt: 2, .. }));
    assert_eq!(delay(&sim), ms(500));
}

#[test]
fn retry_now_reconnects_at_once_only_once_per_outage() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    let out = sim.input(Input::ConnectFailed(Retry::Now));
    assert_eq!(out.last(), Some(&Output::Connect { attempt: 2 }));
    let out = sim.input(Input::ConnectFailed(Retry::Now));
    assert!(
        matches!(sim.state(), State::Backoff { attempt: 3, .. }),
        "{out:?}"
    );
}

#[test]
fn every_delay_stays_within_the_cap_for_each_jitter_kind() {
    for jitter in [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ] {
        let p = policy().jitter(jitter).backoff(ms(200), 3.0, secs(4));
        for seed in 0..20 {
            let mut sim = Sim::with_seed(build(p), seed);
            sim.input(Input::Start);
            for _ in 0..30 {
                let out = sim.input(Input::ConnectFailed(Retry::Later));
                if matches!(sim.state(), State::Backoff { .. }) {
                    assert!(delay(&sim) <= secs(4), "{jitter:?} seed {seed}");
                    sim.jump_to_deadline();
                } else {
                    // A zero delay (full jitter) connects at once.
                    assert!(matches!(out.last(), Some(Output::Connect { .. })));
                }
            }
        }
    }
}

#[test]
fn jitter_spreads_the_retries_of_viewers_dropped_together() {
    let p = build(policy().jitter(Jitter::Full));
    let retry_times: std::collections::BTreeSet<_> = (0..100)
        .map(|seed| {
            let mut sim = Sim::with_seed(p, seed);
            sim.input(Input::Start);
            sim.input(Input::ConnectFailed(Retry::Later));
            sim.input(Input::ConnectFailed(Retry::Later));
            delay(&sim)
        })
        .collect();
    assert!(
        retry_times.len() > 90,
        "{} distinct delays",
        retry_times.len()
    );
}
