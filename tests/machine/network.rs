//! `NetworkChanged`: a backoff ends at once; a session frozen for lack of
//! media is replaced at once; playing, a publisher-side stall and an attempt in
//! flight are left alone.

use relive::{Input, Output, Reason, Retry, StallCause, State};

use crate::sim::Sim;
use crate::{TICK, at_once, build, policy, secs};

#[test]
fn a_network_change_during_a_backoff_connects_at_once() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    for _ in 0..3 {
        sim.input(Input::ConnectFailed(Retry::Later));
        sim.jump_to_deadline();
    }
    sim.input(Input::ConnectFailed(Retry::Later));
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(8)));
    sim.advance(secs(1));
    let out = sim.input(Input::NetworkChanged);
    assert!(
        matches!(
            out.as_slice(),
            [
                Output::StateChanged {
                    reason: Reason::NetworkChanged,
                    to: State::Connecting { attempt: 5, .. },
                    ..
                },
                Output::Connect { attempt: 5 }
            ]
        ),
        "{out:?}\n{}",
        sim.render()
    );
}

#[test]
fn a_network_change_while_waiting_for_the_publisher_connects_at_once() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    sim.input(Input::ConnectFailed(Retry::WaitForPublisher));
    let out = sim.input(Input::NetworkChanged);
    assert!(out.contains(&Output::Connect { attempt: 2 }), "{out:?}");
}

#[test]
fn a_network_change_replaces_a_frozen_session_without_waiting_out_the_grace() {
    let mut sim = Sim::new(build(at_once()));
    sim.input(Input::Start);
    sim.connect_and_play();
    sim.freeze(secs(2), TICK);
    assert!(matches!(
        sim.state(),
        State::Stalled {
            cause: StallCause::NoProgress,
            ..
        }
    ));
    let out = sim.input(Input::NetworkChanged);
    assert!(
        matches!(
            out.as_slice(),
            [
                Output::DropSession {
                    reason: Reason::NetworkChanged
                },
                Output::StateChanged { .. },
                Output::Connect { .. }
            ]
        ),
        "{out:?}\n{}",
        sim.render()
    );
}

#[test]
fn a_network_change_leaves_playing_connecting_and_publisher_stalls_alone() {
    let mut sim = Sim::new(build(policy()));
    assert!(sim.input(Input::NetworkChanged).is_empty(), "idle");
    sim.input(Input::Start);
    assert!(sim.input(Input::NetworkChanged).is_empty(), "connecting");
    sim.connect_and_play();
    assert!(sim.input(Input::NetworkChanged).is_empty(), "playing");
    sim.input(Input::Inactive);
    assert!(sim.input(Input::NetworkChanged).is_empty(), "inactive");
    assert!(matches!(
        sim.state(),
        State::Stalled {
            cause: StallCause::Inactive,
            ..
        }
    ));
}
