//! How records from other nodes reach local viewers, without a Redis: versions, expiry,
//! take-over and the bounded queue.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::relay::outlet::Outlet;
use crate::relay::protocol::{ErrorCode, ServerFrame, parse_server_frame};

fn shared(queue: usize) -> (Shared, mpsc::Receiver<Command>) {
    let (commands, rx) = mpsc::channel(queue);
    let shared = Shared {
        config: RedisConfig::new("redis://127.0.0.1"),
        node: "me".to_owned(),
        local: LocalBroker::new(10),
        state: Mutex::new(State::default()),
        commands,
        connected: watch::Sender::new(false),
        dropped: AtomicU64::new(0),
        disconnects: AtomicU64::new(0),
        connects: AtomicU64::new(0),
    };
    (shared, rx)
}

fn peer(id: u64) -> (Peer, Arc<Outlet>) {
    Peer::detached(id, 16)
}

fn frames(outlet: &Outlet) -> Vec<ServerFrame> {
    outlet
        .take_frames()
        .into_iter()
        .map(|f| parse_server_frame(&f).unwrap())
        .collect()
}

fn cam() -> StreamName {
    StreamName::new("cam").unwrap()
}

fn live(epoch: u64, seq: u64, title: &str) -> Record {
    Record {
        epoch,
        seq,
        node: "other".to_owned(),
        details: Some(Details {
            metadata: serde_json::json!({ "title": title }),
            ..Details::default()
        }),
        reason: None,
    }
}

#[test]
fn only_newer_versions_reach_viewers_and_an_expired_key_closes() {
    let (shared, _rx) = shared(8);
    let (viewer, v) = peer(1);
    shared.watch(&cam(), 1);
    let mut out = crate::relay::fanout::Deliveries::default();
    shared.local.view_now(cam(), viewer, &mut out).unwrap();
    out.deliver();
    shared.apply(&cam(), live(2, 0, "a"));
    shared.apply(&cam(), live(2, 0, "a"));
    shared.apply(&cam(), live(1, 9, "old"));
    shared.apply(&cam(), live(2, 1, "b"));
    shared.apply(&cam(), live(3, 0, "new publisher"));
    shared.apply_missing(&cam());
    let got = frames(&v);
    assert!(matches!(got[0], ServerFrame::Snapshot { live: false, .. }));
    assert!(matches!(got[1], ServerFrame::Publish { .. }));
    assert!(matches!(got[2], ServerFrame::Update { .. }));
    assert!(matches!(got[3], ServerFrame::Publish { .. }));
    let lost = CloseReason::PublisherLost;
    assert!(matches!(got[4], ServerFrame::Close { reason, .. } if reason == lost));
    assert_eq!(got.len(), 5, "{got:?}");
}

#[test]
fn records_of_streams_nobody_here_views_or_owns_are_ignored() {
    let (shared, _rx) = shared(8);
    shared.apply(&cam(), live(1, 0, "a"));
    let mut own = live(1, 0, "mine");
    own.node = "me".to_owned();
    shared.apply(&cam(), own);
    assert_eq!(shared.local.counts(), BrokerCounts::default());
}

#[test]
fn a_higher_epoch_from_another_node_replaces_the_local_publisher() {
    let (shared, _rx) = shared(8);
    let (publisher, p) = peer(7);
    shared
        .publish_now(cam(), publisher, Details::default())
        .unwrap();
    shared.apply(&cam(), live(5, 0, "not yet ours"));
    assert!(frames(&p).is_empty(), "no epoch yet: ours will be higher");
    shared.lock().owned.get_mut(&cam()).unwrap().epoch = Some(4);
    shared.apply(&cam(), live(5, 0, "theirs"));
    let replaced = ErrorCode::Replaced;
    assert!(matches!(frames(&p)[..], [ServerFrame::Error { code, .. }] if code == replaced));
    assert!(shared.lock().owned.is_empty());
    assert!(!shared.unpublish_now(cam(), 7, CloseReason::Unpublished));
    assert_eq!(shared.local.counts().streams, 0, "nobody here views it");
}

#[test]
fn a_full_queue_drops_and_counts() {
    let (shared, _rx) = shared(1);
    shared.send(Command::Announce(cam()));
    shared.send(Command::Announce(cam()));
    assert_eq!(shared.dropped.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_view_the_table_refuses_leaves_nothing_watched() {
    let (commands, mut rx) = mpsc::channel(8);
    let shared = Shared {
        local: LocalBroker::new(1),
        commands,
        ..shared(8).0
    };
    shared.connected.send_replace(true);
    let (first, _f) = peer(1);
    let (second, _s) = peer(2);
    let watch_first = shared.view(cam(), first);
    // The first view waits for the Redis task: answer it as the task would.
    let answer = async {
        match rx.recv().await {
            Some(Command::Watch(stream, done)) => {
                assert_eq!(stream, cam());
                done.send_replace(true);
            }
            other => panic!("expected a watch, got {other:?}"),
        }
    };
    let (viewed, ()) = tokio::join!(watch_first, answer);
    viewed.unwrap();
    let other = StreamName::new("other").unwrap();
    let refused = shared.view(other.clone(), second).await;
    assert_eq!(refused, Err(BrokerError::TooManyStreams(1)));
    assert!(
        !shared.lock().watched.contains_key(&other),
        "no watched entry"
    );
    assert!(
        rx.try_recv().is_err(),
        "no subscribe asked for the refused view"
    );
    shared.unview_now(&cam(), 1);
    assert!(shared.lock().watched.is_empty());
    assert!(matches!(rx.try_recv(), Ok(Command::Unwatch(s)) if s == cam()));
}

#[test]
fn a_close_of_an_announced_stream_is_kept_until_redis_has_it() {
    let (shared, mut rx) = shared(8);
    let (publisher, _p) = peer(7);
    shared
        .publish_now(cam(), publisher, Details::default())
        .unwrap();
    assert!(shared.unpublish_now(cam(), 7, CloseReason::Unpublished));
    assert!(
        shared.lock().closes.is_empty(),
        "never announced: nothing to close in Redis"
    );
    let (publisher, _p) = peer(8);
    shared
        .publish_now(cam(), publisher, Details::default())
        .unwrap();
    shared.lock().owned.get_mut(&cam()).unwrap().epoch = Some(3);
    assert!(shared.unpublish_now(cam(), 8, CloseReason::Unpublished));
    let kept = shared.lock().closes.get(&cam()).cloned().unwrap();
    assert_eq!(
        (kept.epoch, kept.reason),
        (3, Some(CloseReason::Unpublished))
    );
    let queued = std::iter::from_fn(|| rx.try_recv().ok()).last();
    assert!(matches!(queued, Some(Command::Close(s, r)) if s == cam() && r == kept));
}
