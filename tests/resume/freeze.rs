//! A silent freeze (RTP stops, signaling and connections stay up) that only a new session
//! cures: make-before-break opens the new session beside the frozen one, long before the
//! frozen one's grace runs out, and the new one carries the picture.

use std::time::Duration;

use relive::webrtc::WebRtcMedia;
use relive::{Event, Policy, Reason, StallCause, State, StreamSource};
use tokio::time::{Instant, timeout};

use crate::support::{PATIENCE, Watch};
use crate::{CAM, whep};
use relive::testkit::millicast::MillicastServer;

const STALL_AFTER: Duration = Duration::from_millis(600);

/// Media watched, a 30 s grace: a new session within it can only be make-before-break.
fn watching() -> Policy {
    Policy::builder()
        .stall_after(STALL_AFTER)
        .first_media_within(Duration::from_secs(3))
        .stall_grace(Duration::from_secs(30))
        .reconnect_spread(Duration::from_millis(300))
        .build()
        .unwrap()
}

/// Waits for the next media packet on the session in `media` or a newer one; returns the
/// number of the session it came on (1-based, counting from `sessions`).
async fn next_packet<S>(
    w: &mut Watch<S>,
    media: &mut Option<S::Media>,
    as_webrtc: impl Fn(&mut S::Media) -> &mut WebRtcMedia,
) -> usize
where
    S: StreamSource,
    S::Media: std::fmt::Debug,
{
    let wait = async {
        loop {
            let packet = async {
                match media.as_mut() {
                    Some(m) => as_webrtc(m).recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(_) = packet => return w.sessions,
                event = futures::StreamExt::next(&mut w.viewer) => match event {
                    Some(Event::Session(m)) => {
                        w.sessions += 1;
                        *media = Some(m);
                    }
                    Some(Event::State { to, reason, .. }) => w.states.push((to, reason)),
                    Some(_) => {}
                    None => panic!("viewer ended"),
                },
            }
        }
    };
    timeout(PATIENCE, wait)
        .await
        .expect("media within the patience")
}

/// Reads frames until media time has advanced by `d`: the viewer has seen the picture move,
/// so a freeze is a stall after `stall_after` (not `first_media_within`).
pub(crate) async fn play_for(media: &mut WebRtcMedia, d: Duration) {
    let wait = async {
        let first = media.recv().await.expect("a frame").pts;
        while let Some(frame) = media.recv().await {
            if frame.pts >= first + d {
                return;
            }
        }
        panic!("the session ended");
    };
    timeout(PATIENCE, wait).await.expect("media plays");
}

pub(crate) fn drain(media: &mut Option<WebRtcMedia>) {
    if let Some(m) = media.as_mut() {
        while m.try_recv().is_some() {}
    }
}

#[tokio::test]
async fn a_silent_freeze_gets_a_new_picture_from_a_session_made_beside_the_frozen_one() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = whep(&server, watching());
    let mut media = None;
    assert_eq!(next_packet(&mut w, &mut media, |m| m).await, 1);
    play_for(media.as_mut().unwrap(), Duration::from_millis(500)).await;
    server.freeze_sessions(CAM);
    let frozen_at = Instant::now();
    drain(&mut media);
    // Packets already in flight may still come on the frozen session: wait for the new one.
    let mut on = next_packet(&mut w, &mut media, |m| m).await;
    while on == 1 {
        on = next_packet(&mut w, &mut media, |m| m).await;
    }
    let new_picture = frozen_at.elapsed();
    assert_eq!(on, 2, "{:?}", w.states);
    // Causal bound: not before the picture stood still for `stall_after` (less a tick).
    assert!(new_picture >= STALL_AFTER - Duration::from_millis(100));
    // The new session replaced the frozen one straight from the stall: no drop, no backoff.
    let path: Vec<_> = w.states.iter().map(|(s, r)| (s.name(), *r)).collect();
    assert!(
        path.windows(2).any(|p| p
            == [
                ("stalled", Reason::Stall(StallCause::NoProgress)),
                ("playing", Reason::Connected)
            ]),
        "{path:?}"
    );
    let stall = w
        .states
        .iter()
        .position(|(s, _)| matches!(s, State::Stalled { .. }))
        .unwrap();
    assert!(
        !w.states[stall..]
            .iter()
            .any(|(s, _)| matches!(s, State::Backoff { .. } | State::Connecting { .. })),
        "{path:?}"
    );
    assert_eq!(server.whep_requests(), 2);
    // The frozen session's resource is deleted once it was replaced.
    server
        .wait_whep_sessions(CAM, 1, PATIENCE)
        .await
        .expect("the frozen session deleted");
}

#[tokio::test]
async fn a_silent_freeze_of_a_millicast_session_gets_a_new_picture_the_same_way() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let peers = relive::webrtc::ReceivePeers::new()
        .bind_ip(crate::LOOPBACK)
        .progress_every(Duration::from_millis(100));
    let source = relive::millicast::MillicastSource::new(server.account_id(), CAM)
        .director_url(server.director_url())
        .offer_provider(peers);
    let mut w = Watch::new(relive::Reconnector::new(source, watching()).seed(5).spawn());
    let mut media = None;
    assert_eq!(next_packet(&mut w, &mut media, millicast_media).await, 1);
    play_for(
        &mut media.as_mut().unwrap().media,
        Duration::from_millis(500),
    )
    .await;
    server.freeze_sessions(CAM);
    let frozen_at = Instant::now();
    let mut on = next_packet(&mut w, &mut media, millicast_media).await;
    while on == 1 {
        on = next_packet(&mut w, &mut media, millicast_media).await;
    }
    let path: Vec<_> = w.states.iter().map(|(s, r)| (s.name(), *r)).collect();
    assert!(frozen_at.elapsed() >= STALL_AFTER - Duration::from_millis(100));
    assert!(
        path.windows(2).any(|p| p
            == [
                ("stalled", Reason::Stall(StallCause::NoProgress)),
                ("playing", Reason::Connected)
            ]),
        "{path:?}"
    );
    assert_eq!(server.view_requests(), 2);
}

fn millicast_media(m: &mut relive::millicast::MillicastMedia<WebRtcMedia>) -> &mut WebRtcMedia {
    &mut m.media
}
