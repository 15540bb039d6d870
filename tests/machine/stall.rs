//! Media time that stops advancing: detected within `stall_after`, healed
//! within `stall_grace`, or dropped and reconnected.

use relive::{Input, Output, Reason, StallCause, State};

use crate::sim::Sim;
use crate::{SPREAD, TICK, at_once, build, ms, policy, secs};

fn is_stalled(cause: StallCause) -> impl Fn(&State) -> bool {
    move |s| matches!(s, State::Stalled { cause: c, .. } if *c == cause)
}

#[test]
fn media_freeze_is_detected_within_stall_after() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(20), TICK);
    let last_progress = sim.elapsed();
    sim.freeze(secs(5), TICK);

    let (at, reason) = sim
        .entered(is_stalled(StallCause::NoProgress))
        .expect("a stall");
    let stall_after = secs(2);
    assert!(
        at >= last_progress + stall_after,
        "stalled too early at {at:?}"
    );
    assert!(
        at <= last_progress + stall_after + TICK,
        "stalled late at {at:?}"
    );
    assert_eq!(reason, Reason::Stall(StallCause::NoProgress));
}

#[test]
fn a_frozen_session_is_dropped_after_the_grace_and_reconnected_within_the_spread() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(20), TICK);
    sim.freeze(secs(6), TICK);

    let (stalled_at, _) = sim
        .entered(is_stalled(StallCause::NoProgress))
        .expect("a stall");
    let dropped = sim.outputs().into_iter().find(|(_, o)| {
        *o == Output::DropSession {
            reason: Reason::GraceExpired(StallCause::NoProgress),
        }
    });
    let (dropped_at, _) = dropped.expect("the session dropped");
    assert_eq!(dropped_at, stalled_at + secs(3), "grace is 3 s");
    // The session had played stably: the first attempt of a new outage, after
    // a random delay within the spread.
    let (backoff_at, reason) = sim
        .entered(|s| matches!(s, State::Backoff { attempt: 1, .. }))
        .expect("the spread");
    assert_eq!(
        (backoff_at, reason),
        (dropped_at, Reason::GraceExpired(StallCause::NoProgress))
    );
    let (connect_at, attempt) = *sim.connects().last().expect("a reconnect");
    assert_eq!(attempt, 1);
    assert!(
        connect_at > dropped_at && connect_at <= dropped_at + SPREAD,
        "reconnected at {connect_at:?}"
    );

    sim.connect_and_play();
    sim.play(secs(1), TICK);
    assert!(sim.state().is_playing());
}

#[test]
fn without_a_spread_a_frozen_session_is_reconnected_at_once_after_the_grace() {
    let mut sim = Sim::new(build(at_once()));
    sim.start_playing();
    sim.play(secs(20), TICK);
    sim.freeze(secs(6), TICK);
    let (stalled_at, _) = sim
        .entered(is_stalled(StallCause::NoProgress))
        .expect("a stall");
    assert_eq!(sim.connects().last(), Some(&(stalled_at + secs(3), 1)));
    assert_eq!(
        sim.entered(|s| matches!(s, State::Backoff { .. })),
        None,
        "no backoff at all"
    );
}

#[test]
fn media_advancing_again_within_the_grace_keeps_the_same_session() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(20), TICK);
    sim.freeze(ms(2_500), TICK);
    assert!(matches!(sim.state(), State::Stalled { .. }));

    let healed = sim.play(secs(1), TICK);
    assert!(sim.state().is_playing());
    assert!(healed.iter().any(|o| matches!(
        o,
        Output::StateChanged {
            reason: Reason::ProgressResumed,
            ..
        }
    )));
    let dropped = |o: &Output| matches!(o, Output::DropSession { .. } | Output::Connect { .. });
    assert!(!healed.iter().any(dropped), "{healed:?}");
}

#[test]
fn a_new_session_has_first_media_within_to_show_its_first_frame() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    sim.input(Input::Connected);
    sim.advance(ms(4_999));
    assert!(
        sim.state().is_playing(),
        "stalled before first_media_within"
    );
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
fn media_time_going_backwards_is_not_progress() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.progress(secs(10));
    let last_progress = sim.elapsed();
    for back in 1..=20u64 {
        sim.advance(ms(100));
        sim.input(Input::Progress(secs(10) - ms(back * 10)));
    }
    sim.advance(secs(1));
    let (at, _) = sim
        .entered(is_stalled(StallCause::NoProgress))
        .expect("a stall");
    assert_eq!(at, last_progress + secs(2));
}

#[test]
fn the_publisher_going_inactive_stalls_at_once_and_active_heals_it() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(1), TICK);
    sim.input(Input::Inactive);
    assert!(matches!(
        sim.state(),
        State::Stalled {
            cause: StallCause::Inactive,
            ..
        }
    ));
    sim.advance(secs(1));
    let out = sim.input(Input::Active);
    assert!(sim.state().is_playing(), "{out:?}");
    assert!(!out.iter().any(|o| matches!(o, Output::DropSession { .. })));
}

#[test]
fn a_stopped_stream_keeps_the_grace_of_the_first_stall() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.input(Input::Inactive);
    let first = sim.elapsed();
    sim.advance(secs(2));
    sim.input(Input::StreamEnded);
    let State::Stalled { since, cause } = sim.state() else {
        panic!("not stalled");
    };
    assert_eq!(cause, StallCause::StreamEnded);
    assert_eq!(sim.offset(since), first, "the grace restarted");
    sim.advance(secs(1));
    assert!(!sim.state().is_playing() && !matches!(sim.state(), State::Stalled { .. }));
}

#[test]
fn ticks_during_a_stall_the_publisher_caused_do_not_end_it() {
    for (cause, input) in [
        (StallCause::Inactive, Input::Inactive),
        (StallCause::StreamEnded, Input::StreamEnded),
    ] {
        let mut sim = Sim::new(build(policy()));
        sim.start_playing();
        sim.play(secs(1), TICK);
        sim.input(input);
        // Packets still in flight from before the publisher stopped: media
        // time advances, but the server said the publisher is gone.
        let out = sim.play(secs(2), TICK);
        assert!(
            matches!(sim.state(), State::Stalled { cause: c, .. } if c == cause),
            "{cause:?}: {out:?}\n{}",
            sim.render()
        );
        // Only the publisher's side ends it.
        sim.input(Input::Active);
        assert!(sim.state().is_playing(), "{cause:?}\n{}", sim.render());
    }
}

#[test]
fn ticks_end_a_stall_for_lack_of_progress_or_of_layers() {
    for input in [None, Some(Input::Layers { active: 0 })] {
        let mut sim = Sim::new(build(policy()));
        sim.start_playing();
        sim.play(secs(1), TICK);
        match input {
            Some(input) => sim.input(input),
            None => sim.freeze(secs(3), TICK),
        };
        assert!(matches!(sim.state(), State::Stalled { .. }), "{input:?}");
        sim.play(TICK, TICK);
        assert!(sim.state().is_playing(), "{input:?}\n{}", sim.render());
    }
}
