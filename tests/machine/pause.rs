//! A user pause is never a stall: standing media time is expected until `Resume`.

use relive::{Input, Output, Reason, StallCause, State};

use crate::sim::Sim;
use crate::{TICK, build, policy, secs};

fn stalled_for_progress(state: &State) -> bool {
    matches!(
        state,
        State::Stalled {
            cause: StallCause::NoProgress,
            ..
        }
    )
}

#[test]
fn a_paused_viewer_is_never_stalled() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(1), TICK);
    sim.input(Input::Pause);
    sim.freeze(secs(600), TICK);
    assert!(sim.state().is_playing());
    assert_eq!(sim.entered(stalled_for_progress), None);
}

#[test]
fn pausing_a_frozen_session_turns_its_stall_into_a_pause() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.freeze(secs(3), TICK);
    assert!(stalled_for_progress(&sim.state()));
    let out = sim.input(Input::Pause);
    assert!(matches!(
        out.as_slice(),
        [Output::StateChanged {
            reason: Reason::UserPaused,
            ..
        }]
    ));
    sim.advance(secs(60));
    assert!(sim.state().is_playing(), "the grace still ran");
}

#[test]
fn resuming_restarts_the_stall_watchdog_from_now() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(1), TICK);
    sim.input(Input::Pause);
    sim.advance(secs(60));
    sim.input(Input::Resume);
    let resumed = sim.elapsed();
    sim.freeze(secs(5), TICK);
    let (at, _) = sim
        .entered(stalled_for_progress)
        .expect("a stall after resume");
    assert_eq!(at, resumed + secs(2));
}

#[test]
fn a_pause_does_not_hide_a_lost_feed() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.input(Input::Pause);
    sim.input(Input::Layers { active: 0 });
    assert!(matches!(
        sim.state(),
        State::Stalled {
            cause: StallCause::NoLayers,
            ..
        }
    ));
}

#[test]
fn a_pause_lasts_across_a_reconnect() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.input(Input::Pause);
    sim.input(Input::TransportLost(relive::Retry::Later));
    sim.jump_to_deadline();
    sim.input(Input::Connected);
    sim.advance(secs(60));
    assert!(sim.state().is_playing());
    assert!(sim.machine().is_paused());
}

#[test]
fn a_pause_before_start_holds_across_start() {
    let mut sim = Sim::new(build(policy()));
    let out = sim.input(Input::Pause);
    assert!(
        out.is_empty(),
        "an idle machine only notes the pause: {out:?}"
    );
    assert!(sim.machine().is_paused());
    sim.input(Input::Start);
    assert!(sim.machine().is_paused(), "Start cleared the pause");
    sim.input(Input::Connected);
    // No first frame while paused is no stall, however long.
    sim.freeze(secs(600), TICK);
    assert!(sim.state().is_playing());
    assert_eq!(sim.entered(stalled_for_progress), None);
    // Resume watches again: a new session gets first_media_within (5 s).
    sim.input(Input::Resume);
    let resumed = sim.elapsed();
    sim.freeze(secs(6), TICK);
    let (at, _) = sim
        .entered(stalled_for_progress)
        .expect("a stall after resume");
    assert_eq!(at, resumed + secs(5));
}

#[test]
fn a_resume_before_start_leaves_the_viewer_unpaused() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Pause);
    sim.input(Input::Resume);
    sim.input(Input::Start);
    assert!(!sim.machine().is_paused());
    sim.input(Input::Connected);
    sim.advance(secs(5));
    assert!(stalled_for_progress(&sim.state()), "watched from the start");
}
