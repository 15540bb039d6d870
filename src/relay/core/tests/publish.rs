//! Publishing: each publish asks the node; per-connection bounds; `close` only of one's own
//! streams, told `unpublished`.

use super::*;
use crate::relay::broker::BrokerError;
use crate::relay::protocol::CloseReason;

fn publish(n: u32) -> String {
    format!(r#"{{"type":"publish","stream":"cam-{n}","details":{{}}}}"#)
}

#[test]
fn publish_then_close_tells_viewers_unpublished() {
    let mut sim = Sim::publisher(config(), TOKEN);
    let got = sim.text(&publish(1));
    assert!(matches!(&got[..], [Action::Publish { stream, .. }] if *stream == cam(1)));
    let got = sim.text(r#"{"type":"close","stream":"cam-1"}"#);
    let unpublished = CloseReason::Unpublished;
    assert_eq!(
        got,
        [Action::Unpublish {
            stream: cam(1),
            reason: unpublished
        }]
    );
    let got = sim.text(r#"{"type":"close","stream":"cam-1"}"#);
    assert_eq!(errors(&got), [(ErrorCode::NotPublisher, false)]);
    assert!(sim.session.leave().is_empty(), "nothing left to undo");
}

#[test]
fn a_connection_publishes_at_most_max_publishes_streams() {
    let mut config = config();
    config.limits.max_publishes = 1;
    let mut sim = Sim::publisher(config, TOKEN);
    sim.text(&publish(1));
    assert_eq!(
        errors(&sim.text(&publish(2))),
        [(ErrorCode::TooManyStreams, false)]
    );
    let update = sim.text(&publish(1));
    assert!(
        matches!(&update[..], [Action::Publish { .. }]),
        "an update is not a new one"
    );
}

#[test]
fn a_publish_the_node_refuses_is_not_held() {
    let mut sim = Sim::publisher(config(), TOKEN);
    sim.text(&publish(1));
    sim.session
        .handle_refused(&cam(1), &BrokerError::TooManyStreams(1));
    assert_eq!(errors(&sim.drain()), [(ErrorCode::TooManyStreams, false)]);
    let got = sim.text(r#"{"type":"close","stream":"cam-1"}"#);
    assert_eq!(errors(&got), [(ErrorCode::NotPublisher, false)]);
}
