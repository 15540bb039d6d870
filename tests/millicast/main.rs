//! MillicastSource + Reconnector against the testkit Millicast-protocol server,
//! over real sockets on 127.0.0.1: one test per situation of the protocol.
#![allow(clippy::unwrap_used)] // test helpers fail loudly, like the tests
#![cfg(all(feature = "millicast", feature = "testkit"))]

#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use relive::millicast::wire::DirectorFailure;
use relive::millicast::{MillicastError, MillicastSource};
use relive::testkit::millicast::{DirectorFault, MillicastServer};
use relive::{Event, GiveUpReason, Policy, Reason, Reconnector, Retry, StallCause, State};
use support::{PATIENCE, Watch};

const CAM: &str = "cam";

fn policy() -> Policy {
    Policy::builder()
        .backoff(Duration::from_millis(50), 2.0, Duration::from_millis(400))
        .stall_grace(Duration::from_millis(300))
        .connect_timeout(Duration::from_secs(5))
        // Signaling only: no media progress here; the media tests are elsewhere.
        .progress_watchdog(false)
        .build()
        .expect("a valid policy")
}

fn source(server: &MillicastServer) -> MillicastSource {
    MillicastSource::new(server.account_id(), CAM)
        .director_url(server.director_url())
        .request_timeout(Duration::from_secs(2))
        .keepalive(Duration::from_millis(200), Duration::from_millis(400))
}

fn watch(source: MillicastSource) -> Watch<MillicastSource> {
    Watch::new(Reconnector::new(source, policy()).seed(7).spawn())
}

fn is_backoff_for_publisher(s: &State) -> bool {
    matches!(
        s,
        State::Backoff {
            waiting_for_publisher: true,
            ..
        }
    )
}

#[tokio::test]
async fn a_viewer_that_arrives_first_plays_once_the_publisher_is_live() {
    let server = MillicastServer::start().await.unwrap();
    let mut w = watch(source(&server));
    w.until_state("waiting for the publisher", is_backoff_for_publisher)
        .await;
    assert!(
        w.errors.iter().any(|e| e.contains("not published")),
        "{}",
        w.dump()
    );
    server.publish(CAM);
    w.until_playing().await;
    server.wait_viewers(CAM, 1, PATIENCE).await.unwrap();
    assert_eq!(w.sessions, 1);
}

#[tokio::test]
async fn a_publisher_that_stops_stalls_the_viewer_then_it_resumes_on_return() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = watch(source(&server));
    w.until_playing().await;
    server.unpublish(CAM);
    let reason = w
        .until_state("stalled", |s| matches!(s, State::Stalled { .. }))
        .await;
    assert_eq!(reason, Reason::Stall(StallCause::Inactive));
    server.stop(CAM);
    let reason = w
        .until_state("stopped", |s| matches!(s, State::Stalled { .. }))
        .await;
    assert_eq!(reason, Reason::Stall(StallCause::StreamEnded));
    // The grace runs out; reconnects find nobody publishing.
    w.until_state("waiting for the publisher", is_backoff_for_publisher)
        .await;
    server.publish(CAM);
    w.until_playing().await;
    assert_eq!(w.sessions, 2, "{}", w.dump());
}

#[tokio::test]
async fn a_publisher_back_within_the_grace_keeps_the_session() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let policy = Policy::builder()
        .stall_grace(Duration::from_secs(30))
        .progress_watchdog(false)
        .build()
        .unwrap();
    let mut w = Watch::new(Reconnector::new(source(&server), policy).spawn());
    w.until_playing().await;
    server.unpublish(CAM);
    w.until_state("stalled", |s| matches!(s, State::Stalled { .. }))
        .await;
    server.publish(CAM);
    assert_eq!(w.until_playing().await, Reason::PublisherActive);
    assert_eq!(server.view_requests(), 1);
}

#[tokio::test]
async fn layers_without_an_active_layer_stall_until_they_come_back() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let policy = Policy::builder()
        .stall_grace(Duration::from_secs(30))
        .progress_watchdog(false)
        .build()
        .unwrap();
    let mut w = Watch::new(Reconnector::new(source(&server), policy).spawn());
    w.until_playing().await;
    server.send_layers(CAM, 0);
    let reason = w
        .until_state("stalled", |s| matches!(s, State::Stalled { .. }))
        .await;
    assert_eq!(reason, Reason::Stall(StallCause::NoLayers));
    server.send_layers(CAM, 2);
    assert_eq!(w.until_playing().await, Reason::LayersBack);
    assert_eq!(server.view_requests(), 1, "the same session heals");
}

#[tokio::test]
async fn layers_that_stay_empty_past_the_grace_reconnect() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = watch(source(&server));
    w.until_playing().await;
    server.send_layers(CAM, 0);
    w.until_state("stalled", |s| matches!(s, State::Stalled { .. }))
        .await;
    let reason = w
        .until_state("reconnecting", |s| !matches!(s, State::Stalled { .. }))
        .await;
    assert!(
        matches!(reason, Reason::GraceExpired(StallCause::NoLayers)),
        "{reason:?}\n{}",
        w.dump()
    );
    w.until_playing().await;
    assert_eq!(w.sessions, 2);
}

#[tokio::test]
async fn a_socket_closed_by_the_server_reconnects() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = watch(source(&server));
    w.until_playing().await;
    server.close_all_sockets();
    let reason = w.until_state("reconnecting", |s| !s.is_playing()).await;
    assert_eq!(reason, Reason::TransportLost(Retry::Later));
    w.until_playing().await;
    assert_eq!(server.view_requests(), 2);
    assert!(
        w.errors.iter().any(|e| e.contains("closed")),
        "{}",
        w.dump()
    );
}

#[tokio::test]
async fn a_socket_killed_without_a_close_frame_reconnects() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = watch(source(&server));
    w.until_playing().await;
    server.cut_all_sockets();
    w.until_state("reconnecting", |s| !s.is_playing()).await;
    w.until_playing().await;
    assert_eq!(w.sessions, 2);
}

#[tokio::test]
async fn a_server_that_stops_answering_pings_is_a_lost_transport() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = watch(source(&server));
    w.until_playing().await;
    server.ignore_pings(true);
    w.until_state("reconnecting", |s| !s.is_playing()).await;
    assert!(w.errors.iter().any(|e| e.contains("pong")), "{}", w.dump());
    server.ignore_pings(false);
    w.until_playing().await;
}

#[tokio::test]
async fn a_director_500_is_retried_until_it_answers() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    server.set_director_fault_for(DirectorFault::ServerError, 2);
    let mut w = watch(source(&server));
    w.until_playing().await;
    assert_eq!(server.director_requests(), 3);
    assert_eq!(w.errors.len(), 2, "{}", w.dump());
}

#[tokio::test]
async fn html_and_empty_director_errors_are_retried() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    server.set_director_fault_for(DirectorFault::Html, 1);
    let mut w = watch(source(&server));
    w.until(" an error", |e| matches!(e, Event::Error(_))).await;
    server.set_director_fault_for(DirectorFault::Empty, 1);
    w.until_playing().await;
    assert!(server.director_requests() >= 2);
}

#[tokio::test]
async fn a_refused_token_without_a_refresher_gives_up() {
    let server = MillicastServer::builder()
        .secure_token("good")
        .start()
        .await
        .unwrap();
    server.publish(CAM);
    let mut w = watch(source(&server).token("expired"));
    let event = w.until("give-up", |e| matches!(e, Event::GaveUp(_))).await;
    assert!(matches!(event, Event::GaveUp(GiveUpReason::Fatal)));
    assert_eq!(w.viewer.state(), State::Idle);
    assert_eq!(server.director_requests(), 1, "given up after one attempt");
    // A barrier instead of a quiet period: the user starts the viewer again. A retry of the
    // viewer's own would be a transition out of Idle before the one our start causes, and one
    // more Director request than the two attempts we account for.
    w.viewer.start();
    let reason = w.until_state("connecting again", |s| !s.is_idle()).await;
    assert_eq!(reason, Reason::Started, "{}", w.dump());
    let event = w.until("give-up", |e| matches!(e, Event::GaveUp(_))).await;
    assert!(matches!(event, Event::GaveUp(GiveUpReason::Fatal)));
    assert_eq!(
        server.director_requests(),
        2,
        "a fatal error is not retried: {}",
        w.dump()
    );
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once_and_the_viewer_plays() {
    let server = MillicastServer::builder()
        .secure_token("good")
        .start()
        .await
        .unwrap();
    server.publish(CAM);
    let refreshes = Arc::new(AtomicU32::new(0));
    let counter = refreshes.clone();
    let source = source(&server).token("expired").token_refresher(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Some("good".to_owned()) }
    });
    let mut w = watch(source);
    w.until_playing().await;
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
    // The fresh token is kept for the next attempts.
    server.close_all_sockets();
    w.until_state("reconnecting", |s| !s.is_playing()).await;
    w.until_playing().await;
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refresher_without_a_token_gives_up() {
    let server = MillicastServer::builder()
        .secure_token("good")
        .start()
        .await
        .unwrap();
    server.publish(CAM);
    let source = source(&server)
        .token("expired")
        .token_refresher(|| async { None });
    let mut w = watch(source);
    w.until("give-up", |e| {
        matches!(e, Event::GaveUp(GiveUpReason::Fatal))
    })
    .await;
}

#[tokio::test]
async fn a_view_rejected_with_feed_not_found_waits_for_the_publisher() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    server.reject_view(true);
    let mut w = watch(source(&server));
    w.until_state("waiting for the publisher", is_backoff_for_publisher)
        .await;
    assert!(
        w.errors.iter().any(|e| e.contains("Feed not found")),
        "{}",
        w.dump()
    );
    server.reject_view(false);
    w.until_playing().await;
}

#[tokio::test]
async fn migrate_opens_the_new_session_before_closing_the_old() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = watch(source(&server));
    w.until_playing().await;
    server.migrate(CAM);
    w.until("the migrated session", |e| matches!(e, Event::Session(_)))
        .await;
    assert_eq!(w.sessions, 2);
    assert!(w.viewer.state().is_playing(), "no gap: {}", w.dump());
    assert!(
        w.states.iter().filter(|(s, _)| !s.is_playing()).count() == 1,
        "only the initial Connecting: {}",
        w.dump()
    );
    // The old socket closes once the new one is up.
    server.wait_viewers(CAM, 1, PATIENCE).await.unwrap();
    assert_eq!(server.view_requests(), 2);
}

#[tokio::test]
async fn garbage_frames_are_ignored_and_the_session_carries_on() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = watch(source(&server));
    w.until_playing().await;
    for garbage in [
        "not json at all",
        "{}",
        r#"{"type":"event"}"#,
        r#"{"type":"event","name":"layers","data":"garbage"}"#,
        r#"{"type":"event","name":"brand-new-event","data":{"x":1}}"#,
        r#"{"type":"response","transId":99,"data":{}}"#,
        r#"{"type":"mystery"}"#,
    ] {
        server.send_raw(CAM, garbage);
    }
    server.send_viewercount(CAM, 7);
    let event = w
        .until("viewer count", |e| matches!(e, Event::ViewerCount(_)))
        .await;
    assert!(matches!(event, Event::ViewerCount(7)));
    assert!(w.viewer.state().is_playing());
    assert_eq!(w.sessions, 1);
}

#[tokio::test]
async fn an_oversized_frame_ends_the_session_with_a_typed_error_and_it_reconnects() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let mut w = watch(source(&server).max_frame(64 * 1024));
    w.until_playing().await;
    server.send_oversized(CAM, 256 * 1024);
    let event = w.until("an error", |e| matches!(e, Event::Error(_))).await;
    assert!(
        matches!(event, Event::Error(MillicastError::FrameTooLarge(_))),
        "{event:?}"
    );
    w.until_playing().await;
}

#[tokio::test]
async fn stop_while_the_director_hangs_returns_and_stays_idle() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    server.set_director_fault(Some(DirectorFault::Hang));
    let source = source(&server).request_timeout(Duration::from_secs(60));
    let mut w = Watch::new(Reconnector::new(source, policy()).spawn());
    server.wait_director_requests(1, PATIENCE).await.unwrap();
    tokio::time::timeout(PATIENCE, w.viewer.stop())
        .await
        .expect("stop returns");
    assert_eq!(w.viewer.state(), State::Idle);
    // Releasing the hang answers the abandoned request, if anything still waits for it.
    server.set_director_fault(None);
    // A barrier instead of a quiet period: start again and play. The abandoned attempt was
    // released before this one was even asked for, so had it lived on, it would have viewed
    // first: a second view request, a second session, or a state change before our start.
    w.viewer.start();
    w.until_playing().await;
    server.wait_viewers(CAM, 1, PATIENCE).await.unwrap();
    let states: Vec<_> = w.states.iter().map(|(s, r)| (s.name(), *r)).collect();
    assert_eq!(
        states,
        [
            ("connecting", Reason::Started),
            ("idle", Reason::UserStopped),
            ("connecting", Reason::Started),
            ("playing", Reason::Connected),
        ],
        "stayed idle until started again: {}",
        w.dump()
    );
    assert_eq!(server.director_requests(), 2);
    assert_eq!(
        server.view_requests(),
        1,
        "the stopped attempt never viewed"
    );
    assert_eq!(w.sessions, 1);
}

#[tokio::test]
async fn a_director_that_hangs_past_the_request_timeout_is_retried() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    server.set_director_fault_for(DirectorFault::Hang, 1);
    let source = source(&server).request_timeout(Duration::from_millis(300));
    let mut w = watch(source);
    let event = w.until("an error", |e| matches!(e, Event::Error(_))).await;
    let Event::Error(MillicastError::DirectorRequest(net)) = &event else {
        panic!("{event:?}");
    };
    assert_eq!(net.kind(), relive::NetErrorKind::Timeout, "{net}");
    w.until_playing().await;
}

#[tokio::test]
async fn a_refused_director_connection_says_so_and_chains_its_cause() {
    use std::error::Error as _;
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let source = MillicastSource::new("acct", CAM).director_url(format!("http://127.0.0.1:{port}"));
    let mut w = watch(source);
    let event = w.until("an error", |e| matches!(e, Event::Error(_))).await;
    let Event::Error(error) = &event else {
        unreachable!()
    };
    let MillicastError::DirectorRequest(net) = error else {
        panic!("{error:?}");
    };
    assert_eq!(net.kind(), relive::NetErrorKind::Connect);
    let text = error.to_string().to_lowercase();
    assert!(text.contains("refused"), "the cause is named: {text}");
    // The chain goes down to the client library's error, with no URL in it.
    let mut depth = 0;
    let mut cause = error.source();
    while let Some(e) = cause {
        assert!(!e.to_string().contains("127.0.0.1"), "a URL in {e}");
        depth += 1;
        cause = e.source();
    }
    assert!(depth >= 2, "{error:?}");
}

#[tokio::test]
async fn a_wrong_account_waits_as_not_published() {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let source = MillicastSource::new("nobody", CAM).director_url(server.director_url());
    let mut w = watch(source);
    let event = w.until("an error", |e| matches!(e, Event::Error(_))).await;
    assert!(
        matches!(
            event,
            Event::Error(MillicastError::Director(
                DirectorFailure::NotPublished { .. }
            ))
        ),
        "{event:?}"
    );
}
