//! Make-before-break, as a property: on random policies (make-before-break
//! on) and random sequences, including network changes and `Retry-After`
//! answers, the world the outputs describe keeps these invariants after every
//! call:
//!
//! - never two attempts: a `Connect` only with no attempt in flight;
//! - at most two things held at once — a session and an attempt — and only
//!   while `Stalled` for a cause on the viewer's side (no progress, no
//!   layers), with the machine saying it races;
//! - a `KeepSession` only in answer to `Connected` with an attempt in flight;
//!   the session it keeps is the only one (the frozen one was dropped first);
//! - `Abort` only with an attempt, `Drop` only with a session; `Idle` holds
//!   neither; the machine's own `is_racing` agrees with the world;
//! - a `Repair` only of a held session said `Repairable`, with no attempt in
//!   flight, never in a publisher-side stall, and a second one while the
//!   machine waits for one only for a network change (the new path);
//!   `is_repairing` only with a session held.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use relive::{Input, Machine, Output, Policy, Retry, State};

use crate::{Media, Step, ms, retry, step};

/// A step of this property: one of the model's, or one the model does not know.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RaceStep {
    Base(Step),
    NetworkChanged,
    /// `ConnectFailedRetryAfter` with this class and this many ms.
    RetryAfter(Retry, u16),
    /// The session held now can be repaired.
    Repairable,
    /// The repair in flight failed.
    RepairFailed,
    /// The session's media path was lost.
    PathLost,
}

pub(crate) fn race_step() -> impl Strategy<Value = RaceStep> {
    prop_oneof![
        12 => step().prop_map(RaceStep::Base),
        1 => Just(RaceStep::NetworkChanged),
        1 => (retry(), 0..5_000u16).prop_map(|(r, d)| RaceStep::RetryAfter(r, d)),
        2 => Just(RaceStep::Repairable),
        1 => Just(RaceStep::RepairFailed),
        1 => Just(RaceStep::PathLost),
    ]
}

/// A policy with make-before-break on, around the timings that make it race.
pub(crate) fn race_policy() -> impl Strategy<Value = Policy> {
    (
        1..3_000u64,
        0..4_000u64,
        1..4_000u64,
        prop_oneof![Just(0u64), 1..2_000u64],
        0..10_000u64,
        1..3_000u64,
    )
        .prop_map(
            |(stall_after, grace, connect_timeout, spread, retry_max, repair)| {
                Policy::builder()
                    .stall_after(ms(stall_after))
                    .first_media_within(ms(stall_after * 2))
                    .stall_grace(ms(grace))
                    .connect_timeout(ms(connect_timeout))
                    .reconnect_spread(ms(spread))
                    .retry_after_max(ms(retry_max))
                    .make_before_break(true)
                    .repair_within(ms(repair))
                    .build()
                    .expect("the strategy only builds valid policies")
            },
        )
}

/// What the outputs say the caller holds.
#[derive(Debug, Default)]
struct Held {
    attempt: bool,
    session: bool,
    /// A session connected and waits for `KeepSession`.
    arrived: bool,
    /// The session held was said to be repairable.
    repairable: bool,
    /// A repair of the session held is in flight.
    repair: bool,
}

/// Runs `steps`, checking the invariants after each; returns how the races
/// it saw ended (for the generator's guard).
pub(crate) fn outcomes(policy: Policy, seed: u64, steps: &[RaceStep]) -> BTreeSet<&'static str> {
    let mut seen = BTreeSet::new();
    let mut m = Machine::new(policy, seed);
    #[allow(clippy::disallowed_methods)] // the one real reading; all else is offsets
    let base = Instant::now();
    let mut clock = Duration::ZERO;
    let mut media = Duration::ZERO;
    let mut held = Held::default();
    for (n, step) in steps.iter().enumerate() {
        let racing_before = held.session && held.attempt;
        // A repair the machine moved past (media came back) may still be in
        // flight at the caller, which drops it for a new one.
        let repairing_before = m.is_repairing();
        let now = base + clock;
        let input = match *step {
            RaceStep::NetworkChanged => Some(Input::NetworkChanged),
            RaceStep::Repairable => {
                held.repairable |= held.session;
                Some(Input::Repairable)
            }
            RaceStep::RepairFailed => {
                held.repair = false;
                Some(Input::RepairFailed)
            }
            RaceStep::PathLost => Some(Input::PathLost),
            RaceStep::RetryAfter(retry, d) => {
                held.attempt = false;
                Some(Input::ConnectFailedRetryAfter {
                    retry,
                    retry_after: ms(u64::from(d)),
                })
            }
            RaceStep::Base(base_step) => match base_step {
                Step::Wait(d) => {
                    clock = clock.saturating_add(ms(u64::from(d.unsigned_abs())));
                    None
                }
                Step::TimeoutAtDeadline | Step::FireDue => {
                    if let Some(at) = m.poll_timeout() {
                        clock = clock.max(at.saturating_duration_since(base));
                        m.handle_timeout(base + clock);
                    }
                    None
                }
                Step::TimeoutAt(d) => {
                    m.handle_timeout(now + ms(u64::from(d.unsigned_abs())));
                    None
                }
                Step::Progress(Media::Advance(d) | Media::Leap(d)) => {
                    media += ms(u64::from(d));
                    Some(Input::Progress(media))
                }
                Step::Progress(_) => Some(Input::Progress(media)),
                Step::Connected => {
                    held.arrived = held.attempt;
                    held.attempt = false;
                    Some(Input::Connected)
                }
                Step::ConnectFailed(retry) => {
                    held.attempt = false;
                    Some(Input::ConnectFailed(retry))
                }
                other => Some(base_input(other)),
            },
        };
        if let Some(input) = input {
            m.handle_input(now, input);
        }
        let answered = matches!(
            step,
            RaceStep::Base(Step::ConnectFailed(_)) | RaceStep::RetryAfter(..)
        );
        if racing_before && answered {
            seen.insert("failed");
        }
        while let Some(output) = m.poll_output() {
            let ctx = || format!("step #{n} {step:?}: {output:?}, held {held:?}");
            match output {
                Output::Connect { .. } => {
                    assert!(!held.attempt, "two attempts: {}", ctx());
                    held.attempt = true;
                }
                Output::KeepSession => {
                    assert!(held.arrived, "kept what did not connect: {}", ctx());
                    assert!(!held.session, "two sessions kept: {}", ctx());
                    held.session = true;
                    held.arrived = false;
                    held.repairable = false;
                    held.repair = false;
                }
                Output::Repair { reason } => {
                    assert!(held.session && held.repairable, "repair of what: {}", ctx());
                    assert!(!held.attempt, "a repair beside an attempt: {}", ctx());
                    assert!(
                        !repairing_before || reason == relive::Reason::NetworkChanged,
                        "two repairs: {}",
                        ctx()
                    );
                    assert!(
                        !matches!(m.state(), State::Stalled { cause, .. } if cause.is_publisher_side()),
                        "a repair in a publisher-side stall: {}",
                        ctx()
                    );
                    held.repair = true;
                    seen.insert("repair");
                }
                Output::StateChanged {
                    reason: relive::Reason::Repaired,
                    ..
                } => {
                    seen.insert("repaired");
                }
                Output::AbortConnect { .. } => {
                    if held.session {
                        seen.insert("abandoned");
                    }
                    assert!(held.attempt, "abort without attempt: {}", ctx());
                    held.attempt = false;
                }
                Output::DropSession { reason } => {
                    if reason == relive::Reason::Replaced {
                        seen.insert("replaced");
                    } else if held.attempt {
                        seen.insert("went on");
                    }
                    assert!(held.session, "drop without session: {}", ctx());
                    held.session = false;
                    held.repairable = false;
                    held.repair = false;
                }
                _ => {}
            }
        }
        // A session that connected but was not kept is closed by the caller.
        held.arrived = false;
        let state = m.state();
        if m.is_repairing() {
            assert!(
                held.session,
                "repairing without a session: step #{n} {step:?}"
            );
        }
        let both = held.session && held.attempt;
        assert_eq!(
            m.is_racing(),
            both,
            "step #{n} {step:?}: {state:?} {held:?}"
        );
        if both {
            assert!(
                matches!(state, State::Stalled { cause, .. } if !cause.is_publisher_side()),
                "a session and an attempt outside a viewer-side stall: step #{n} {step:?} {state:?}"
            );
        }
        match state {
            State::Idle | State::Backoff { .. } => {
                assert!(
                    !held.session && !held.attempt,
                    "step #{n}: {state:?} {held:?}"
                );
            }
            State::Connecting { .. } => {
                assert!(
                    held.attempt && !held.session,
                    "step #{n}: {state:?} {held:?}"
                );
            }
            State::Playing { .. } => {
                assert!(
                    held.session && !held.attempt,
                    "step #{n}: {state:?} {held:?}"
                );
            }
            State::Stalled { .. } => assert!(held.session, "step #{n}: {state:?} {held:?}"),
        }
    }
    seen
}

fn base_input(step: Step) -> Input {
    match step {
        Step::Start => Input::Start,
        Step::Stop => Input::Stop,
        Step::Pause => Input::Pause,
        Step::Resume => Input::Resume,
        Step::Layers(active) => Input::Layers { active },
        Step::Active => Input::Active,
        Step::Inactive => Input::Inactive,
        Step::StreamEnded => Input::StreamEnded,
        Step::TransportLost(retry) => Input::TransportLost(retry),
        Step::SessionEnded => Input::SessionEnded,
        Step::LiveHint => Input::LiveHint,
        Step::LiveHintWithdrawn => Input::LiveHintWithdrawn,
        _ => unreachable!("handled by the caller: {step:?}"),
    }
}
