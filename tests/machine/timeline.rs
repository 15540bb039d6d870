//! Media time as a high-water mark: a tick is progress only past the furthest
//! media time of the session's timeline, so a frozen picture whose clock
//! flickers still stalls; a jump back of more than a second starts a new
//! timeline (a publisher restart); a new session starts from zero.

use std::time::Duration;

use relive::{Input, Output, Reason, StallCause, State, Timer};

use crate::sim::Sim;
use crate::{TICK, build, ms, policy, secs};

fn no_progress(s: &State) -> bool {
    matches!(
        s,
        State::Stalled {
            cause: StallCause::NoProgress,
            ..
        }
    )
}

/// The instant of the stall deadline, as an offset from the start.
fn stall_deadline(sim: &Sim) -> Option<Duration> {
    match sim.machine().poll_timeout_reason() {
        Some((at, Timer::Stall)) => Some(sim.offset(at)),
        _ => None,
    }
}

/// A session playing stably (past `reset_after`) with media time at 20 s.
fn playing_at_twenty_seconds() -> Sim {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(11), TICK);
    sim.progress(secs(20));
    assert_eq!(stall_deadline(&sim), Some(sim.elapsed() + secs(2)));
    sim
}

#[test]
fn a_frozen_picture_whose_clock_flickers_is_a_stall() {
    let mut sim = playing_at_twenty_seconds();
    let last_progress = sim.elapsed();
    // 19.98, 20.00, 19.98, 20.00, …: each 20.00 is later than the tick before,
    // but never past the furthest point.
    for i in 0..40u64 {
        sim.advance(ms(100));
        let media = if i % 2 == 0 { ms(19_980) } else { secs(20) };
        sim.input(Input::Progress(media));
    }
    let (at, reason) = sim.entered(no_progress).expect("a stall");
    assert_eq!(at, last_progress + secs(2));
    assert_eq!(reason, Reason::Stall(StallCause::NoProgress));
    // Nor does the flicker heal the stall it caused.
    assert!(!sim.state().is_playing());
}

#[test]
fn only_media_past_the_furthest_point_is_progress() {
    let mut sim = playing_at_twenty_seconds();
    sim.advance(ms(500));
    sim.progress(ms(19_500));
    sim.advance(ms(500));
    sim.progress(secs(20));
    assert_eq!(
        stall_deadline(&sim),
        Some(sim.elapsed() - secs(1) + secs(2))
    );
    sim.advance(ms(500));
    sim.progress(secs(20) + ms(1));
    assert_eq!(stall_deadline(&sim), Some(sim.elapsed() + secs(2)));
}

#[test]
fn a_jump_back_of_more_than_a_second_starts_a_new_timeline() {
    let mut sim = playing_at_twenty_seconds();
    let last_progress = sim.elapsed();
    // The publisher restarted: its clock is back at zero.
    sim.advance(ms(500));
    sim.progress(Duration::ZERO);
    assert_eq!(
        stall_deadline(&sim),
        Some(last_progress + secs(2)),
        "the jump back itself is no progress"
    );
    sim.advance(ms(500));
    sim.progress(ms(40));
    assert_eq!(
        stall_deadline(&sim),
        Some(sim.elapsed() + secs(2)),
        "the next advancing tick is"
    );
    sim.play(secs(10), TICK);
    assert!(sim.state().is_playing());
    assert_eq!(sim.entered(no_progress), None);
}

#[test]
fn a_jump_back_of_exactly_one_second_stays_on_the_same_timeline() {
    let mut sim = playing_at_twenty_seconds();
    let last_progress = sim.elapsed();
    sim.advance(ms(250));
    sim.progress(secs(19));
    sim.advance(ms(250));
    sim.progress(ms(19_500));
    // Still below 20 s, the furthest point: nothing moved.
    assert_eq!(stall_deadline(&sim), Some(last_progress + secs(2)));
    // Just over a second back is a new timeline.
    sim.advance(ms(250));
    sim.progress(secs(19) - ms(1));
    sim.advance(ms(250));
    sim.progress(secs(19));
    assert_eq!(stall_deadline(&sim), Some(sim.elapsed() + secs(2)));
}

#[test]
fn a_jump_back_heals_a_stall_only_once_media_advances_on_the_new_timeline() {
    let mut sim = playing_at_twenty_seconds();
    sim.advance(ms(2_500));
    assert!(no_progress(&sim.state()));
    let out = sim.progress(Duration::ZERO);
    assert!(out.is_empty(), "{out:?}");
    assert!(no_progress(&sim.state()));
    sim.advance(ms(100));
    let out = sim.progress(ms(40));
    assert!(matches!(
        out.as_slice(),
        [Output::StateChanged {
            to: State::Playing { .. },
            reason: Reason::ProgressResumed,
            ..
        }]
    ));
}

#[test]
fn a_new_session_starts_a_new_timeline() {
    let mut sim = playing_at_twenty_seconds();
    sim.input(Input::TransportLost(relive::Retry::Later));
    sim.jump_to_deadline();
    sim.input(Input::Connected);
    // 40 ms is far below the old session's 20 s and less than a second back
    // from nothing: progress only because `Connected` reset the timeline.
    sim.advance(ms(100));
    sim.progress(ms(40));
    assert_eq!(stall_deadline(&sim), Some(sim.elapsed() + secs(2)));
}

#[test]
fn ticks_between_sessions_do_not_count_on_the_next_one() {
    let mut sim = playing_at_twenty_seconds();
    sim.input(Input::TransportLost(relive::Retry::Later));
    // A late tick of the old session while the machine backs off.
    sim.progress(secs(30));
    sim.jump_to_deadline();
    sim.input(Input::Connected);
    let connected_at = sim.elapsed();
    sim.advance(ms(100));
    sim.progress(ms(40));
    assert_eq!(
        stall_deadline(&sim),
        Some(sim.elapsed() + secs(2)),
        "the new session's first frame is progress"
    );
    assert!(sim.elapsed() > connected_at);
}
