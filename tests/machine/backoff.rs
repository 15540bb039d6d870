//! How fast a viewer comes back: within `reconnect_spread` after stable play
//! (at once without a spread), with growing, capped delays when a session
//! keeps dropping, and bounded connect attempts.

use std::collections::BTreeSet;
use std::time::Duration;

use relive::{Input, Jitter, Output, Policy, Reason, Retry, State};

use crate::sim::Sim;
use crate::{SPREAD, TICK, at_once, build, ms, policy, secs};

/// The delay of the backoff just entered, seen from now.
fn delay(sim: &Sim) -> Duration {
    sim.state()
        .retry_in(sim.now())
        .unwrap_or_else(|| panic!("not backing off: {:?}", sim.state()))
}

#[test]
fn without_a_spread_the_first_drop_after_stable_play_reconnects_at_once() {
    let mut sim = Sim::new(build(at_once()));
    sim.start_playing();
    sim.play(secs(11), TICK);
    assert_eq!(sim.machine().attempt(), 0, "10 s of play is stable");
    let out = sim.input(Input::TransportLost(Retry::Later));
    assert!(matches!(out[0], Output::DropSession { .. }), "{out:?}");
    assert!(matches!(
        out[1],
        Output::StateChanged {
            to: State::Connecting { attempt: 1, .. },
            reason: Reason::TransportLost(Retry::Later),
            ..
        }
    ));
    assert_eq!(out.last(), Some(&Output::Connect { attempt: 1 }));
}

#[test]
fn the_first_drop_after_stable_play_waits_a_random_delay_within_reconnect_spread() {
    let mut delays = BTreeSet::new();
    for seed in 0..100 {
        let mut sim = Sim::with_seed(build(policy()), seed);
        sim.start_playing();
        sim.play(secs(11), TICK);
        assert_eq!(sim.machine().attempt(), 0, "10 s of play is stable");
        let out = sim.input(Input::TransportLost(Retry::Later));
        assert!(matches!(out[0], Output::DropSession { .. }), "{out:?}");
        assert!(
            !out.iter().any(|o| matches!(o, Output::Connect { .. })),
            "seed {seed}: connected at once: {out:?}"
        );
        let State::Backoff {
            attempt,
            waiting_for_publisher,
            ..
        } = sim.state()
        else {
            panic!("seed {seed}: not backing off: {out:?}");
        };
        assert_eq!((attempt, waiting_for_publisher), (1, false), "seed {seed}");
        assert!(matches!(
            out.last(),
            Some(Output::StateChanged {
                reason: Reason::TransportLost(Retry::Later),
                ..
            })
        ));
        // The spread is no attempt: the count stays at zero until it connects.
        assert_eq!(sim.machine().attempt(), 0);
        let d = delay(&sim);
        assert!(!d.is_zero() && d <= SPREAD, "seed {seed}: {d:?}");
        delays.insert(d);
        let lost_at = sim.elapsed();
        let out = sim.jump_to_deadline();
        assert_eq!(out.last(), Some(&Output::Connect { attempt: 1 }));
        assert!(matches!(
            out[0],
            Output::StateChanged {
                reason: Reason::BackoffElapsed,
                ..
            }
        ));
        assert_eq!(sim.elapsed(), lost_at + d);
    }
    assert!(delays.len() > 90, "{} distinct delays", delays.len());
    // Spread over the whole window, not bunched at one end.
    assert!(delays.iter().any(|d| *d < SPREAD / 4), "{delays:?}");
    assert!(delays.iter().any(|d| *d > SPREAD * 3 / 4), "{delays:?}");
}

#[test]
fn a_failed_attempt_after_the_spread_backs_off_as_the_second_attempt() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(11), TICK);
    sim.input(Input::TransportLost(Retry::Later));
    sim.jump_to_deadline();
    assert!(matches!(sim.state(), State::Connecting { attempt: 1, .. }));
    sim.input(Input::ConnectFailed(Retry::Later));
    assert!(matches!(sim.state(), State::Backoff { attempt: 2, .. }));
    assert_eq!(delay(&sim), secs(1), "the first real backoff is `initial`");
}

#[test]
fn a_drop_of_an_unstable_session_backs_off_without_the_spread() {
    // The spread is only for the first reconnect after stable play: a session
    // that keeps dropping backs off by the backoff sequence alone.
    let mut sim = Sim::new(build(policy().reconnect_spread(secs(60))));
    sim.start_playing();
    sim.play(secs(1), TICK);
    sim.input(Input::TransportLost(Retry::Later));
    assert!(matches!(sim.state(), State::Backoff { attempt: 2, .. }));
    assert_eq!(delay(&sim), secs(1));
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
    let expected: Vec<_> = [1, 2, 4, 8, 10, 10, 10, 10].map(secs).to_vec();
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
    // Stable again: the next drop is the first of a new outage (the spread,
    // then attempt 1), not a third attempt backing off.
    sim.input(Input::TransportLost(Retry::Later));
    assert!(matches!(sim.state(), State::Backoff { attempt: 1, .. }));
    assert!(delay(&sim) <= SPREAD);
    let out = sim.jump_to_deadline();
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
    assert_eq!(delay(&sim), secs(1));
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

#[test]
fn the_default_backoff_is_decorrelated_from_one_second_up_to_the_cap() {
    // No pinned jitter here: the defaults themselves.
    let mut seen = BTreeSet::new();
    for seed in 0..20 {
        let mut sim = Sim::with_seed(Policy::default(), seed);
        sim.input(Input::Start);
        for _ in 0..12 {
            sim.input(Input::ConnectFailed(Retry::Later));
            let d = delay(&sim);
            assert!(d >= secs(1) && d <= secs(10), "seed {seed}: {d:?}");
            seen.insert(d);
            sim.jump_to_deadline();
        }
    }
    // Decorrelated, not the exact doubling sequence of `Jitter::None`.
    assert!(seen.len() > 100, "{} distinct delays", seen.len());
}
