//! In-session repair: a session the driver said is `Repairable` (a WHEP ICE
//! restart) is repaired once per stall before any new session — on a frozen
//! picture (at the make-before-break instant), on a lost media path, and at
//! once on a network change — and the machine escalates to a new session when
//! the repair fails or brings no media within `repair_within`. A session
//! never said to be repairable is never asked to repair.

use std::time::Duration;

use relive::{Input, Output, Reason, Retry, StallCause, State};

use crate::sim::Sim;
use crate::{TICK, build, ms, policy, secs};

/// Make-before-break and repair on, at once (no spread).
fn repairing() -> relive::Policy {
    build(
        policy()
            .make_before_break(true)
            .reconnect_spread(Duration::ZERO),
    )
}

/// Playing since 0 s on a repairable session with a last frame at 0 s.
fn playing_repairable(sim: &mut Sim) {
    sim.start_playing();
    assert!(sim.input(Input::Repairable).is_empty());
}

fn repairs(out: &[Output]) -> Vec<Reason> {
    out.iter()
        .filter_map(|o| match o {
            Output::Repair { reason } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn all_repairs(sim: &Sim) -> Vec<(Duration, Reason)> {
    sim.outputs()
        .into_iter()
        .filter_map(|(at, o)| match o {
            Output::Repair { reason } => Some((at, reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_frozen_repairable_session_is_repaired_before_any_new_attempt() {
    let mut sim = Sim::new(repairing());
    playing_repairable(&mut sim);
    let out = sim.advance(secs(2));
    assert_eq!(
        repairs(&out),
        vec![Reason::Stall(StallCause::NoProgress)],
        "{}",
        sim.render()
    );
    assert!(sim.machine().is_repairing());
    assert!(!sim.machine().is_racing());
    assert_eq!(sim.connects(), vec![(secs(0), 1)], "{}", sim.render());
}

#[test]
fn media_after_a_repair_plays_again_on_the_same_session() {
    let mut sim = Sim::new(repairing());
    playing_repairable(&mut sim);
    sim.advance(secs(2));
    sim.advance(ms(150));
    let out = sim.progress(ms(2_000));
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::StateChanged {
                to: State::Playing { .. },
                reason: Reason::Repaired,
                ..
            }
        )),
        "{out:?}\n{}",
        sim.render()
    );
    assert!(!sim.machine().is_repairing());
    // No attempt, no drop: the session was kept through its repair.
    assert_eq!(sim.connects(), vec![(secs(0), 1)]);
    assert!(
        !sim.outputs()
            .iter()
            .any(|(_, o)| matches!(o, Output::DropSession { .. }))
    );
    // The next stall gets its own repair.
    sim.advance(secs(2));
    assert_eq!(all_repairs(&sim).len(), 2, "{}", sim.render());
}

#[test]
fn a_failed_repair_starts_the_make_before_break_attempt_at_once() {
    let mut sim = Sim::new(repairing());
    playing_repairable(&mut sim);
    sim.advance(secs(2));
    sim.advance(ms(80));
    let out = sim.input(Input::RepairFailed);
    assert_eq!(
        out,
        vec![Output::Connect { attempt: 2 }],
        "{}",
        sim.render()
    );
    assert!(sim.machine().is_racing());
    // Its session replaces the frozen one as with any make-before-break.
    let out = sim.input(Input::Connected);
    assert!(out.contains(&Output::DropSession {
        reason: Reason::Replaced
    }));
    assert!(out.contains(&Output::KeepSession));
}

#[test]
fn a_repair_without_media_within_its_bound_escalates() {
    let mut sim = Sim::new(repairing());
    playing_repairable(&mut sim);
    sim.advance(secs(2));
    // Progress that does not advance (a frozen picture on a restarted path) is no media.
    sim.freeze(ms(900), TICK);
    assert_eq!(sim.connects(), vec![(secs(0), 1)]);
    sim.advance(ms(100));
    assert_eq!(
        sim.connects(),
        vec![(secs(0), 1), (secs(3), 2)],
        "{}",
        sim.render()
    );
    // One repair per stall: the attempt failing leaves the session to its grace.
    sim.input(Input::ConnectFailed(Retry::Later));
    sim.advance(ms(500));
    assert_eq!(all_repairs(&sim).len(), 1, "{}", sim.render());
}

#[test]
fn without_make_before_break_a_failed_repair_replaces_the_session_at_once() {
    let mut sim = Sim::new(build(policy().reconnect_spread(Duration::ZERO)));
    playing_repairable(&mut sim);
    let out = sim.advance(secs(2));
    assert_eq!(repairs(&out).len(), 1, "{}", sim.render());
    let out = sim.input(Input::RepairFailed);
    assert!(
        matches!(
            out.as_slice(),
            [
                Output::DropSession {
                    reason: Reason::RepairFailed
                },
                Output::StateChanged {
                    to: State::Connecting { attempt: 2, .. },
                    reason: Reason::RepairFailed,
                    ..
                },
                Output::Connect { attempt: 2 }
            ]
        ),
        "{out:?}\n{}",
        sim.render()
    );
}

#[test]
fn a_session_not_said_repairable_is_never_asked_to_repair() {
    let mut sim = Sim::new(repairing());
    sim.start_playing();
    sim.advance(secs(2));
    sim.input(Input::NetworkChanged);
    sim.input(Input::PathLost);
    assert!(all_repairs(&sim).is_empty(), "{}", sim.render());
    // Make-before-break as before: the attempt beside the frozen session at 2 s.
    assert_eq!(sim.connects()[..2], [(secs(0), 1), (secs(2), 2)]);
}

#[test]
fn repair_off_in_the_policy_never_repairs() {
    let mut sim = Sim::new(build(
        policy()
            .make_before_break(true)
            .reconnect_spread(Duration::ZERO)
            .repair(false),
    ));
    playing_repairable(&mut sim);
    sim.input(Input::NetworkChanged);
    sim.advance(secs(2));
    assert!(all_repairs(&sim).is_empty(), "{}", sim.render());
    assert_eq!(sim.connects(), vec![(secs(0), 1), (secs(2), 2)]);
}

#[test]
fn a_lost_path_of_a_repairable_session_is_a_stall_repaired_at_once() {
    let mut sim = Sim::new(repairing());
    playing_repairable(&mut sim);
    sim.play(secs(1), TICK);
    let out = sim.input(Input::PathLost);
    assert!(
        matches!(
            out.as_slice(),
            [
                Output::StateChanged {
                    to: State::Stalled {
                        cause: StallCause::NoProgress,
                        ..
                    },
                    reason: Reason::PathLost,
                    ..
                },
                ..
            ]
        ),
        "{out:?}"
    );
    // The remedy is due now (no spread here): the repair.
    let out = sim.advance(Duration::ZERO);
    assert_eq!(repairs(&out), vec![Reason::Stall(StallCause::NoProgress)]);
    // A second loss report while it is in flight changes nothing.
    assert!(sim.input(Input::PathLost).is_empty());
}

#[test]
fn a_lost_path_of_any_other_session_is_a_lost_transport() {
    let mut sim = Sim::new(repairing());
    sim.start_playing();
    let out = sim.input(Input::PathLost);
    assert_eq!(
        out.first(),
        Some(&Output::DropSession {
            reason: Reason::TransportLost(Retry::Later)
        }),
        "{out:?}"
    );
}

#[test]
fn a_network_change_while_playing_repairs_at_once_and_keeps_playing() {
    let mut sim = Sim::new(repairing());
    playing_repairable(&mut sim);
    sim.play(ms(500), TICK);
    let out = sim.input(Input::NetworkChanged);
    assert_eq!(
        out,
        vec![Output::Repair {
            reason: Reason::NetworkChanged
        }]
    );
    assert!(sim.state().is_playing());
    // Its failure while media flows changes nothing.
    assert!(sim.input(Input::RepairFailed).is_empty());
    assert!(sim.state().is_playing());
}

#[test]
fn a_stall_during_a_network_change_repair_waits_for_it_then_escalates() {
    let mut sim = Sim::new(repairing());
    playing_repairable(&mut sim);
    // The network changes at 1.5 s; the picture (last frame at 0 s) stalls at 2 s.
    sim.advance(ms(1_500));
    sim.input(Input::NetworkChanged);
    let out = sim.advance(ms(500));
    assert!(repairs(&out).is_empty(), "{}", sim.render());
    assert!(matches!(sim.state(), State::Stalled { .. }));
    // Its bound (1 s from 1.5 s) runs out at 2.5 s: the attempt beside the session.
    sim.advance(ms(500));
    assert_eq!(
        sim.connects(),
        vec![(secs(0), 1), (ms(2_500), 2)],
        "{}",
        sim.render()
    );
}

#[test]
fn a_network_change_in_a_stall_repairs_on_the_new_path_instead_of_the_attempt() {
    let mut sim = Sim::new(repairing());
    playing_repairable(&mut sim);
    sim.advance(secs(2));
    sim.input(Input::RepairFailed);
    assert!(sim.machine().is_racing());
    let out = sim.input(Input::NetworkChanged);
    assert!(
        matches!(
            out.as_slice(),
            [
                Output::AbortConnect {
                    reason: Reason::NetworkChanged
                },
                Output::Repair {
                    reason: Reason::NetworkChanged
                }
            ]
        ),
        "{out:?}"
    );
    assert!(!sim.machine().is_racing());
}

#[test]
fn a_publisher_side_stall_is_never_repaired() {
    let mut sim = Sim::new(repairing());
    playing_repairable(&mut sim);
    sim.input(Input::Inactive);
    sim.advance(secs(5));
    assert!(all_repairs(&sim).is_empty(), "{}", sim.render());
}

#[test]
fn a_new_session_is_repairable_only_once_said_so() {
    let mut sim = Sim::new(build(policy().reconnect_spread(Duration::ZERO)));
    playing_repairable(&mut sim);
    sim.input(Input::TransportLost(Retry::Later));
    sim.jump_to_deadline();
    sim.connect_and_play();
    sim.advance(secs(2));
    assert!(all_repairs(&sim).is_empty(), "{}", sim.render());
}
