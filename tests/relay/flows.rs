//! Publishers and viewers meeting: early and late viewers, updates, closes, lost publishers,
//! take-overs and shutdown.

use super::*;
use relive::BackoffConfig;

#[tokio::test]
async fn a_viewer_that_joins_first_gets_the_details_the_moment_the_publisher_publishes() {
    let relay = start(config()).await;
    let (mut v, now) = viewer(&relay, &cam(1)).await;
    assert_eq!(now, None, "not live yet");
    let publisher = RelayPublisher::connect(&relay.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(1), &details("live")).await.unwrap();
    match next_event(&mut v, "publish", |e| {
        matches!(e, RelayEvent::Publish { .. })
    })
    .await
    {
        RelayEvent::Publish { stream, details: d } => {
            assert_eq!(stream, cam(1));
            assert_eq!(d, details("live"));
        }
        _ => unreachable!(),
    }
    publisher
        .publish(&cam(1), &details("intermission"))
        .await
        .unwrap();
    let update = next_event(&mut v, "update", |e| matches!(e, RelayEvent::Update { .. })).await;
    assert!(
        matches!(update, RelayEvent::Update { details: d, .. } if d == details("intermission"))
    );
}

#[tokio::test]
async fn a_late_viewer_gets_the_current_details_at_once() {
    let relay = start(config()).await;
    let publisher = RelayPublisher::connect(&relay.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(1), &details("first")).await.unwrap();
    publisher
        .publish(&cam(1), &details("current"))
        .await
        .unwrap();
    // Sent after the publishes on the same socket: once it is answered, they were applied.
    publisher
        .send(relive::relay::protocol::ClientFrame::Ping { id: Some(1) })
        .await
        .unwrap();
    let mut publisher = publisher;
    assert_eq!(
        publisher.next_frame().await,
        Some(ServerFrame::Pong { id: Some(1) })
    );
    let (_v, now) = viewer(&relay, &cam(1)).await;
    assert_eq!(now, Some(details("current")));
    assert_eq!(relay.health().broker.live, 1);
}

#[tokio::test]
async fn a_publisher_that_disconnects_closes_the_stream_for_every_viewer() {
    let relay = start(config()).await;
    let (mut a, _) = viewer(&relay, &cam(1)).await;
    let (mut b, _) = viewer(&relay, &cam(1)).await;
    let publisher = RelayPublisher::connect(&relay.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(1), &details("x")).await.unwrap();
    next_event(&mut a, "publish", |e| e.live_stream().is_some()).await;
    next_event(&mut b, "publish", |e| e.live_stream().is_some()).await;
    publisher.disconnect().await;
    for v in [&mut a, &mut b] {
        let close = next_event(v, "close", |e| matches!(e, RelayEvent::Close { .. })).await;
        assert!(matches!(
            close,
            RelayEvent::Close {
                reason: CloseReason::PublisherLost,
                ..
            }
        ));
    }
    assert_eq!(relay.health().broker.live, 0);
}

#[tokio::test]
async fn an_explicit_close_tells_viewers_unpublished() {
    let relay = start(config()).await;
    let (mut v, _) = viewer(&relay, &cam(2)).await;
    let publisher = RelayPublisher::connect(&relay.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(2), &details("x")).await.unwrap();
    publisher.close(&cam(2)).await.unwrap();
    let close = next_event(&mut v, "close", |e| matches!(e, RelayEvent::Close { .. })).await;
    assert!(matches!(
        close,
        RelayEvent::Close {
            reason: CloseReason::Unpublished,
            ..
        }
    ));
}

#[tokio::test]
async fn a_publisher_that_goes_silent_is_lost_after_two_keepalives() {
    let mut config = config();
    config.limits.keepalive_ms = 100;
    // Far beyond PATIENCE: only the publisher's two-keepalive rule can close it in time.
    config.limits.idle_timeout_ms = 600_000;
    let relay = start(config).await;
    let (mut v, _) = viewer(&relay, &cam(1)).await;
    // A raw publisher that never reads again: the relay's pings go unanswered.
    let mut silent = Raw::publisher(&relay, TOKEN).await;
    silent
        .send(r#"{"type":"publish","stream":"cam-1","details":{}}"#)
        .await;
    next_event(&mut v, "publish", |e| e.live_stream().is_some()).await;
    let close = next_event(&mut v, "close", |e| matches!(e, RelayEvent::Close { .. })).await;
    assert!(matches!(
        close,
        RelayEvent::Close {
            reason: CloseReason::PublisherLost,
            ..
        }
    ));
    // The viewer answered the same pings all along, and is still there.
    assert_eq!(relay.health().viewers, 1);
    assert!(silent.error(ErrorCode::IdleTimeout).await, "fatal");
}

#[tokio::test]
async fn a_second_publisher_takes_over_and_the_first_is_told() {
    let relay = start(config()).await;
    let (mut v, _) = viewer(&relay, &cam(1)).await;
    let mut old = RelayPublisher::connect(&relay.url(), TOKEN).await.unwrap();
    old.publish(&cam(1), &details("old")).await.unwrap();
    next_event(&mut v, "publish", |e| e.live_stream().is_some()).await;
    let new = RelayPublisher::connect(&relay.url(), TOKEN).await.unwrap();
    new.publish(&cam(1), &details("new")).await.unwrap();
    let again = next_event(&mut v, "publish", |e| e.live_stream().is_some()).await;
    assert!(matches!(again, RelayEvent::Publish { details: d, .. } if d == details("new")));
    let told = old.next_frame().await.unwrap();
    assert!(
        matches!(
            told,
            ServerFrame::Error {
                code: ErrorCode::Replaced,
                ..
            }
        ),
        "{told:?}"
    );
    // The old publisher leaving does not close the stream it no longer holds.
    old.disconnect().await;
    new.close(&cam(1)).await.unwrap();
    let close = next_event(&mut v, "close", |e| matches!(e, RelayEvent::Close { .. })).await;
    assert!(matches!(
        close,
        RelayEvent::Close {
            reason: CloseReason::Unpublished,
            ..
        }
    ));
}

#[tokio::test]
async fn graceful_shutdown_tells_every_client_before_closing() {
    let mut config = config();
    config.limits.shutdown_grace_ms = 10 * PATIENCE.as_millis() as u64;
    let relay = start(config).await;
    let (mut client, _) = viewer(&relay, &cam(1)).await;
    let mut raw = Raw::viewer(&relay).await;
    let mut publisher = RelayPublisher::connect(&relay.url(), TOKEN).await.unwrap();
    let health = reqwest::get(format!("http://{}/healthz", relay.addr()))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["connections"], 3);
    assert_eq!(health["viewers"], 2);
    assert_eq!(health["publishers"], 1);
    assert_eq!(health["views"], 1);
    // The grace is far longer than any wait here: that shutdown returns at all means it did
    // not wait out the grace, but for the clients to close.
    timeout(PATIENCE, relay.shutdown())
        .await
        .expect("closed without waiting out the grace");
    assert!(matches!(raw.frame().await, ServerFrame::Shutdown { .. }));
    assert_eq!(raw.next().await, Err("close Some(1001)".to_owned()));
    assert!(matches!(
        publisher.next_frame().await,
        Some(ServerFrame::Shutdown { .. })
    ));
    next_event(&mut client, "shutdown", |e| {
        matches!(e, RelayEvent::Shutdown)
    })
    .await;
}

#[tokio::test]
async fn a_relay_client_reconnects_and_views_again_after_a_relay_restart() {
    let relay = start(config()).await;
    let addr = relay.addr();
    let mut client = RelayClient::builder(relay.url())
        .stream(cam(1))
        .backoff(
            BackoffConfig::builder()
                .initial(Duration::from_millis(20))
                .cap(Duration::from_millis(100))
                .build()
                .unwrap(),
        )
        .spawn();
    next_event(&mut client, "snapshot", |e| {
        matches!(e, RelayEvent::Snapshot { .. })
    })
    .await;
    relay.shutdown().await;
    next_event(&mut client, "shutdown", |e| {
        matches!(e, RelayEvent::Shutdown)
    })
    .await;
    next_event(&mut client, "disconnected", |e| {
        matches!(e, RelayEvent::Disconnected { .. })
    })
    .await;
    let mut config = config();
    config.listen = addr;
    let relay = start(config).await;
    next_event(&mut client, "connected again", |e| {
        matches!(e, RelayEvent::Connected { .. })
    })
    .await;
    next_event(&mut client, "a new snapshot", |e| {
        matches!(e, RelayEvent::Snapshot { .. })
    })
    .await;
    let publisher = RelayPublisher::connect(&relay.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(1), &details("again")).await.unwrap();
    next_event(&mut client, "publish", |e| e.live_stream().is_some()).await;
}
