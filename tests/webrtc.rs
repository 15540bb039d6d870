//! The WebRTC peer, Millicast with media and WHEP against the testkit server, over real UDP and
//! TCP sockets on 127.0.0.1.
#![allow(clippy::unwrap_used)] // test helpers fail loudly, like the tests
#![cfg(all(feature = "webrtc", feature = "testkit"))]

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures::StreamExt;
use relive::millicast::{MediaEvent, OfferProvider, PendingOffer};
use relive::testkit::publisher::{Feed, PublisherPeer};
use relive::webrtc::ReceivePeers;
use support::PATIENCE;
use tokio::sync::watch;
use tokio::time::timeout;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn a_peer_receives_rtp_and_ticks_progress_from_its_timestamps() {
    let peers = ReceivePeers::new().bind_ip(LOOPBACK);
    let offer = peers.create_offer(&[]).await.unwrap();
    let (_feed_tx, feed) = watch::channel(Feed {
        sending: true,
        blackhole: false,
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
    let packet = timeout(PATIENCE, session.media.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(packet.mid == "0" || packet.mid == "1");
    assert!(publisher.packets_sent() > 10);
    let kinds: Vec<_> = session
        .media
        .tracks()
        .iter()
        .map(|t| (t.mid.clone(), t.codecs.len()))
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
}
