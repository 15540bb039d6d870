//! Keepalive: pings every `keepalive_ms`; a viewer silent for `idle_timeout_ms` is closed; a
//! publisher that misses two keepalive periods is lost, so its viewers hear `close` within
//! 2 × keepalive, not the idle timeout.

use super::*;
use crate::relay::protocol::CloseReason;

fn closes(got: &[(Duration, Action)]) -> Vec<(Duration, End)> {
    got.iter()
        .filter_map(|(at, a)| match a {
            Action::Close(end) => Some((*at, *end)),
            _ => None,
        })
        .collect()
}

#[test]
fn pings_go_out_every_keepalive_while_the_client_answers() {
    let mut sim = Sim::viewer(config());
    let keepalive = config().limits.keepalive();
    let mut pings = Vec::new();
    for _ in 0..5 {
        let got = sim.advance(keepalive);
        pings.extend(
            got.iter()
                .filter(|(_, a)| *a == Action::Ping)
                .map(|(at, _)| *at),
        );
        assert!(end(&got.into_iter().map(|(_, a)| a).collect::<Vec<_>>()).is_none());
        sim.session.handle_pong(sim.now);
    }
    let expected: Vec<Duration> = (1..=5).map(|n| keepalive * n).collect();
    assert_eq!(pings, expected);
}

#[test]
fn a_silent_viewer_is_closed_at_the_idle_timeout_and_a_pong_keeps_it() {
    let limits = config().limits;
    let mut sim = Sim::viewer(config());
    sim.advance(limits.idle_timeout() - ms(1));
    sim.session.handle_pong(sim.now);
    let since = sim.elapsed();
    let got = sim.advance(limits.idle_timeout() * 2);
    assert_eq!(
        closes(&got),
        [(
            since + limits.idle_timeout(),
            End::Fatal(ErrorCode::IdleTimeout)
        )]
    );
}

#[test]
fn a_silent_publisher_is_lost_after_two_keepalives_and_its_streams_close() {
    let limits = config().limits;
    assert!(
        limits.keepalive() * 2 <= Duration::from_secs(10),
        "the default bound"
    );
    let mut sim = Sim::publisher(config(), TOKEN);
    sim.text(r#"{"type":"publish","stream":"cam-1"}"#);
    let got = sim.advance(limits.idle_timeout());
    let pings = got.iter().filter(|(_, a)| *a == Action::Ping).count();
    assert_eq!(
        pings, 1,
        "it missed a ping, and the next is due as it is dropped"
    );
    assert_eq!(
        closes(&got),
        [(limits.keepalive() * 2, End::Fatal(ErrorCode::IdleTimeout))]
    );
    assert_eq!(
        sim.session.leave(),
        [Action::Unpublish {
            stream: cam(1),
            reason: CloseReason::PublisherLost
        }]
    );
}

#[test]
fn a_publisher_that_answers_pings_stays() {
    let limits = config().limits;
    let mut sim = Sim::publisher(config(), TOKEN);
    for _ in 0..20 {
        let got = sim.advance(limits.keepalive());
        assert!(closes(&got).is_empty(), "{got:?}");
        sim.session.handle_pong(sim.now);
    }
}

#[test]
fn time_running_backwards_changes_nothing() {
    let mut sim = Sim::viewer(config());
    let deadline = sim.session.poll_timeout().unwrap();
    sim.session.handle_timeout(sim.t0);
    sim.session.handle_pong(sim.t0);
    assert!(sim.drain().is_empty());
    assert_eq!(sim.session.poll_timeout(), Some(deadline));
}
