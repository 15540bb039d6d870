//! A publisher that goes silent (socket open, no pongs, nothing sent) is lost within two
//! keepalive periods: its viewers get `close` with `publisher_lost`, long before the idle timeout.

use relive::relay::CloseReason;

use super::*;

#[tokio::test]
async fn a_silent_publishers_viewers_get_close_within_two_keepalives() {
    // Keepalive 200 ms: lost after 400 ms of silence. The idle timeout stays at its 45 s
    // default, so a close inside PATIENCE (15 s) can only be the keepalive's doing (the exact
    // bound is proven on virtual time in src/relay/core/tests/keepalive.rs).
    let relay = Relay::start(&["--keepalive-ms", "200"], None).await;
    let mut publisher = publisher_from(&relay, ip(2)).await;
    send(
        &mut publisher,
        r#"{"type":"publish","stream":"cam-1","details":{}}"#,
    )
    .await;
    let mut viewer = viewer_from(&relay, ip(3), None).await.unwrap();
    send(&mut viewer, &view("cam-1")).await;
    assert!(matches!(
        frame(&mut viewer).await,
        ServerFrame::Snapshot { live: true, .. }
    ));
    // From now on the publisher reads nothing, so it never answers a ping: silent.
    let silent_since = tokio::time::Instant::now();
    let close = loop {
        match frame(&mut viewer).await {
            ServerFrame::Close { stream, reason } => break (stream, reason),
            ServerFrame::Pong { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(close.0.as_str(), "cam-1");
    assert_eq!(close.1, CloseReason::PublisherLost);
    eprintln!(
        "publisher silent for {:?} before its viewer got close (2 × keepalive = 400 ms)",
        silent_since.elapsed()
    );
    // The viewer stays connected and answers: only the stream ended.
    let mut alive = viewer;
    send(&mut alive, r#"{"type":"ping","id":1}"#).await;
    assert_eq!(frame(&mut alive).await, ServerFrame::Pong { id: Some(1) });
    drop(publisher);
}
