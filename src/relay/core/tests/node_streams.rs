//! The node's stream table: snapshot then events in order, take-over, slow viewers kicked,
//! entries forgotten when empty, and `max_streams`; frames queued once under the lock and
//! delivered after it.

use std::sync::Arc;

use super::*;
use crate::relay::broker::{BrokerCounts, BrokerError, Peer, Published};
use crate::relay::core::Node;
use crate::relay::outlet::Outlet;
use crate::relay::protocol::{CloseReason, Details, parse_server_frame};

fn peer(id: u64, queue: usize) -> (Peer, Arc<Outlet>) {
    Peer::detached(id, queue)
}

/// What the node queued, delivered (the shell does it once the node's lock is released).
fn deliver(node: &mut Node) {
    node.take_deliveries().deliver();
}

fn frames(outlet: &Outlet) -> Vec<ServerFrame> {
    outlet
        .take_frames()
        .into_iter()
        .map(|f| parse_server_frame(&f).unwrap())
        .collect()
}

#[test]
fn snapshot_then_events_in_order_and_the_stream_is_forgotten_when_empty() {
    let mut node = Node::new(10);
    let (viewer, v) = peer(1, 8);
    let (publisher, _p) = peer(2, 8);
    node.view(cam(1), viewer).unwrap();
    let published = node.publish(cam(1), publisher.clone(), Details::default());
    assert_eq!(published, Ok(Published::New));
    let again = node.publish(cam(1), publisher, Details::default());
    assert_eq!(again, Ok(Published::Updated));
    assert!(
        !node.unpublish(&cam(1), 99, CloseReason::Unpublished),
        "not its publisher"
    );
    assert!(node.unpublish(&cam(1), 2, CloseReason::PublisherLost));
    assert!(frames(&v).is_empty(), "nothing goes out under the lock");
    deliver(&mut node);
    let got = frames(&v);
    assert!(matches!(got[0], ServerFrame::Snapshot { live: false, .. }));
    assert!(matches!(got[1], ServerFrame::Publish { .. }));
    assert!(matches!(got[2], ServerFrame::Update { .. }));
    let lost = CloseReason::PublisherLost;
    assert!(matches!(got[3], ServerFrame::Close { reason, .. } if reason == lost));
    assert_eq!(got.len(), 4);
    node.unview(&cam(1), 1);
    assert_eq!(node.counts(), BrokerCounts::default());
}

#[test]
fn a_new_publisher_takes_over_and_the_old_one_is_told() {
    let mut node = Node::new(10);
    let (first, f) = peer(1, 8);
    let (second, _s) = peer(2, 8);
    node.publish(cam(1), first, Details::default()).unwrap();
    let took = node.publish(cam(1), second, Details::default());
    assert_eq!(took, Ok(Published::TookOver));
    deliver(&mut node);
    let replaced = ErrorCode::Replaced;
    assert!(matches!(frames(&f)[..], [ServerFrame::Error { code, .. }] if code == replaced));
    assert!(
        !node.unpublish(&cam(1), 1, CloseReason::PublisherLost),
        "no longer its own"
    );
    assert_eq!(node.counts().live, 1);
}

#[test]
fn a_slow_viewer_is_kicked_and_the_others_keep_receiving() {
    let mut node = Node::new(10);
    let (slow, kick) = peer(1, 1);
    let (fast, f) = peer(2, 8);
    let (publisher, _p) = peer(3, 8);
    node.view(cam(1), slow).unwrap();
    node.view(cam(1), fast).unwrap();
    node.publish(cam(1), publisher, Details::default()).unwrap();
    deliver(&mut node);
    assert!(kick.is_kicked(), "its queue of one held the snapshot");
    // Its connection ends on the kick and unviews; the table forgets it then.
    node.unview(&cam(1), 1);
    assert_eq!(node.counts().views, 1);
    let got = frames(&f);
    assert!(matches!(
        got[..],
        [ServerFrame::Snapshot { .. }, ServerFrame::Publish { .. }]
    ));
}

#[test]
fn the_number_of_streams_is_bounded_and_a_freed_entry_makes_room() {
    let mut node = Node::new(1);
    let (viewer, _v) = peer(1, 8);
    node.view(cam(1), viewer.clone()).unwrap();
    assert_eq!(node.room_for(&cam(1)), Ok(()), "its entry exists");
    assert_eq!(node.room_for(&cam(2)), Err(BrokerError::TooManyStreams(1)));
    let refused = node.view(cam(2), viewer.clone());
    assert_eq!(refused, Err(BrokerError::TooManyStreams(1)));
    let (publisher, _p) = peer(2, 8);
    let refused = node.publish(cam(2), publisher, Details::default());
    assert_eq!(refused, Err(BrokerError::TooManyStreams(1)));
    node.unview(&cam(1), 1);
    assert_eq!(node.view(cam(2), viewer), Ok(()));
}
