//! WhepSource against the testkit server's WHEP endpoint.

use std::time::Duration;

use relive::testkit::millicast::MillicastServer;
use relive::webrtc::{WebRtcMedia, WhepSource};
use relive::{Event, GiveUpReason, Reconnector, State};

use crate::support::{PATIENCE, Watch};
use crate::{CAM, peers, policy, until_media};

fn source(server: &MillicastServer) -> WhepSource {
    WhepSource::new(server.whep_url(CAM))
        .peers(peers())
        .request_timeout(Duration::from_secs(2))
}

fn watch(source: WhepSource) -> Watch<WhepSource> {
    Watch::new(
        Reconnector::new(source, policy(Duration::from_millis(300)))
            .seed(3)
            .spawn(),
    )
}

fn webrtc(media: &mut WebRtcMedia) -> &mut WebRtcMedia {
    media
}

#[tokio::test]
async fn whep_waits_for_the_publisher_then_plays() {
    let server = MillicastServer::start().await.unwrap();
    let mut w = watch(source(&server));
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
    assert!(w.errors.iter().any(|e| e.contains("409")), "{}", w.dump());
    server.publish(CAM);
    until_media(&mut w, webrtc).await;
    assert_eq!(server.whep_sessions(CAM), 1);
}

#[tokio::test]
async fn whep_deletes_its_resource_when_the_viewer_stops() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = watch(source(&server));
    until_media(&mut w, webrtc).await;
    assert_eq!(server.whep_deletes(), 0);
    w.viewer.stop().await;
    server.wait_whep_sessions(CAM, 0, PATIENCE).await.unwrap();
    assert_eq!(server.whep_deletes(), 1);
}

#[tokio::test]
async fn whep_reconnects_after_the_publisher_stops_and_deletes_the_old_session() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = watch(source(&server));
    until_media(&mut w, webrtc).await;
    // No event channel in WHEP: the stop shows as media time standing still.
    server.unpublish(CAM);
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
    assert_eq!(server.whep_sessions(CAM), 1, "{}", w.dump());
    assert!(server.whep_deletes() >= 1);
}

#[tokio::test]
async fn whep_with_a_refused_token_gives_up() {
    let server = MillicastServer::builder()
        .secure_token("right")
        .start()
        .await
        .unwrap();
    server.publish(CAM);
    let mut w = watch(source(&server).token("wrong"));
    let event = w.until("gave up", |e| matches!(e, Event::GaveUp(_))).await;
    assert!(
        matches!(event, Event::GaveUp(GiveUpReason::Fatal)),
        "{event:?}"
    );
    assert!(w.errors.iter().any(|e| e.contains("401")), "{}", w.dump());
    assert!(
        !w.dump().contains("wrong"),
        "the token never shows: {}",
        w.dump()
    );
}
