//! Live hints (a relay's publish event, Millicast `active`) cut a backoff
//! short, spread over `hint_spread` when set; they heal a session stalled
//! because the publisher or its layers went away; elsewhere they do nothing.

use relive::{Input, Output, Reason, Retry, StallCause, State};

use crate::sim::Sim;
use crate::{SPREAD, TICK, build, ms, policy, secs};

/// A machine backing off for its fourth attempt, 4 s away.
fn backing_off(sim: &mut Sim) {
    sim.input(Input::Start);
    for _ in 0..2 {
        sim.input(Input::ConnectFailed(Retry::Later));
        sim.jump_to_deadline();
    }
    sim.input(Input::ConnectFailed(Retry::Later));
    assert!(matches!(sim.state(), State::Backoff { attempt: 4, .. }));
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(4)));
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
fn a_live_hint_while_idle_connecting_playing_or_frozen_acts_on_nothing_at_once() {
    let mut sim = Sim::new(build(policy()));
    assert!(sim.input(Input::LiveHint).is_empty(), "idle");
    sim.input(Input::Start);
    assert!(sim.input(Input::LiveHint).is_empty(), "connecting");
    sim.connect_and_play();
    assert!(sim.input(Input::LiveHint).is_empty(), "playing");
    sim.freeze(secs(3), TICK);
    let frozen = sim.state();
    assert!(matches!(
        frozen,
        State::Stalled {
            cause: StallCause::NoProgress,
            ..
        }
    ));
    // The publisher being live says nothing about a picture frozen on this session.
    assert!(
        sim.input(Input::LiveHint).is_empty(),
        "stalled, no progress"
    );
    assert_eq!(sim.state(), frozen);
}

#[test]
fn a_live_hint_heals_a_stall_on_the_publisher_side_with_the_first_media_window() {
    for (cause, input) in [
        (StallCause::Inactive, Input::Inactive),
        (StallCause::StreamEnded, Input::StreamEnded),
        (StallCause::NoLayers, Input::Layers { active: 0 }),
    ] {
        let mut sim = Sim::new(build(policy()));
        sim.start_playing();
        sim.play(secs(1), TICK);
        sim.input(input);
        assert!(
            matches!(sim.state(), State::Stalled { cause: c, .. } if c == cause),
            "{cause:?}"
        );
        sim.advance(secs(2));
        let hinted_at = sim.elapsed();
        let out = sim.input(Input::LiveHint);
        assert!(
            matches!(
                out.as_slice(),
                [Output::StateChanged {
                    from: State::Stalled { .. },
                    to: State::Playing { .. },
                    reason: Reason::LiveHint,
                }]
            ),
            "{cause:?}: {out:?}"
        );
        assert_eq!(sim.connects().len(), 1, "{cause:?}: the same session");
        // The publisher is back: media gets first_media_within (5 s), not
        // stall_after (2 s), and the grace no longer runs.
        sim.advance(ms(4_999));
        assert!(sim.state().is_playing(), "{cause:?}");
        sim.advance(ms(1));
        assert_eq!(
            sim.entered(|s| matches!(
                s,
                State::Stalled {
                    cause: StallCause::NoProgress,
                    ..
                }
            )),
            Some((hinted_at + secs(5), Reason::Stall(StallCause::NoProgress))),
            "{cause:?}"
        );
    }
}

#[test]
fn a_live_hint_that_healed_a_stall_is_followed_by_media_on_the_same_session() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(1), TICK);
    sim.input(Input::Inactive);
    sim.input(Input::LiveHint);
    sim.play(secs(30), TICK);
    assert!(sim.state().is_playing());
    let dropped = |(_, o): &(_, Output)| matches!(o, Output::DropSession { .. });
    assert!(!sim.outputs().iter().any(dropped));
}

#[test]
fn a_live_hint_during_the_reconnect_spread_connects_at_once() {
    for hint in [Input::LiveHint, Input::Active] {
        let mut sim = Sim::new(build(policy().reconnect_spread(secs(60))));
        sim.start_playing();
        sim.play(secs(11), TICK);
        sim.input(Input::TransportLost(Retry::Later));
        assert!(matches!(sim.state(), State::Backoff { attempt: 1, .. }));
        assert!(sim.state().retry_in(sim.now()) > Some(SPREAD));
        let out = sim.input(hint);
        assert!(
            matches!(
                out.as_slice(),
                [
                    Output::StateChanged {
                        reason: Reason::LiveHint,
                        ..
                    },
                    Output::Connect { attempt: 1 }
                ]
            ),
            "{hint:?}: {out:?}"
        );
    }
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

/// The relay said "live" while an attempt started before the publisher was
/// back was still in flight.
#[test]
fn a_live_hint_during_an_attempt_acts_on_the_backoff_that_follows_once() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    assert!(sim.input(Input::LiveHint).is_empty(), "kept, not acted on");
    let out = sim.input(Input::ConnectFailed(Retry::WaitForPublisher));
    assert!(
        matches!(
            out.as_slice(),
            [
                Output::StateChanged {
                    to: State::Backoff { .. },
                    reason: Reason::ConnectFailed(Retry::WaitForPublisher),
                    ..
                },
                Output::StateChanged {
                    to: State::Connecting { attempt: 2, .. },
                    reason: Reason::LiveHint,
                    ..
                },
                Output::Connect { attempt: 2 }
            ]
        ),
        "{out:?}"
    );
    // Used up: the next failure backs off in full.
    sim.input(Input::ConnectFailed(Retry::WaitForPublisher));
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(2)));
}

#[test]
fn a_withdrawn_live_hint_is_forgotten() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    sim.input(Input::LiveHint);
    assert!(sim.input(Input::LiveHintWithdrawn).is_empty());
    sim.input(Input::ConnectFailed(Retry::WaitForPublisher));
    assert!(matches!(sim.state(), State::Backoff { attempt: 2, .. }));
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(1)));
}

#[test]
fn a_live_hint_kept_for_later_is_moot_once_playing() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    sim.input(Input::LiveHint);
    sim.connect_and_play();
    sim.input(Input::TransportLost(Retry::Later));
    // The drop backs off (this session was not stable yet); no old hint cuts it short.
    assert!(
        matches!(sim.state(), State::Backoff { attempt: 2, .. }),
        "{}",
        sim.render()
    );
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(1)));
}

#[test]
fn a_live_hint_during_a_frozen_session_reconnects_at_once_after_the_grace() {
    let mut sim = Sim::new(build(policy()));
    sim.start_playing();
    sim.play(secs(11), TICK);
    sim.freeze(secs(3), TICK);
    assert!(matches!(sim.state(), State::Stalled { .. }));
    sim.input(Input::LiveHint);
    let out = sim.advance(secs(3));
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::StateChanged {
                reason: Reason::LiveHint,
                ..
            }
        )),
        "{}",
        sim.render()
    );
    assert!(matches!(sim.state(), State::Connecting { attempt: 1, .. }));
}

#[test]
fn a_live_hint_with_a_spread_kept_during_an_attempt_waits_within_the_spread() {
    let mut sim = Sim::new(build(policy().hint_spread(SPREAD)));
    sim.input(Input::Start);
    sim.input(Input::LiveHint);
    sim.input(Input::ConnectFailed(Retry::Later));
    let State::Backoff { until, .. } = sim.state() else {
        panic!("not backing off\n{}", sim.render());
    };
    assert!(until - sim.now() <= SPREAD.min(secs(1)), "{}", sim.render());
}
