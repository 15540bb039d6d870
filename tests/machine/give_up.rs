//! When a viewer stops trying: after `give_up_after_attempts`, after
//! `give_up_after`, on a fatal error; never by default.

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
