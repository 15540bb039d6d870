//! Nobody publishing yet ("stream not being published", "Feed not found"):
//! back off, jump on a live hint or `active`, give up only after
//! `wait_for_publisher`.

use relive::{GiveUpReason, Input, Output, Retry, State};

use crate::sim::Sim;
use crate::{build, policy, secs};

const NOT_PUBLISHED: Input = Input::ConnectFailed(Retry::WaitForPublisher);

#[test]
fn a_stream_not_yet_published_backs_off_and_retries() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    sim.input(NOT_PUBLISHED);
    let State::Backoff {
        attempt,
        waiting_for_publisher,
        until,
    } = sim.state()
    else {
        panic!("not backing off");
    };
    assert_eq!((attempt, waiting_for_publisher), (2, true));
    sim.advance(secs(1));
    assert_eq!(sim.connects().last(), Some(&(sim.offset(until), 2)));
}

#[test]
fn a_live_hint_connects_at_once_while_waiting_for_the_publisher() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    for _ in 0..5 {
        sim.input(NOT_PUBLISHED);
        sim.jump_to_deadline();
    }
    sim.input(NOT_PUBLISHED);
    assert!(sim.state().retry_in(sim.now()) > Some(secs(5)));
    let out = sim.input(Input::LiveHint);
    assert!(
        matches!(out.last(), Some(Output::Connect { attempt: 7 })),
        "{out:?}"
    );
}

#[test]
fn the_publisher_active_event_connects_at_once_from_backoff() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    sim.input(NOT_PUBLISHED);
    let out = sim.input(Input::Active);
    assert!(
        matches!(out.last(), Some(Output::Connect { attempt: 2 })),
        "{out:?}"
    );
    assert!(matches!(sim.state(), State::Connecting { .. }));
}

#[test]
fn waiting_for_the_publisher_gives_up_only_after_wait_for_publisher() {
    // Even with an attempt limit: waiting for a publisher is not failing.
    let p = policy()
        .wait_for_publisher(Some(secs(30)))
        .give_up_after_attempts(2);
    let mut sim = Sim::new(build(p));
    sim.input(Input::Start);
    let first_failure = sim.elapsed();
    while !sim.state().is_idle() {
        sim.input(NOT_PUBLISHED);
        if !sim.state().is_idle() {
            sim.jump_to_deadline();
        }
        assert!(sim.elapsed() < secs(120), "never gave up");
    }
    let gave_up = sim.outputs().into_iter().find_map(|(at, o)| match o {
        Output::GaveUp { reason } => Some((at, reason)),
        _ => None,
    });
    let (at, reason) = gave_up.expect("gave up");
    assert_eq!(reason, GiveUpReason::PublisherNeverCame);
    assert!(at >= first_failure + secs(30), "gave up early at {at:?}");
    assert!(
        at <= first_failure + secs(30) + secs(10),
        "gave up late at {at:?}"
    );
}

#[test]
fn without_wait_for_publisher_a_viewer_waits_forever() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    while sim.elapsed() < secs(3_600) {
        sim.input(NOT_PUBLISHED);
        assert!(
            sim.state().retry_in(sim.now()) <= Some(secs(10)),
            "above the cap"
        );
        sim.jump_to_deadline();
    }
    assert!(matches!(sim.state(), State::Connecting { .. }));
    let gave_up = |(_, o): &(_, Output)| matches!(o, Output::GaveUp { .. });
    assert!(!sim.outputs().iter().any(gave_up));
}

#[test]
fn another_failure_restarts_the_wait_for_the_publisher() {
    let p = policy().wait_for_publisher(Some(secs(30)));
    let mut sim = Sim::new(build(p));
    sim.input(Input::Start);
    while sim.elapsed() < secs(25) {
        sim.input(NOT_PUBLISHED);
        sim.jump_to_deadline();
    }
    // The service fails otherwise: the publisher was not found missing then.
    sim.input(Input::ConnectFailed(Retry::Later));
    sim.jump_to_deadline();
    let waiting_again = sim.elapsed();
    while !sim.state().is_idle() {
        sim.input(NOT_PUBLISHED);
        if !sim.state().is_idle() {
            sim.jump_to_deadline();
        }
        assert!(sim.elapsed() < secs(300), "never gave up");
    }
    let (at, reason) = sim
        .outputs()
        .into_iter()
        .find_map(|(at, o)| match o {
            Output::GaveUp { reason } => Some((at, reason)),
            _ => None,
        })
        .expect("gave up");
    assert_eq!(reason, GiveUpReason::PublisherNeverCame);
    assert!(at >= waiting_again + secs(30), "gave up at {at:?}");
}
