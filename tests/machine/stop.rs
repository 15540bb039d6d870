//! `Stop` reaches `Idle` from anywhere, drops what is alive, and nothing
//! happens afterwards, however long the virtual time runs.

use relive::{Input, Output, Reason, Retry, State};

use crate::sim::Sim;
use crate::{TICK, build, policy, secs};

/// Stops, then checks that the machine stays quiet for a virtual hour of
/// stale inputs and timeouts.
fn stop_and_stay_idle(sim: &mut Sim) -> Vec<Output> {
    let out = sim.input(Input::Stop);
    assert_eq!(sim.state(), State::Idle);
    assert_eq!(sim.machine().poll_timeout(), None);
    assert_eq!(sim.machine().attempt(), 0);
    let before = sim.outputs().len();
    sim.advance(secs(3_600));
    for stale in [
        Input::Connected,
        Input::ConnectFailed(Retry::Now),
        Input::Progress(secs(99)),
        Input::LiveHint,
        Input::Active,
        Input::TransportLost(Retry::Later),
        Input::Layers { active: 0 },
        Input::Stop,
    ] {
        sim.input(stale);
    }
    let now = sim.now();
    sim.timeout_at(now + secs(3_600));
    assert_eq!(sim.outputs().len(), before, "an idle machine acted");
    out
}

fn stop_reason(out: &[Output]) -> bool {
    matches!(
        out.last(),
        Some(Output::StateChanged {
            to: State::Idle,
            reason: Reason::UserStopped,
            ..
        })
    )
}

#[test]
fn stop_while_connecting_aborts_the_attempt_and_stays_idle() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    let out = stop_and_stay_idle(&mut sim);
    assert_eq!(
        out[0],
        Output::AbortConnect {
            reason: Reason::UserStopped
        }
    );
    assert!(stop_reason(&out), "{out:?}");
}

#[test]
fn stop_while_playing_drops_the_session_and_stays_idle() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(3), TICK);
    let out = stop_and_stay_idle(&mut sim);
    assert_eq!(
        out[0],
        Output::DropSession {
            reason: Reason::UserStopped
        }
    );
    assert!(stop_reason(&out), "{out:?}");
}

#[test]
fn stop_while_stalled_drops_the_session_and_stays_idle() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.input(Input::Layers { active: 0 });
    let out = stop_and_stay_idle(&mut sim);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(out[0], Output::DropSession { .. }));
}

#[test]
fn stop_during_backoff_never_reconnects() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    sim.input(Input::ConnectFailed(Retry::Later));
    assert!(matches!(sim.state(), State::Backoff { .. }));
    let out = stop_and_stay_idle(&mut sim);
    // Nothing is in flight during a backoff: only the transition.
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(stop_reason(&out));
    assert_eq!(sim.connects().len(), 1);
}

#[test]
fn start_after_stop_counts_attempts_from_one_again() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    sim.input(Input::ConnectFailed(Retry::Later));
    sim.jump_to_deadline();
    sim.input(Input::ConnectFailed(Retry::Later));
    sim.input(Input::Stop);
    let out = sim.input(Input::Start);
    assert_eq!(out.last(), Some(&Output::Connect { attempt: 1 }));
}
