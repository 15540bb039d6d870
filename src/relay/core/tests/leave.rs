//! A connection that ends: its streams close as `publisher_lost`, its views end, and nothing
//! it sends after the close counts.

use super::*;
use crate::relay::protocol::CloseReason;

#[test]
fn a_leaving_publisher_loses_its_streams_and_a_leaving_viewer_its_views() {
    let mut publisher = Sim::publisher(config(), TOKEN);
    publisher.text(r#"{"type":"publish","stream":"cam-1"}"#);
    publisher.session.handle_gone(publisher.now);
    assert_eq!(end(&publisher.drain()), Some(End::Gone));
    let lost = CloseReason::PublisherLost;
    assert_eq!(
        publisher.session.leave(),
        [Action::Unpublish {
            stream: cam(1),
            reason: lost
        }]
    );
    let mut viewer = Sim::viewer(config());
    viewer.text(r#"{"type":"view","stream":"cam-2"}"#);
    viewer.session.handle_close(viewer.now);
    assert_eq!(end(&viewer.drain()), Some(End::Closed));
    assert!(
        viewer
            .text(r#"{"type":"view","stream":"cam-3"}"#)
            .is_empty(),
        "after the close"
    );
    assert_eq!(viewer.session.leave(), [Action::Unview { stream: cam(2) }]);
    assert!(viewer.session.leave().is_empty(), "once");
}
