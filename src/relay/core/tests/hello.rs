//! `hello` comes first: versions, roles, publish tokens, and the hello deadline.

use super::*;
use crate::relay::protocol::Role;

#[test]
fn frames_before_hello_are_refused_but_pings_are_answered() {
    let mut sim = Sim::new(config());
    let got = sim.text(r#"{"type":"view","stream":"cam-1"}"#);
    assert_eq!(errors(&got), [(ErrorCode::HelloRequired, false)]);
    let got = sim.text(r#"{"type":"ping","id":3}"#);
    assert_eq!(got, [Action::Send(ServerFrame::Pong { id: Some(3) })]);
}

#[test]
fn an_unknown_version_is_fatal() {
    let mut sim = Sim::new(config());
    let got = sim.text(r#"{"type":"hello","v":2,"role":"viewer"}"#);
    assert_eq!(errors(&got), [(ErrorCode::UnsupportedVersion, true)]);
    assert_eq!(end(&got), Some(End::Fatal(ErrorCode::UnsupportedVersion)));
    assert_eq!(
        sim.session.poll_timeout(),
        None,
        "closed: no more deadlines"
    );
    assert!(
        sim.text(r#"{"type":"ping"}"#).is_empty(),
        "closed: inputs ignored"
    );
}

#[test]
fn a_publisher_needs_a_token_of_some_rule_and_a_viewer_needs_none() {
    for hello in [
        r#"{"type":"hello","v":1,"role":"publisher"}"#,
        r#"{"type":"hello","v":1,"role":"publisher","token":"guess"}"#,
    ] {
        let mut sim = Sim::new(config());
        let got = sim.text(hello);
        assert_eq!(errors(&got), [(ErrorCode::Unauthorized, true)], "{hello}");
        assert!(!got.contains(&Action::Joined(Role::Publisher)));
    }
    let mut sim = Sim::new(config());
    let got = sim.text(r#"{"type":"hello","v":1,"role":"viewer","token":"anything"}"#);
    assert_eq!(got[0], Action::Joined(Role::Viewer));
    assert!(matches!(
        &got[1],
        Action::Send(ServerFrame::Welcome {
            session: 7,
            role: Role::Viewer,
            ..
        })
    ));
}

#[test]
fn a_second_hello_is_refused_and_changes_nothing() {
    let mut sim = Sim::viewer(config());
    let hello = format!(r#"{{"type":"hello","v":1,"role":"publisher","token":"{TOKEN}"}}"#);
    let got = sim.text(&hello);
    assert_eq!(errors(&got), [(ErrorCode::DuplicateHello, false)]);
    let got = sim.text(r#"{"type":"publish","stream":"cam-1"}"#);
    assert_eq!(
        errors(&got),
        [(ErrorCode::Forbidden, false)],
        "still a viewer"
    );
}

#[test]
fn no_hello_within_hello_timeout_closes_exactly_then() {
    let mut sim = Sim::new(config());
    let timeout = config().limits.hello_timeout();
    let got = sim.advance(timeout + ms(1));
    let fatal: Vec<_> = got
        .iter()
        .filter(|(_, a)| matches!(a, Action::Close(_)))
        .collect();
    assert_eq!(
        fatal,
        [&(timeout, Action::Close(End::Fatal(ErrorCode::HelloTimeout)))]
    );
}

#[test]
fn a_hello_in_time_cancels_the_hello_deadline() {
    let mut sim = Sim::new(config());
    sim.advance(config().limits.hello_timeout() - ms(1));
    sim.text(r#"{"type":"hello","v":1,"role":"viewer"}"#);
    let got = sim.advance(ms(10));
    assert!(end(&got.into_iter().map(|(_, a)| a).collect::<Vec<_>>()).is_none());
}
