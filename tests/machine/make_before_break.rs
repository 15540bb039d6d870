//! Make-before-break: a picture frozen for `stall_after` gets a new attempt
//! beside the frozen session (within `reconnect_spread`); whichever comes
//! first wins — media on the old session abandons the attempt, the attempt
//! connecting replaces the old session. One attempt per stall, never two
//! attempts, never for a publisher-side stall.

use std::time::Duration;

use relive::{Input, Output, Reason, Retry, StallCause, State};

use crate::sim::Sim;
use crate::{TICK, build, ms, policy, secs};

/// Make-before-break on, at once (no spread): the attempt starts the moment
/// the stall is seen.
fn mbb() -> relive::Policy {
    build(
        policy()
            .make_before_break(true)
            .reconnect_spread(Duration::ZERO),
    )
}

/// Playing since 0 s with a last frame at 0 s, then frozen until the stall at 2 s.
fn frozen(sim: &mut Sim) -> Vec<Output> {
    sim.start_playing();
    sim.advance(secs(2))
}

fn stalled_no_progress(state: State) -> bool {
    matches!(
        state,
        State::Stalled {
            cause: StallCause::NoProgress,
            ..
        }
    )
}

#[test]
fn a_frozen_picture_starts_an_attempt_beside_the_session_at_stall_after() {
    let mut sim = Sim::new(mbb());
    let out = frozen(&mut sim);
    assert!(stalled_no_progress(sim.state()), "{}", sim.render());
    assert!(sim.machine().is_racing());
    // No drop: the frozen session stays while the new one connects.
    assert!(
        !out.iter().any(|o| matches!(o, Output::DropSession { .. })),
        "{out:?}"
    );
    assert_eq!(sim.connects(), vec![(secs(0), 1), (secs(2), 2)]);
}

#[test]
fn the_new_session_replaces_the_frozen_one_when_it_connects_first() {
    let mut sim = Sim::new(mbb());
    frozen(&mut sim);
    sim.advance(ms(100));
    let out = sim.input(Input::Connected);
    assert!(
        matches!(
            out.as_slice(),
            [
                Output::DropSession {
                    reason: Reason::Replaced
                },
                Output::KeepSession,
                Output::StateChanged {
                    to: State::Playing { .. },
                    reason: Reason::Connected,
                    ..
                }
            ]
        ),
        "{out:?}"
    );
    assert!(!sim.machine().is_racing());
    // The new session gets the first-media window, like any new session.
    assert_eq!(
        sim.machine().poll_timeout(),
        Some(sim.now() + sim.machine().policy().first_media_within())
    );
}

#[test]
fn media_on_the_frozen_session_first_abandons_the_attempt() {
    let mut sim = Sim::new(mbb());
    frozen(&mut sim);
    let out = sim.progress(ms(3_000));
    assert!(
        matches!(
            out.as_slice(),
            [
                Output::AbortConnect {
                    reason: Reason::ProgressResumed
                },
                Output::StateChanged {
                    to: State::Playing { .. },
                    ..
                }
            ]
        ),
        "{out:?}"
    );
    assert!(!sim.machine().is_racing());
    // The answer that comes late is stale.
    assert!(sim.input(Input::Connected).is_empty());
}

#[test]
fn a_failed_attempt_beside_the_session_leaves_it_its_grace_and_no_second_attempt() {
    let mut sim = Sim::new(mbb());
    frozen(&mut sim);
    assert!(sim.input(Input::ConnectFailed(Retry::Later)).is_empty());
    assert!(stalled_no_progress(sim.state()));
    // The grace (3 s from the stall) runs out: dropped, then a backoff —
    // this outage already made an attempt.
    sim.advance(secs(3));
    let (at, reason) = sim
        .entered(|s| matches!(s, State::Backoff { .. }))
        .expect("a backoff");
    assert_eq!(at, secs(5));
    assert_eq!(reason, Reason::GraceExpired(StallCause::NoProgress));
    assert_eq!(sim.connects().len(), 2, "{}", sim.render());
}

#[test]
fn the_grace_running_out_during_the_attempt_keeps_the_attempt() {
    let mut sim = Sim::new(build(
        policy()
            .make_before_break(true)
            .reconnect_spread(Duration::ZERO)
            .stall_grace(ms(500)),
    ));
    frozen(&mut sim);
    let out = sim.advance(ms(500));
    assert!(
        matches!(
            out.as_slice(),
            [
                Output::DropSession { .. },
                Output::StateChanged {
                    to: State::Connecting { attempt: 2, .. },
                    ..
                }
            ]
        ),
        "{out:?}"
    );
    // No second connect; the attempt's timeout counts from its start (2 s).
    assert_eq!(sim.connects().len(), 2);
    let timeout = sim.machine().policy().connect_timeout();
    assert_eq!(
        sim.machine().poll_timeout().map(|t| sim.offset(t)),
        Some(secs(2) + timeout)
    );
}

#[test]
fn the_frozen_session_lost_during_the_attempt_keeps_the_attempt() {
    let mut sim = Sim::new(mbb());
    frozen(&mut sim);
    let out = sim.input(Input::TransportLost(Retry::Later));
    assert!(
        matches!(
            out.as_slice(),
            [
                Output::DropSession { .. },
                Output::StateChanged {
                    to: State::Connecting { attempt: 2, .. },
                    ..
                }
            ]
        ),
        "{out:?}"
    );
    sim.input(Input::Connected);
    assert!(sim.state().is_playing());
}

#[test]
fn an_attempt_that_times_out_beside_the_session_is_abandoned() {
    let mut sim = Sim::new(build(
        policy()
            .make_before_break(true)
            .reconnect_spread(Duration::ZERO)
            .connect_timeout(secs(1)),
    ));
    frozen(&mut sim);
    let out = sim.advance(secs(1));
    assert_eq!(
        out,
        vec![Output::AbortConnect {
            reason: Reason::ConnectTimedOut
        }]
    );
    assert!(stalled_no_progress(sim.state()));
}

#[test]
fn a_publisher_side_stall_starts_no_attempt_and_ends_one_in_flight() {
    let mut sim = Sim::new(mbb());
    sim.start_playing();
    sim.input(Input::Inactive);
    sim.advance(secs(2));
    assert_eq!(sim.connects().len(), 1, "inactive: {}", sim.render());

    let mut sim = Sim::new(mbb());
    frozen(&mut sim);
    let out = sim.input(Input::StreamEnded);
    assert!(
        matches!(
            out.first(),
            Some(Output::AbortConnect {
                reason: Reason::Stall(StallCause::StreamEnded)
            })
        ),
        "{out:?}"
    );
    assert!(!sim.machine().is_racing());
}

#[test]
fn layers_gone_start_the_attempt_once_media_also_stood_still_for_stall_after() {
    let mut sim = Sim::new(mbb());
    sim.start_playing();
    sim.play(secs(1), TICK);
    // Layers gone at 1 s; the last frame at 1 s.
    sim.input(Input::Layers { active: 0 });
    sim.advance(ms(1_900));
    assert_eq!(sim.connects().len(), 1);
    sim.advance(ms(100));
    assert_eq!(sim.connects(), vec![(secs(0), 1), (secs(3), 2)]);
}

#[test]
fn the_attempt_is_spread_within_reconnect_spread() {
    let spread = ms(1_500);
    let mut starts = Vec::new();
    for seed in 0..64 {
        let mut sim = Sim::with_seed(
            build(policy().make_before_break(true).reconnect_spread(spread)),
            seed,
        );
        frozen(&mut sim);
        sim.advance(spread);
        let (at, _) = sim.connects()[1];
        assert!(at >= secs(2) && at <= secs(2) + spread, "{at:?}");
        starts.push(at);
    }
    starts.sort();
    starts.dedup();
    assert!(starts.len() > 32, "not spread: {starts:?}");
}

#[test]
fn stop_during_the_attempt_drops_both() {
    let mut sim = Sim::new(mbb());
    frozen(&mut sim);
    let out = sim.input(Input::Stop);
    assert!(out.contains(&Output::AbortConnect {
        reason: Reason::UserStopped
    }));
    assert!(out.contains(&Output::DropSession {
        reason: Reason::UserStopped
    }));
    assert!(sim.state().is_idle());
}

#[test]
fn a_pause_during_the_attempt_abandons_it() {
    let mut sim = Sim::new(mbb());
    frozen(&mut sim);
    let out = sim.input(Input::Pause);
    assert!(out.contains(&Output::AbortConnect {
        reason: Reason::UserPaused
    }));
    assert!(sim.state().is_playing());
}

#[test]
fn a_network_change_during_the_attempt_starts_over_on_the_new_path() {
    let mut sim = Sim::new(mbb());
    frozen(&mut sim);
    let out = sim.input(Input::NetworkChanged);
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(matches!(out[0], Output::AbortConnect { .. }));
    assert!(matches!(out[1], Output::DropSession { .. }));
    assert_eq!(out[3], Output::Connect { attempt: 3 });
    assert!(!sim.machine().is_racing());
}

#[test]
fn a_fatal_answer_to_the_attempt_gives_up() {
    let mut sim = Sim::new(mbb());
    frozen(&mut sim);
    let out = sim.input(Input::ConnectFailed(Retry::Never));
    assert!(out.iter().any(|o| matches!(o, Output::DropSession { .. })));
    assert!(out.iter().any(|o| matches!(o, Output::GaveUp { .. })));
    assert!(sim.state().is_idle());
}

#[test]
fn off_the_frozen_session_waits_out_its_grace_alone() {
    let mut sim = Sim::new(build(policy().reconnect_spread(Duration::ZERO)));
    frozen(&mut sim);
    assert!(!sim.machine().is_racing());
    sim.advance(ms(2_999));
    assert_eq!(sim.connects().len(), 1);
    let out = sim.advance(ms(1));
    assert!(
        matches!(
            out.first(),
            Some(Output::DropSession {
                reason: Reason::GraceExpired(StallCause::NoProgress)
            })
        ),
        "{out:?}"
    );
    assert_eq!(sim.connects().len(), 1, "no attempt before the drop");
}
