//! A server that offers no active layer: the feed is gone, the session stalls
//! at once, heals if layers come back within the grace, else reconnects.

use relive::{Input, Output, Reason, StallCause, State};

use crate::sim::Sim;
use crate::{SPREAD, TICK, build, ms, policy, secs};

fn no_layers(sim: &Sim) -> bool {
    matches!(
        sim.state(),
        State::Stalled {
            cause: StallCause::NoLayers,
            ..
        }
    )
}

#[test]
fn zero_active_layers_stall_the_session_at_once() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(1), TICK);
    let out = sim.input(Input::Layers { active: 0 });
    assert!(no_layers(&sim), "{out:?}");
}

#[test]
fn layers_back_within_the_grace_resume_the_same_session() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.input(Input::Layers { active: 0 });
    sim.advance(ms(2_900));
    let out = sim.input(Input::Layers { active: 2 });
    assert!(sim.state().is_playing(), "{out:?}");
    assert!(matches!(
        out.as_slice(),
        [Output::StateChanged {
            reason: Reason::LayersBack,
            ..
        }]
    ));
    assert_eq!(sim.connects().len(), 1, "no new attempt");
}

#[test]
fn layers_back_restart_the_first_media_window() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.input(Input::Layers { active: 0 });
    sim.advance(secs(1));
    sim.input(Input::Layers { active: 1 });
    // A returning feed gets first_media_within (5 s), not stall_after (2 s).
    sim.advance(ms(4_999));
    assert!(sim.state().is_playing());
    sim.advance(ms(1));
    assert!(matches!(
        sim.state(),
        State::Stalled {
            cause: StallCause::NoProgress,
            ..
        }
    ));
}

#[test]
fn layers_that_stay_away_past_the_grace_drop_the_session_and_reconnect() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(12), TICK);
    sim.input(Input::Layers { active: 0 });
    let stalled_at = sim.elapsed();
    sim.freeze(secs(3), TICK);
    let drop = Output::DropSession {
        reason: Reason::GraceExpired(StallCause::NoLayers),
    };
    let dropped_at = sim
        .outputs()
        .into_iter()
        .find(|(_, o)| *o == drop)
        .map(|(t, _)| t);
    assert_eq!(dropped_at, Some(stalled_at + secs(3)));
    // Stable play before: one reconnect, attempt 1, within the spread.
    assert!(matches!(sim.state(), State::Backoff { attempt: 1, .. }));
    sim.advance(SPREAD);
    let (at, attempt) = *sim.connects().last().expect("a reconnect");
    assert_eq!(attempt, 1);
    assert!(at > stalled_at + secs(3) && at <= stalled_at + secs(3) + SPREAD);
}

#[test]
fn layers_alone_do_not_heal_a_frozen_picture() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.advance(secs(2));
    assert!(matches!(
        sim.state(),
        State::Stalled {
            cause: StallCause::NoProgress,
            ..
        }
    ));
    let out = sim.input(Input::Layers { active: 3 });
    assert!(out.is_empty(), "{out:?}");
    assert!(!sim.state().is_playing());
}
