//! MillicastSource through the fault-injecting proxy: the network misbehaves
//! between a real client and the testkit server, on 127.0.0.1.
#![allow(clippy::unwrap_used)] // test helpers fail loudly, like the tests
#![cfg(all(feature = "millicast", feature = "testkit"))]

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use relive::millicast::{MillicastError, MillicastSource};
use relive::testkit::millicast::MillicastServer;
use relive::testkit::proxy::FaultProxy;
use relive::{Event, Policy, Reconnector};
use support::Watch;

const CAM: &str = "cam";
const KEEPALIVE: Duration = Duration::from_millis(200);
const PONG_TIMEOUT: Duration = Duration::from_millis(500);
/// The slow path's latency per hop: well below [`PONG_TIMEOUT`].
const DELAY: Duration = Duration::from_millis(60);

/// A live stream behind a proxy; the Director answers with WebSocket URLs
/// through the proxy too (it builds them from the Host header).
async fn setup() -> (MillicastServer, FaultProxy, Watch<MillicastSource>) {
    let server = MillicastServer::start().await.unwrap();
    server.publish(CAM);
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let source = MillicastSource::new(server.account_id(), CAM)
        .director_url(format!("http://{}", proxy.addr()))
        .request_timeout(Duration::from_millis(500))
        .keepalive(KEEPALIVE, PONG_TIMEOUT);
    let policy = Policy::builder()
        .backoff(Duration::from_millis(50), 2.0, Duration::from_millis(400))
        .connect_timeout(Duration::from_secs(3))
        .progress_watchdog(false)
        .build()
        .expect("a valid policy");
    let w = Watch::new(Reconnector::new(source, policy).seed(11).spawn());
    (server, proxy, w)
}

#[tokio::test]
async fn a_black_holed_path_is_caught_by_the_missing_pong_and_recovers() {
    let (_server, proxy, mut w) = setup().await;
    w.until_playing().await;
    proxy.blackhole(true);
    let event = w.until("an error", |e| matches!(e, Event::Error(_))).await;
    assert!(
        matches!(event, Event::Error(MillicastError::PongTimeout(_))),
        "{event:?}\n{}",
        w.dump()
    );
    // Attempts time out while the path is dead...
    w.until("a failed attempt", |e| matches!(e, Event::Error(_)))
        .await;
    proxy.blackhole(false);
    // ...and the viewer plays again once it is back.
    w.until_playing().await;
}

#[tokio::test]
async fn garbage_bytes_on_the_wire_end_the_session_with_an_error_then_it_reconnects() {
    let (_server, proxy, mut w) = setup().await;
    w.until_playing().await;
    proxy.inject_garbage(&[0xFF; 64]);
    let event = w.until("an error", |e| matches!(e, Event::Error(_))).await;
    assert!(
        matches!(event, Event::Error(MillicastError::Transport(_))),
        "{event:?}"
    );
    w.until_playing().await;
    assert_eq!(w.sessions, 2);
}

#[tokio::test]
async fn a_cut_connection_reconnects() {
    let (server, proxy, mut w) = setup().await;
    w.until_playing().await;
    proxy.cut();
    w.until_state("reconnecting", |s| !s.is_playing()).await;
    w.until_playing().await;
    assert_eq!(server.view_requests(), 2);
}

#[tokio::test]
async fn a_refused_connection_is_retried_until_the_path_opens() {
    let (server, proxy, mut w) = setup().await;
    w.until_playing().await;
    proxy.refuse(true);
    proxy.cut();
    w.until("a refused attempt", |e| {
        matches!(e, Event::Error(MillicastError::DirectorRequest(_)))
    })
    .await;
    proxy.refuse(false);
    w.until_playing().await;
    assert!(server.director_requests() >= 2);
}

#[tokio::test]
async fn latency_below_the_pong_timeout_is_no_false_alarm() {
    let (server, proxy, mut w) = setup().await;
    proxy.delay(DELAY);
    w.until_playing().await;
    // Ten keepalive rounds on a slow path, their pong deadlines passed, counted by events rather
    // than slept: each viewer count is sent once the previous one arrived, and each crosses the
    // proxy's delay, so the last one arrives at least `ROUNDS * DELAY` after the first.
    const ROUNDS: u64 = (10 * KEEPALIVE.as_millis() + PONG_TIMEOUT.as_millis()) as u64
        / DELAY.as_millis() as u64
        + 1;
    let first = tokio::time::Instant::now();
    for n in 1..=ROUNDS {
        server.send_viewercount(CAM, n);
        let event = w
            .until("a viewer count", |e| matches!(e, Event::ViewerCount(_)))
            .await;
        assert!(
            matches!(event, Event::ViewerCount(c) if c == n),
            "{event:?}"
        );
    }
    // A lower bound, which the chain implies; it documents the time the rounds covered.
    assert!(first.elapsed() >= 10 * KEEPALIVE + PONG_TIMEOUT);
    // Every count came over the first session: no pong timeout cut it meanwhile.
    assert_eq!(w.sessions, 1, "{}", w.dump());
    assert!(w.errors.is_empty(), "{}", w.dump());
}
