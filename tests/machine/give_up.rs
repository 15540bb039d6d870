//! When a viewer stops trying: after `give_up_after_attempts` failed attempts
//! (attempts that found nobody publishing do not count), after
//! `give_up_after` without a session (counted from the last session lost, and
//! not while waiting for a publisher), on a fatal error; never by default.

use std::time::Duration;

use relive::{GiveUpReason, Input, Output, Reason, Retry, State};

use crate::sim::Sim;
use crate::{TICK, build, policy, secs};

fn gave_up(sim: &Sim) -> Option<(std::time::Duration, GiveUpReason)> {
    sim.outputs().into_iter().find_map(|(at, o)| match o {
        Output::GaveUp { reason } => Some((at, reason)),
        _ => None,
    })
}

/// Fails every attempt with `retry` until the machine is idle or `limit` passes.
fn fail_until_idle(sim: &mut Sim, retry: Retry, limit: std::time::Duration) {
    while !sim.state().is_idle() && sim.elapsed() < limit {
        sim.input(Input::ConnectFailed(retry));
        if !sim.state().is_idle() {
            sim.jump_to_deadline();
        }
    }
}

#[test]
fn a_viewer_gives_up_after_max_attempts() {
    let mut sim = Sim::new(build(policy().give_up_after_attempts(3)));
    sim.input(Input::Start);
    fail_until_idle(&mut sim, Retry::Later, secs(600));
    assert_eq!(sim.connects().len(), 3);
    assert_eq!(gave_up(&sim).map(|g| g.1), Some(GiveUpReason::MaxAttempts));
    let out = sim.outputs();
    let (_, last_transition) = out[out.len() - 2];
    assert!(matches!(
        last_transition,
        Output::StateChanged {
            to: State::Idle,
            reason: Reason::GaveUp(GiveUpReason::MaxAttempts),
            ..
        }
    ));
}

#[test]
fn a_viewer_gives_up_once_the_outage_is_longer_than_give_up_after() {
    let mut sim = Sim::new(build(policy().give_up_after(secs(20))));
    sim.input(Input::Start);
    fail_until_idle(&mut sim, Retry::Later, secs(600));
    let (at, reason) = gave_up(&sim).expect("gave up");
    assert_eq!(reason, GiveUpReason::MaxOutage);
    assert!(at >= secs(20), "gave up early at {at:?}");
    assert!(at <= secs(30), "gave up late at {at:?}");
}

#[test]
fn a_fatal_connect_error_gives_up_at_once() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    let out = sim.input(Input::ConnectFailed(Retry::Never));
    assert_eq!(
        out.last(),
        Some(&Output::GaveUp {
            reason: GiveUpReason::Fatal
        })
    );
    assert!(sim.state().is_idle());
    assert_eq!(sim.machine().poll_timeout(), None);
}

#[test]
fn a_fatal_transport_loss_drops_the_session_and_gives_up() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(30), TICK);
    let out = sim.input(Input::TransportLost(Retry::Never));
    assert!(matches!(out[0], Output::DropSession { .. }), "{out:?}");
    assert_eq!(
        out.last(),
        Some(&Output::GaveUp {
            reason: GiveUpReason::Fatal
        })
    );
    assert!(sim.state().is_idle());
}

#[test]
fn a_viewer_that_gave_up_starts_again_from_attempt_one() {
    let mut sim = Sim::new(build(policy().give_up_after_attempts(2)));
    sim.input(Input::Start);
    fail_until_idle(&mut sim, Retry::Later, secs(600));
    let out = sim.input(Input::Start);
    assert_eq!(out.last(), Some(&Output::Connect { attempt: 1 }));
}

#[test]
fn the_default_policy_never_gives_up() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    fail_until_idle(&mut sim, Retry::Later, secs(24 * 3_600));
    assert_eq!(gave_up(&sim), None);
    assert!(matches!(sim.state(), State::Connecting { .. }));
}

/// Fails attempts with `retry` until `until` (virtual time) has passed,
/// asserting that the machine does not give up on the way.
fn fail_without_giving_up(sim: &mut Sim, retry: Retry, until: Duration) {
    while sim.elapsed() < until {
        sim.input(Input::ConnectFailed(retry));
        assert!(!sim.state().is_idle(), "gave up at {:?}", sim.elapsed());
        sim.jump_to_deadline();
    }
}

#[test]
fn attempts_that_found_no_publisher_do_not_count_towards_max_attempts() {
    let mut sim = Sim::new(build(policy().give_up_after_attempts(2)));
    sim.input(Input::Start);
    for _ in 0..5 {
        sim.input(Input::ConnectFailed(Retry::WaitForPublisher));
        sim.jump_to_deadline();
    }
    // Six attempts so far, none of them failed: the first real failure is one.
    sim.input(Input::ConnectFailed(Retry::Later));
    assert!(matches!(sim.state(), State::Backoff { attempt: 7, .. }));
    sim.jump_to_deadline();
    sim.input(Input::ConnectFailed(Retry::WaitForPublisher));
    sim.jump_to_deadline();
    assert_eq!(gave_up(&sim), None);
    // Waiting in between does not restart the count either: this is two.
    sim.input(Input::ConnectFailed(Retry::Later));
    assert_eq!(gave_up(&sim).map(|g| g.1), Some(GiveUpReason::MaxAttempts));
    assert_eq!(sim.connects().len(), 8);
}

#[test]
fn stable_playback_starts_the_failure_count_over() {
    let mut sim = Sim::new(build(policy().give_up_after_attempts(2)));
    sim.input(Input::Start);
    sim.input(Input::ConnectFailed(Retry::Later));
    sim.jump_to_deadline();
    sim.connect_and_play();
    sim.play(secs(11), TICK);
    assert_eq!(sim.machine().attempt(), 0);
    sim.input(Input::TransportLost(Retry::Later));
    sim.jump_to_deadline();
    // One failure before the stable play, one after: not two in a row.
    sim.input(Input::ConnectFailed(Retry::Later));
    assert!(matches!(sim.state(), State::Backoff { .. }));
    sim.jump_to_deadline();
    sim.input(Input::ConnectFailed(Retry::Later));
    assert_eq!(gave_up(&sim).map(|g| g.1), Some(GiveUpReason::MaxAttempts));
}

#[test]
fn stop_and_start_start_the_failure_count_over() {
    let mut sim = Sim::new(build(policy().give_up_after_attempts(2)));
    sim.input(Input::Start);
    sim.input(Input::ConnectFailed(Retry::Later));
    sim.input(Input::Stop);
    sim.input(Input::Start);
    sim.input(Input::ConnectFailed(Retry::Later));
    assert!(matches!(sim.state(), State::Backoff { attempt: 2, .. }));
    assert_eq!(gave_up(&sim), None);
}

#[test]
fn the_outage_counts_from_the_last_session_lost() {
    let mut sim = Sim::new(build(policy().give_up_after(secs(20))));
    sim.input(Input::Start);
    // 15 s without a session, then one comes up and drops before it is stable.
    fail_without_giving_up(&mut sim, Retry::Later, secs(14));
    sim.connect_and_play();
    sim.play(secs(1), TICK);
    sim.input(Input::TransportLost(Retry::Later));
    let lost_at = sim.elapsed();
    assert!(lost_at >= secs(15));
    sim.jump_to_deadline();
    fail_until_idle(&mut sim, Retry::Later, secs(600));
    let (at, reason) = gave_up(&sim).expect("gave up");
    assert_eq!(reason, GiveUpReason::MaxOutage);
    assert!(
        at >= lost_at + secs(20),
        "gave up at {at:?}, lost at {lost_at:?}"
    );
    assert!(at <= lost_at + secs(30), "gave up late at {at:?}");
}

#[test]
fn the_time_played_before_a_drop_is_no_outage() {
    let mut sim = Sim::new(build(policy().give_up_after(secs(20))));
    sim.start_playing();
    sim.play(secs(60), TICK);
    sim.input(Input::TransportLost(Retry::Later));
    let lost_at = sim.elapsed();
    sim.jump_to_deadline();
    fail_until_idle(&mut sim, Retry::Later, secs(600));
    let (at, reason) = gave_up(&sim).expect("gave up");
    assert_eq!(reason, GiveUpReason::MaxOutage);
    assert!(at >= lost_at + secs(20), "gave up at {at:?}");
    assert!(at <= lost_at + secs(30), "gave up late at {at:?}");
}

#[test]
fn waiting_for_a_publisher_restarts_the_outage_clock() {
    let mut sim = Sim::new(build(policy().give_up_after(secs(20))));
    sim.input(Input::Start);
    fail_without_giving_up(&mut sim, Retry::Later, secs(15));
    // The service answers: nobody publishes. That is waiting, not an outage.
    sim.input(Input::ConnectFailed(Retry::WaitForPublisher));
    let answered_at = sim.elapsed();
    sim.jump_to_deadline();
    fail_until_idle(&mut sim, Retry::Later, secs(600));
    let (at, reason) = gave_up(&sim).expect("gave up");
    assert_eq!(reason, GiveUpReason::MaxOutage);
    assert!(at >= answered_at + secs(20), "gave up at {at:?}");
    assert!(at <= answered_at + secs(30), "gave up late at {at:?}");
}

#[test]
fn a_long_wait_for_the_publisher_is_no_outage() {
    let mut sim = Sim::new(build(policy().give_up_after(secs(20))));
    sim.input(Input::Start);
    fail_without_giving_up(&mut sim, Retry::WaitForPublisher, secs(300));
    // The publisher's service fails now: a fresh outage, not 300 s of one.
    sim.input(Input::ConnectFailed(Retry::Later));
    assert!(
        matches!(sim.state(), State::Backoff { .. }),
        "gave up at once"
    );
}

#[test]
fn start_restarts_the_outage_clock() {
    let mut sim = Sim::new(build(policy().give_up_after(secs(20))));
    sim.input(Input::Start);
    fail_until_idle(&mut sim, Retry::Later, secs(600));
    assert!(gave_up(&sim).is_some());
    sim.advance(secs(3_600));
    sim.input(Input::Start);
    // An hour after the last session was lost, but a new start: a new outage.
    let out = sim.input(Input::ConnectFailed(Retry::Later));
    assert!(matches!(sim.state(), State::Backoff { .. }), "{out:?}");
    let gave_ups = sim
        .outputs()
        .into_iter()
        .filter(|(_, o)| matches!(o, Output::GaveUp { .. }))
        .count();
    assert_eq!(gave_ups, 1);
}

/// A session that connects but never shows a frame (ICE up, no media) is no
/// end of the outage: `give_up_after` must still fire. Losing it must not
/// restart the outage clock, or such a viewer retries forever.
#[test]
fn give_up_after_still_fires_when_sessions_connect_but_never_show_media() {
    let mut sim = Sim::new(build(policy().give_up_after(secs(20))));
    sim.input(Input::Start);
    while !sim.state().is_idle() && sim.elapsed() < secs(3_600) {
        if let State::Connecting { .. } = sim.state() {
            // Up, but not a single advancing tick: first_media_within runs
            // out, the grace runs out, the session is dropped.
            sim.input(Input::Connected);
        } else {
            sim.jump_to_deadline();
        }
    }
    let (at, reason) = gave_up(&sim).expect("never gave up");
    assert_eq!(reason, GiveUpReason::MaxOutage);
    // Each cycle: 5 s without a first frame, 3 s of grace, a backoff (≤ 10 s).
    assert!(
        at >= secs(20) && at <= secs(20) + secs(18),
        "gave up at {at:?}"
    );
}
