//! The peer alone: a viewer offer answered by a publisher peer, no signaling.

use std::time::Duration;

use futures::StreamExt;
use relive::offer::{MediaEvent, NegotiatedMedia, OfferProvider, PendingOffer};
use relive::testkit::publisher::{Feed, PublisherPeer};
use relive::webrtc::{Delivery, MediaCodec, ReceivePeers, TrackKind, WebRtcMedia};
use tokio::sync::watch;
use tokio::time::timeout;

use crate::support::PATIENCE;
use crate::{LOOPBACK, peers};

#[tokio::test]
async fn a_peer_receives_frames_and_ticks_progress_from_their_timestamps() {
    let peers = peers();
    let offer = peers.create_offer(&[]).await.unwrap();
    let (_feed_tx, feed) = watch::channel(Feed {
        sending: true,
        ..Feed::default()
    });
    let (publisher, answer) = PublisherPeer::answer(offer.sdp(), LOOPBACK, feed).unwrap();
    assert!(
        answer.contains("a=ice-lite") && answer.contains("a=setup:passive"),
        "{answer}"
    );
    let mut session = offer.accept(&answer).await.unwrap();
    let mut last = Duration::ZERO;
    while last < Duration::from_millis(500) {
        match timeout(PATIENCE, session.events.next()).await.unwrap() {
            Some(MediaEvent::Progress(t)) => last = t,
            other => panic!("{other:?}"),
        }
    }
    let frame = timeout(PATIENCE, session.media.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(frame.mid == "0" || frame.mid == "1");
    assert_eq!(session.media.delivery(), Delivery::Frames);
    assert!(publisher.packets_sent() > 10);
    let tracks: Vec<_> = session
        .media
        .tracks()
        .iter()
        .map(|t| {
            (
                t.mid.as_str(),
                t.kind,
                t.codecs[0].name.as_str(),
                t.codecs[0].clock_rate,
            )
        })
        .collect();
    assert_eq!(
        tracks,
        [
            ("0", TrackKind::Video, "VP8", 90_000),
            ("1", TrackKind::Audio, "opus", 48_000)
        ]
    );
}

/// A viewer peer connected to a publisher peer that sends.
async fn connected(
    peers: &ReceivePeers,
) -> (
    NegotiatedMedia<WebRtcMedia>,
    PublisherPeer,
    watch::Sender<Feed>,
) {
    let offer = peers.create_offer(&[]).await.unwrap();
    let (feed_tx, feed) = watch::channel(Feed {
        sending: true,
        ..Feed::default()
    });
    let (publisher, answer) = PublisherPeer::answer(offer.sdp(), LOOPBACK, feed).unwrap();
    let session = offer.accept(&answer).await.unwrap();
    (session, publisher, feed_tx)
}

async fn next_progress(session: &mut NegotiatedMedia<WebRtcMedia>) -> Duration {
    match timeout(PATIENCE, session.events.next()).await.unwrap() {
        Some(MediaEvent::Progress(t)) => t,
        other => panic!("not progress: {other:?}"),
    }
}

#[tokio::test]
async fn progress_ticks_come_once_per_period_not_once_per_packet() {
    let (mut session, _publisher, _feed) = connected(&peers()).await;
    let first = next_progress(&mut session).await;
    let mut ticks = 0;
    let mut last = first;
    while last < first + Duration::from_secs(1) {
        last = next_progress(&mut session).await;
        ticks += 1;
    }
    // One second of media is 30 video and 50 audio packets, at most ~10 ticks of 100 ms.
    assert!(
        (5..=15).contains(&ticks),
        "{ticks} ticks for a second of media"
    );
    let mut frames = 0;
    while session.media.try_recv().is_some() {
        frames += 1;
    }
    assert!(frames > 2 * ticks, "{frames} frames, {ticks} ticks");
}

#[tokio::test]
async fn video_starts_at_a_keyframe_that_the_viewer_asked_for() {
    let (mut session, _publisher, _feed) = connected(&peers()).await;
    let first_video = loop {
        let frame = timeout(PATIENCE, session.media.recv())
            .await
            .unwrap()
            .unwrap();
        if frame.kind == TrackKind::Video {
            break frame;
        }
        assert_eq!(frame.codec, MediaCodec::Opus);
    };
    assert!(first_video.keyframe, "{first_video:?}");
    assert_eq!(first_video.codec, MediaCodec::Vp8);
    assert!(!first_video.discontinuity, "the viewer's first session");
    assert!(
        session.media.keyframe_requests() >= 1,
        "a keyframe is requested at the first video packet: {:?}",
        session.media
    );
    // Presentation time strictly increases per track from there on.
    let mut last = [None; 2];
    for _ in 0..40 {
        let frame = timeout(PATIENCE, session.media.recv())
            .await
            .unwrap()
            .unwrap();
        let track = usize::from(frame.kind == TrackKind::Audio);
        if let Some(previous) = last[track] {
            assert!(frame.pts > previous, "{frame:?} after {previous:?}");
        }
        last[track] = Some(frame.pts);
    }
}

#[tokio::test]
async fn rtp_delivery_hands_out_packets_and_no_frames() {
    let (mut session, _publisher, _feed) = connected(&peers().rtp_packets()).await;
    assert_eq!(session.media.delivery(), Delivery::RtpPackets);
    let packet = timeout(PATIENCE, session.media.recv_rtp())
        .await
        .unwrap()
        .unwrap();
    assert!(packet.mid == "0" || packet.mid == "1");
    assert_eq!(
        session.media.recv().await,
        None,
        "no frames in RTP delivery"
    );
    next_progress(&mut session).await;
}

#[tokio::test]
async fn an_application_that_does_not_read_loses_the_oldest_frames_not_the_progress() {
    let peers = peers().queue_capacity(8);
    let (mut session, _publisher, _feed) = connected(&peers).await;
    let first = next_progress(&mut session).await;
    while next_progress(&mut session).await < first + Duration::from_millis(500) {}
    assert!(session.media.dropped() > 0, "{:?}", session.media);
    let kept = std::iter::from_fn(|| session.media.try_recv()).count();
    assert_eq!(kept, 8);
}

#[tokio::test]
async fn dropping_the_session_events_ends_the_peer_task_and_frees_its_socket() {
    let peers = peers();
    let (session, publisher, _feed) = connected(&peers).await;
    assert_eq!(peers.live_peers(), 1);
    let NegotiatedMedia { mut media, events } = session;
    drop(events);
    // The queue ends once the task is gone: no sleeping, just the end of the stream.
    while timeout(PATIENCE, media.recv()).await.unwrap().is_some() {}
    assert!(media.is_closed());
    assert_eq!(peers.live_peers(), 0);
    std::net::UdpSocket::bind(media.local_addr()).expect("the peer's port is free again");
    drop(publisher);
}

#[tokio::test]
async fn a_publisher_that_closes_its_peer_ends_the_session_as_lost() {
    let (mut session, publisher, _feed) = connected(&peers()).await;
    next_progress(&mut session).await;
    drop(publisher);
    loop {
        match timeout(PATIENCE, session.events.next()).await.unwrap() {
            Some(MediaEvent::Progress(_)) => continue,
            Some(MediaEvent::Lost(why)) => {
                assert!(why.contains("closed"), "{why}");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_peer_bound_on_0_0_0_0_takes_its_host_candidate_from_the_route_to_the_answer() {
    let peers = ReceivePeers::new().progress_every(crate::TICK);
    let (mut session, _publisher, _feed) = connected(&peers).await;
    assert!(
        session.media.local_addr().ip().is_loopback(),
        "{:?}",
        session.media
    );
    next_progress(&mut session).await;
}
