//! In-session repair of a WHEP session: a cut media path (the viewer's network changed under
//! it) is healed by an ICE restart — a `PATCH` of the same resource — and the picture comes
//! back on the same session and timeline; a server without ICE restart (405) gets a new
//! session instead, and is not asked again.

use std::time::Duration;

use relive::testkit::millicast::MillicastServer;
use relive::webrtc::{WebRtcMedia, WhepSource};
use relive::{Event, Policy, Reason, State};
use tokio::time::timeout;

use crate::freeze::{drain, play_for};
use crate::support::{PATIENCE, Watch};
use crate::{CAM, whep};

/// Media watched; a 30 s grace, so a new session can only come from an escalation; a repair
/// bound generous for a loaded machine.
fn repairing() -> Policy {
    Policy::builder()
        .stall_after(Duration::from_millis(600))
        .first_media_within(Duration::from_secs(3))
        .stall_grace(Duration::from_secs(30))
        .reconnect_spread(Duration::from_millis(200))
        .repair_within(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// The next session's media.
async fn next_session(w: &mut Watch<WhepSource>) -> WebRtcMedia {
    match w
        .until("a session", |e| matches!(e, Event::Session(_)))
        .await
    {
        Event::Session(media) => media,
        _ => unreachable!(),
    }
}

/// The next frame of `media`, within the patience.
async fn next_frame(media: &mut WebRtcMedia) -> relive::webrtc::MediaFrame {
    timeout(PATIENCE, media.recv())
        .await
        .expect("a frame within the patience")
        .expect("the session goes on")
}

#[tokio::test]
async fn a_cut_media_path_is_repaired_by_an_ice_restart_on_the_same_resource() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = whep(&server, repairing());
    let mut media = next_session(&mut w).await;
    play_for(&mut media, Duration::from_millis(500)).await;
    let before = next_frame(&mut media).await;
    assert_eq!(server.cut_media_paths(CAM), 1);
    let mut held = Some(media);
    drain(&mut held);
    let mut media = held.unwrap();
    w.until_state("stalled", |s| matches!(s, State::Stalled { .. }))
        .await;
    let reason = w.until_state("playing again", State::is_playing).await;
    assert_eq!(reason, Reason::Repaired, "{}", w.dump());
    // The picture is back on the same session, further along its timeline.
    let mut after = next_frame(&mut media).await;
    while after.pts <= before.pts {
        after = next_frame(&mut media).await;
    }
    assert_eq!(after.session, before.session);
    assert_eq!(w.sessions, 1, "{}", w.dump());
    assert_eq!(server.whep_requests(), 1, "no new POST");
    assert_eq!(server.whep_patches(), 1, "one ICE restart");
    assert_eq!(server.whep_deletes(), 0, "the resource stays");
    assert_eq!(server.whep_sessions(CAM), 1);
    // Connecting, playing, stalled (the missing media), playing again: no new connect.
    let path: Vec<_> = w.states.iter().map(|(s, r)| (s.name(), *r)).collect();
    assert_eq!(
        path,
        [
            ("connecting", Reason::Started),
            ("playing", Reason::Connected),
            ("stalled", Reason::Stall(relive::StallCause::NoProgress)),
            ("playing", Reason::Repaired),
        ],
        "{}",
        w.dump()
    );
}

#[tokio::test]
async fn a_server_without_ice_restart_gets_a_new_session_and_is_not_asked_again() {
    let server = MillicastServer::start().await.unwrap();
    server.refuse_whep_patch(Some(405));
    server.publish(CAM);
    let mut w = whep(&server, repairing());
    let mut media = next_session(&mut w).await;
    play_for(&mut media, Duration::from_millis(300)).await;
    server.cut_media_paths(CAM);
    // The refused PATCH escalates at once to a new session (POST 2).
    let mut media = next_session(&mut w).await;
    play_for(&mut media, Duration::from_millis(300)).await;
    assert_eq!(server.whep_patches(), 1, "{}", w.dump());
    assert_eq!(server.whep_requests(), 2);
    assert!(
        w.errors
            .iter()
            .any(|e| e.contains("no ICE restart (HTTP 405)")),
        "{:?}",
        w.errors
    );
    server
        .wait_whep_sessions(CAM, 1, PATIENCE)
        .await
        .expect("the cut session deleted");
    // The next cut goes straight to a new session: the endpoint is not asked again.
    server.cut_media_paths(CAM);
    let mut media = next_session(&mut w).await;
    play_for(&mut media, Duration::from_millis(300)).await;
    assert_eq!(server.whep_patches(), 1, "{}", w.dump());
    assert_eq!(server.whep_requests(), 3);
}
