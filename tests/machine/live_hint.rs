//! Live hints (a relay's publish event, Millicast `active`) cut a backoff
//! short, spread over `hint_spread` when set, and do nothing elsewhere.

use relive::{Input, Output, Reason, Retry, State};

use crate::sim::Sim;
use crate::{build, policy, secs};

/// A machine backing off for its fourth attempt, 2 s away.
fn backing_off(sim: &mut Sim) {
    sim.input(Input::Start);
    for _ in 0..2 {
        sim.input(Input::ConnectFailed(Retry::Later));
        sim.jump_to_deadline();
    }
    sim.input(Input::ConnectFailed(Retry::Later));
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(2)));
}

#[test]
fn a_live_hint_during_a_transport_backoff_connects_at_once() {
    let mut sim = Sim::new(build(policy()));
    backing_off(&mut sim);
    let out = sim.input(Input::LiveHint);
    assert!(matches!(
        out.as_slice(),
        [
            Output::StateChanged {
                reason: Reason::LiveHint,
                ..
            },
            Output::Connect { attempt: 4 }
        ]
    ));
}

#[test]
fn a_live_hint_outside_backoff_changes_nothing() {
    let mut sim = Sim::new(build(policy()));
    assert!(sim.input(Input::LiveHint).is_empty(), "idle");
    sim.input(Input::Start);
    assert!(sim.input(Input::LiveHint).is_empty(), "connecting");
    sim.connect_and_play();
    assert!(sim.input(Input::LiveHint).is_empty(), "playing");
    sim.input(Input::Layers { active: 0 });
    assert!(sim.input(Input::LiveHint).is_empty(), "stalled");
}

#[test]
fn a_spread_hint_connects_within_hint_spread() {
    for seed in 0..50 {
        let mut sim = Sim::with_seed(build(policy().hint_spread(secs(1))), seed);
        backing_off(&mut sim);
        let hinted_at = sim.elapsed();
        sim.input(Input::LiveHint);
        sim.advance(secs(2));
        let (at, attempt) = *sim.connects().last().expect("a connect");
        assert_eq!(attempt, 4);
        assert!(
            at <= hinted_at + secs(1),
            "seed {seed}: connected at {at:?}"
        );
    }
}

#[test]
fn a_spread_hint_never_delays_an_attempt() {
    let mut sim = Sim::with_seed(build(policy().hint_spread(secs(60))), 3);
    backing_off(&mut sim);
    let State::Backoff { until, .. } = sim.state() else {
        panic!("not backing off");
    };
    for _ in 0..20 {
        sim.input(Input::LiveHint);
        let State::Backoff {
            until: now_until, ..
        } = sim.state()
        else {
            break;
        };
        assert!(now_until <= until);
    }
}
