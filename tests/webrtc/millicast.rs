//! MillicastSource with real media: the testkit server answers each `view` with a publisher
//! peer, and the reconnect machine watches media time (the progress watchdog is on).

use std::time::Duration;

use relive::millicast::{MillicastMedia, MillicastSource};
use relive::testkit::millicast::MillicastServer;
use relive::webrtc::{ReceivePeers, WebRtcMedia};
use relive::{Reason, Reconnector, StallCause, State};
use tokio::time::Instant;

use crate::support::Watch;
use crate::{CAM, STALL_AFTER, TICK, peers, policy, until_media};

type Source = MillicastSource<ReceivePeers>;

fn source(server: &MillicastServer, peers: ReceivePeers) -> Source {
    MillicastSource::new(server.account_id(), CAM)
        .director_url(server.director_url())
        .request_timeout(Duration::from_secs(2))
        .offer_provider(peers)
}

fn watch(server: &MillicastServer, stall_grace: Duration) -> Watch<Source> {
    let viewer = Reconnector::new(source(server, peers()), policy(stall_grace))
        .seed(5)
        .spawn();
    Watch::new(viewer)
}

fn webrtc(media: &mut MillicastMedia<WebRtcMedia>) -> &mut WebRtcMedia {
    &mut media.media
}

#[tokio::test]
async fn a_viewer_receives_media_and_its_media_time_advances() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = watch(&server, Duration::from_secs(2));
    let mut session = until_media(&mut w, webrtc).await;
    let mut pts = Duration::ZERO;
    while pts < Duration::from_secs(1) {
        let frame = tokio::time::timeout(crate::PATIENCE, session.media.recv()).await;
        pts = pts.max(frame.unwrap().unwrap().pts);
    }
    // A second of media with a 600 ms watchdog: only progress ticks kept it playing.
    assert!(w.viewer.state().is_playing(), "{}", w.dump());
    assert!(
        !w.states
            .iter()
            .any(|(s, _)| matches!(s, State::Stalled { .. })),
        "{}",
        w.dump()
    );
    assert_eq!(session.view.cluster_id, "relive-testkit");
}

#[tokio::test]
async fn a_frozen_publisher_is_seen_from_media_time_and_heals_on_the_same_session() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    // Without make-before-break: this is the grace healing a session alone.
    let alone = crate::builder(Duration::from_secs(10))
        .make_before_break(false)
        .build()
        .unwrap();
    let viewer = Reconnector::new(source(&server, peers()), alone)
        .seed(5)
        .spawn();
    let mut w = Watch::new(viewer);
    let _session = until_media(&mut w, webrtc).await;
    let frozen_at = Instant::now();
    server.freeze(CAM);
    let reason = w
        .until_state("stalled", |s| matches!(s, State::Stalled { .. }))
        .await;
    let detected = frozen_at.elapsed();
    assert_eq!(
        reason,
        Reason::Stall(StallCause::NoProgress),
        "{}",
        w.dump()
    );
    // The upper bound is stall_after + one tick, proven on virtual time in the core tests;
    // loopback scheduling on a shared machine is no clock, so here only the causal lower bound:
    // the stall is not declared before media time stood still for `stall_after` (less a tick).
    assert!(detected >= STALL_AFTER - TICK, "{detected:?}\n{}", w.dump());
    server.unfreeze(CAM);
    assert_eq!(
        w.until_playing().await,
        Reason::ProgressResumed,
        "{}",
        w.dump()
    );
    assert_eq!(server.view_requests(), 1, "the same session heals");
}

#[tokio::test]
async fn a_publisher_that_stops_reconnects_and_media_flows_again() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = watch(&server, Duration::from_millis(300));
    until_media(&mut w, webrtc).await;
    server.unpublish(CAM);
    let reason = w
        .until_state("stalled", |s| matches!(s, State::Stalled { .. }))
        .await;
    assert_eq!(reason, Reason::Stall(StallCause::Inactive));
    // A tick still in flight from the last packets does not read as the stream coming back.
    let reason = w
        .until_state("leaving the stall", |s| !matches!(s, State::Stalled { .. }))
        .await;
    assert_eq!(
        reason,
        Reason::GraceExpired(StallCause::Inactive),
        "{}",
        w.dump()
    );
    w.until_state("waiting for the publisher", |s| {
        matches!(
            s,
            State::Backoff {
                waiting_for_publisher: true,
                ..
            }
        )
    })
    .await;
    server.publish(CAM);
    until_media(&mut w, webrtc).await;
    assert_eq!(w.sessions, 2, "{}", w.dump());
}

#[tokio::test]
async fn a_black_holed_media_path_is_caught_from_media_time_and_a_fresh_peer_recovers() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = watch(&server, Duration::from_millis(300));
    until_media(&mut w, webrtc).await;
    server.blackhole_media(CAM, true);
    let reason = w
        .until_state("stalled", |s| matches!(s, State::Stalled { .. }))
        .await;
    assert_eq!(
        reason,
        Reason::Stall(StallCause::NoProgress),
        "{}",
        w.dump()
    );
    // The signaling socket is fine; the machine drops the session after the grace anyway.
    let reason = w
        .until_state("reconnecting", |s| !matches!(s, State::Stalled { .. }))
        .await;
    assert_eq!(
        reason,
        Reason::GraceExpired(StallCause::NoProgress),
        "{}",
        w.dump()
    );
    let sessions = w.sessions;
    server.blackhole_media(CAM, false);
    until_media(&mut w, webrtc).await;
    assert!(w.sessions > sessions, "a fresh peer: {}", w.dump());
}

#[tokio::test]
async fn dropped_sessions_leave_no_peer_task_behind() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let peers = peers();
    let viewer = Reconnector::new(
        source(&server, peers.clone()),
        policy(Duration::from_secs(2)),
    );
    let mut w = Watch::new(viewer.spawn());
    let mut session = until_media(&mut w, webrtc).await;
    server.close_all_sockets();
    let mut session2 = until_media(&mut w, webrtc).await;
    // The first session's peer ended with its session (its queue ends once the task is gone)...
    drain(&mut session.media).await;
    assert_eq!(peers.live_peers(), 1);
    w.viewer.stop().await;
    // ...and the second one's with the stop.
    drain(&mut session2.media).await;
    assert_eq!(peers.live_peers(), 0);
}

/// Reads until the media ends, at most PATIENCE.
async fn drain(media: &mut WebRtcMedia) {
    let end = async { while media.recv().await.is_some() {} };
    tokio::time::timeout(crate::PATIENCE, end).await.unwrap();
}
