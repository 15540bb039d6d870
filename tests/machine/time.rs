//! The caller's clock: `now` standing still or going backwards is taken as
//! the latest `now` seen, and `handle_timeout` early, late or twice is harmless.

use std::time::Duration;

use relive::{Input, Output, Reason, Retry, StallCause, State, Timer};

use crate::sim::Sim;
use crate::{TICK, build, ms, policy, secs};

#[test]
fn an_input_from_the_past_counts_as_now() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(5), TICK);
    let now = sim.now();
    // Ticks leave the machine's clock alone: another input moves it to +5 s.
    sim.input(Input::Layers { active: 1 });
    sim.input_at(now - secs(4), Input::Inactive);
    // The stall began at +5 s, not at +1 s: the grace runs from now.
    let State::Stalled { since, .. } = sim.state() else {
        panic!("not stalled");
    };
    assert_eq!(since, now);
    assert_eq!(
        sim.machine().poll_timeout_reason(),
        Some((now + secs(3), Timer::StallGrace))
    );
}

#[test]
fn a_tick_older_than_the_last_progress_moves_nothing() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(5), TICK);
    let last_progress = sim.now();
    sim.advance(secs(1));
    // Another input moves the machine's clock to +6 s…
    sim.input(Input::Layers { active: 2 });
    // …and media advances, but the tick is stamped before the last progress:
    // it is not taken as a tick at +6 s either.
    sim.input_at(last_progress - secs(4), Input::Progress(secs(60)));
    assert_eq!(
        sim.machine().poll_timeout_reason(),
        Some((last_progress + secs(2), Timer::Stall))
    );
}

#[test]
fn a_tick_counts_at_its_own_instant_not_at_the_latest_now() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(5), TICK);
    let last_progress = sim.now();
    sim.advance(secs(1));
    // Another input moves the machine's clock to +6 s.
    sim.input(Input::Layers { active: 2 });
    // A tick stamped +5.5 s: later than the last progress, earlier than now.
    let stamped = last_progress + ms(500);
    sim.input_at(stamped, Input::Progress(secs(60)));
    assert_eq!(
        sim.machine().poll_timeout_reason(),
        Some((stamped + secs(2), Timer::Stall))
    );
}

#[test]
fn a_tick_does_not_move_the_latest_now() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    // Past `reset_after`: the stall deadline is the only one.
    sim.play(secs(11), TICK);
    let now = sim.now();
    // A tick stamped 20 s ahead of every other input counts as progress there…
    sim.input_at(now + secs(20), Input::Progress(secs(60)));
    assert_eq!(
        sim.machine().poll_timeout_reason(),
        Some((now + secs(22), Timer::Stall))
    );
    // …but the machine's clock stays: the next input happens at its own now.
    sim.advance(secs(1));
    sim.input(Input::Layers { active: 0 });
    let State::Stalled { since, .. } = sim.state() else {
        panic!("not stalled");
    };
    assert_eq!(since, now + secs(1));
}

#[test]
fn an_advancing_tick_from_the_past_heals_a_stall_at_the_latest_now() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(5), TICK);
    sim.freeze(secs(3), TICK);
    // The stall timeout at +7 s is the latest `now` the machine has seen: the
    // frozen ticks since do not move its clock.
    let State::Stalled { since: latest, .. } = sim.state() else {
        panic!("not stalled");
    };
    assert_eq!(sim.offset(latest), secs(7));
    let out = sim.input_at(latest - secs(2), Input::Progress(secs(60)));
    assert!(matches!(
        out.as_slice(),
        [Output::StateChanged {
            to: State::Playing { .. },
            reason: Reason::ProgressResumed,
            ..
        }]
    ));
    // Playing again from the latest now, not from the tick's stale instant.
    assert_eq!(sim.state(), State::Playing { since: latest });
    assert_eq!(
        sim.machine().poll_timeout_reason(),
        Some((latest + secs(2), Timer::Stall))
    );
}

#[test]
fn an_advancing_tick_from_the_future_heals_a_stall_and_moves_the_clock() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(5), TICK);
    sim.freeze(secs(3), TICK);
    let later = sim.now() + secs(1);
    sim.input_at(later, Input::Progress(secs(60)));
    assert_eq!(sim.state(), State::Playing { since: later });
    // Like any other input in `Stalled`: the clock moved with it.
    sim.input_at(later - secs(1), Input::Inactive);
    assert!(matches!(sim.state(), State::Stalled { since, .. } if since == later));
}

#[test]
fn an_instant_before_the_first_one_seen_is_clamped_to_it() {
    let mut sim = Sim::new(build(policy()));
    sim.advance(secs(60));
    let first = sim.now();
    sim.input(Input::Start);
    sim.input_at(first - secs(60), Input::ConnectFailed(Retry::Later));
    let State::Backoff { until, .. } = sim.state() else {
        panic!("not backing off");
    };
    assert_eq!(until, first + secs(1));
}

#[test]
fn many_inputs_at_one_instant_are_fine() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    sim.input(Input::ConnectFailed(Retry::Now));
    sim.input(Input::Connected);
    sim.input(Input::Progress(ms(40)));
    sim.input(Input::Layers { active: 0 });
    sim.input(Input::Layers { active: 1 });
    sim.input(Input::TransportLost(Retry::Later));
    assert!(matches!(sim.state(), State::Backoff { .. }));
    assert_eq!(sim.elapsed(), Duration::ZERO);
}

#[test]
fn a_timeout_before_the_deadline_does_nothing() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    let deadline = sim.machine().poll_timeout().expect("a deadline");
    let state = sim.state();
    for early in [secs(1), ms(1), Duration::from_nanos(1)] {
        assert!(sim.timeout_at(deadline - early).is_empty());
    }
    assert_eq!(sim.state(), state);
}

#[test]
fn a_timeout_called_twice_acts_once() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    let deadline = sim.machine().poll_timeout().expect("a deadline");
    let first = sim.timeout_at(deadline);
    let second = sim.timeout_at(deadline);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(second.is_empty(), "{second:?}");
}

#[test]
fn a_late_timeout_acts_at_the_instant_it_is_called() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    // Nobody woke the machine for a minute (a suspended laptop): the stall is
    // noticed now, and the grace runs from now rather than being spent already.
    let late = sim.now() + secs(60);
    let first = sim.timeout_at(late);
    assert!(matches!(
        first.as_slice(),
        [Output::StateChanged {
            to: State::Stalled {
                cause: StallCause::NoProgress,
                ..
            },
            ..
        }]
    ));
    assert_eq!(
        sim.machine().poll_timeout_reason(),
        Some((late + secs(3), Timer::StallGrace))
    );
    let second = sim.timeout_at(late + secs(3));
    assert!(
        matches!(second[0], Output::DropSession { .. }),
        "{second:?}"
    );
}

#[test]
fn a_late_timeout_handles_the_earliest_deadline_first() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(9), TICK);
    // The stable deadline (+10 s) comes before the stall one (+11 s): called
    // late at +12 s, the machine first counts playback as stable, then stalls.
    let late = sim.now() + secs(3);
    assert!(sim.timeout_at(late).is_empty());
    assert_eq!(sim.machine().attempt(), 0);
    let stalled = sim.timeout_at(late);
    assert!(matches!(stalled.as_slice(), [Output::StateChanged { .. }]));
}

#[test]
fn time_going_backwards_never_moves_state_instants_back() {
    let mut sim = Sim::new(build(policy()));
    sim.advance(secs(10));
    sim.input(Input::Start);
    let start = sim.now();
    for back in 1..=10 {
        sim.input_at(start - secs(back), Input::ConnectFailed(Retry::Later));
        let now = sim.now();
        sim.timeout_at(now - secs(back));
        if let State::Connecting { since, .. } | State::Backoff { until: since, .. } = sim.state() {
            assert!(since >= start);
        }
    }
    assert!(sim.outputs().iter().all(|(at, _)| *at <= secs(10)));
}
