//! A server's `Retry-After` is the least delay before the next attempt, capped
//! by `retry_after_max`; nothing shortens it, and it holds for one attempt only.

use relive::{Input, Output, Reason, Retry, State};

use crate::sim::Sim;
use crate::{build, ms, policy, secs};

fn busy(retry_after: std::time::Duration) -> Input {
    Input::ConnectFailedRetryAfter {
        retry: Retry::Later,
        retry_after,
    }
}

#[test]
fn a_retry_after_longer_than_the_backoff_is_the_delay() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    sim.input(busy(secs(4)));
    // The backoff alone says 1 s.
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(4)));
    sim.advance(ms(3_999));
    assert_eq!(sim.connects().len(), 1, "{}", sim.render());
    sim.jump_to_deadline();
    assert_eq!(sim.connects(), vec![(secs(0), 1), (secs(4), 2)]);
}

#[test]
fn a_retry_after_shorter_than_the_backoff_changes_nothing() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    sim.input(Input::ConnectFailed(Retry::Later));
    sim.jump_to_deadline();
    sim.input(busy(ms(300)));
    // Attempt 2 failed: the backoff says 2 s, the server only 0.3 s.
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(2)));
}

#[test]
fn a_hostile_retry_after_is_capped_by_the_policy() {
    let mut sim = Sim::new(build(policy().retry_after_max(secs(20))));
    sim.input(Input::Start);
    sim.input(busy(secs(86_400)));
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(20)));
    let default = Sim::new(build(policy()));
    assert_eq!(default.machine().policy().retry_after_max(), secs(60));
}

#[test]
fn a_zero_cap_ignores_retry_after() {
    let mut sim = Sim::new(build(policy().retry_after_max(secs(0))));
    sim.input(Input::Start);
    sim.input(busy(secs(30)));
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(1)));
}

#[test]
fn neither_a_live_hint_nor_a_network_change_cuts_a_retry_after_short() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    sim.input(busy(secs(5)));
    sim.advance(secs(1));
    sim.input(Input::LiveHint);
    sim.input(Input::NetworkChanged);
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(4)));
    sim.jump_to_deadline();
    assert_eq!(sim.connects(), vec![(secs(0), 1), (secs(5), 2)]);
}

#[test]
fn a_network_change_after_a_retry_after_passed_connects_at_once() {
    // A wait of 10 s: the server asked for 2 s, the backoff for more.
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    for _ in 0..3 {
        sim.input(Input::ConnectFailed(Retry::Later));
        sim.jump_to_deadline();
    }
    sim.input(busy(secs(2)));
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(8)));
    sim.advance(secs(1));
    let out = sim.input(Input::NetworkChanged);
    // Only 1 s passed: the attempt waits until the server's 2 s.
    assert!(
        matches!(
            out.as_slice(),
            [Output::StateChanged {
                to: State::Backoff { .. },
                reason: Reason::NetworkChanged,
                ..
            }]
        ),
        "{out:?}"
    );
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(1)));
}

#[test]
fn a_retry_after_holds_for_the_next_attempt_only() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    sim.input(busy(secs(6)));
    sim.jump_to_deadline();
    assert!(matches!(sim.state(), State::Connecting { attempt: 2, .. }));
    // Attempt 2 fails without a Retry-After: the backoff's 2 s, not 6 s.
    sim.input(Input::ConnectFailed(Retry::Later));
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(2)));
}

#[test]
fn a_redirect_with_retry_after_still_waits() {
    let mut sim = Sim::new(build(policy()));
    sim.input(Input::Start);
    sim.input(Input::ConnectFailedRetryAfter {
        retry: Retry::Now,
        retry_after: secs(3),
    });
    assert_eq!(sim.state().retry_in(sim.now()), Some(secs(3)));
}

#[test]
fn a_retry_after_outside_an_attempt_is_stale() {
    let mut sim = Sim::new(build(policy()));
    assert!(sim.input(busy(secs(3))).is_empty());
    sim.input(Input::Start);
    sim.connect_and_play();
    assert!(sim.input(busy(secs(3))).is_empty());
    assert!(sim.state().is_playing());
}
