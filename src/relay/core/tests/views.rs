//! Views: each asks the node; per-connection bounds; a second view of a stream is a fresh
//! snapshot; a view the node refuses is forgotten.

use super::*;
use crate::relay::broker::BrokerError;

fn view(n: u32) -> String {
    format!(r#"{{"type":"view","stream":"cam-{n}"}}"#)
}

#[test]
fn a_view_asks_the_node_and_viewing_again_asks_again() {
    let mut sim = Sim::viewer(config());
    assert_eq!(sim.text(&view(1)), [Action::View { stream: cam(1) }]);
    assert_eq!(sim.text(&view(1)), [Action::View { stream: cam(1) }]);
    assert_eq!(
        sim.text(r#"{"type":"unview","stream":"cam-1"}"#),
        [Action::Unview { stream: cam(1) }]
    );
    assert!(
        sim.text(r#"{"type":"unview","stream":"cam-1"}"#).is_empty(),
        "not viewing: nothing to undo"
    );
}

#[test]
fn a_connection_views_at_most_max_views_streams() {
    let mut config = config();
    config.limits.max_views = 2;
    let mut sim = Sim::viewer(config);
    sim.text(&view(1));
    sim.text(&view(2));
    assert_eq!(
        errors(&sim.text(&view(3))),
        [(ErrorCode::TooManyStreams, false)]
    );
    assert_eq!(
        sim.text(&view(2)),
        [Action::View { stream: cam(2) }],
        "already viewed"
    );
    sim.text(r#"{"type":"unview","stream":"cam-1"}"#);
    assert_eq!(sim.text(&view(3)), [Action::View { stream: cam(3) }]);
}

#[test]
fn a_view_the_node_refuses_is_told_and_forgotten() {
    let mut config = config();
    config.limits.max_views = 1;
    let mut sim = Sim::viewer(config);
    sim.text(&view(1));
    sim.session
        .handle_refused(&cam(1), &BrokerError::TooManyStreams(10));
    let got = sim.drain();
    assert_eq!(errors(&got), [(ErrorCode::TooManyStreams, false)]);
    assert_eq!(
        sim.text(&view(2)),
        [Action::View { stream: cam(2) }],
        "the slot is free"
    );
    assert_eq!(sim.session.leave(), [Action::Unview { stream: cam(2) }]);
}

#[test]
fn a_view_of_a_stream_no_publish_rule_covers_is_refused_and_takes_nothing() {
    let mut config = config();
    config.limits.max_views = 1;
    let mut sim = Sim::viewer(config);
    let got = sim.text(r#"{"type":"view","stream":"made-up-name"}"#);
    assert_eq!(errors(&got), [(ErrorCode::Forbidden, false)]);
    assert!(
        !got.iter().any(|a| matches!(a, Action::View { .. })),
        "the node is not asked"
    );
    assert_eq!(
        sim.text(&view(1)),
        [Action::View { stream: cam(1) }],
        "no slot was taken"
    );
}
