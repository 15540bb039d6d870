//! Bounds: malformed and oversized frames, the rate limit, slow consumers.

use super::*;

#[tokio::test]
async fn malformed_and_oversized_frames_are_refused_and_everyone_else_is_served() {
    let mut config = config();
    config.limits.max_frame = 4096;
    let relay = start(config).await;
    let (mut watcher, _) = viewer(&relay, &cam(1)).await;
    let mut raw = Raw::viewer(&relay).await;
    let refused = [
        ("not json", ErrorCode::Malformed),
        ("{\"type\":\"view\"", ErrorCode::Malformed),
        (r#"{"type":"launch"}"#, ErrorCode::UnknownType),
        (
            r#"{"type":"view","stream":"cam 1"}"#,
            ErrorCode::InvalidStream,
        ),
        (
            r#"{"type":"hello","v":1,"role":"viewer"}"#,
            ErrorCode::DuplicateHello,
        ),
    ];
    for (text, code) in refused {
        raw.send(text).await;
        assert!(!raw.error(code).await, "{text} is not fatal");
    }
    raw.ws.send(Message::binary(vec![0u8; 16])).await.unwrap();
    assert!(!raw.error(ErrorCode::Malformed).await);
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(5000));
    raw.send(&big).await;
    assert!(
        !raw.error(ErrorCode::TooLarge).await,
        "over max_frame: refused, not closed"
    );
    raw.alive().await;
    // Beyond 4 × max_frame the WebSocket layer stops reading: told, then closed (1009).
    raw.send(&"y".repeat(20_000)).await;
    assert!(raw.error(ErrorCode::TooLarge).await);
    assert_eq!(raw.next().await, Err("close Some(1009)".to_owned()));
    // Meanwhile the relay serves the others.
    let publisher = RelayPublisher::connect(&relay.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(1), &details("x")).await.unwrap();
    next_event(&mut watcher, "publish", |e| e.live_stream().is_some()).await;
}

#[tokio::test]
async fn frames_before_hello_and_unknown_versions_are_refused() {
    let relay = start(config()).await;
    let mut raw = Raw::connect(&relay).await;
    raw.send(r#"{"type":"view","stream":"cam-1"}"#).await;
    assert!(!raw.error(ErrorCode::HelloRequired).await);
    raw.alive().await;
    raw.send(r#"{"type":"hello","v":2,"role":"viewer"}"#).await;
    assert!(raw.error(ErrorCode::UnsupportedVersion).await);
    assert_eq!(raw.next().await, Err("close Some(1008)".to_owned()));
}

#[tokio::test]
async fn the_rate_limit_refuses_a_flood_then_closes_it() {
    let mut config = config();
    config.limits.burst = 5;
    config.limits.rate_per_sec = 0.5;
    let relay = start(config).await;
    let mut raw = Raw::connect(&relay).await;
    for id in 0..20 {
        raw.send(&format!(r#"{{"type":"ping","id":{id}}}"#)).await;
    }
    let (mut pongs, mut limited, mut fatal) = (0, 0, false);
    while let Ok(frame) = raw.next().await {
        match frame {
            ServerFrame::Pong { .. } => pongs += 1,
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                fatal: f,
                ..
            } => {
                limited += 1;
                fatal |= f;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pongs, 5, "the burst passes");
    assert_eq!(limited, 6, "five refusals, then the sixth closes");
    assert!(fatal);
    assert_eq!(relay.health().refused.get("rate_limited"), Some(&6));
}

#[tokio::test]
async fn a_slow_viewer_is_dropped_while_the_others_keep_receiving() {
    let mut config = config();
    config.limits.queue = 4;
    config.limits.burst = 100_000;
    config.limits.rate_per_sec = 100_000.0;
    let relay = start(config).await;
    // A viewer that stops reading, with a tiny receive buffer so that TCP fills fast.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(relay.addr()).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(relay.url(), MaybeTlsStream::Plain(tcp))
        .await
        .unwrap();
    slow.send(Message::text(r#"{"type":"hello","v":1,"role":"viewer"}"#))
        .await
        .unwrap();
    slow.send(Message::text(r#"{"type":"view","stream":"cam-1"}"#))
        .await
        .unwrap();
    let (mut fast, _) = viewer(&relay, &cam(1)).await;
    assert_eq!(relay.health().broker.views, 2);
    let publisher = RelayPublisher::connect(&relay.url(), TOKEN).await.unwrap();
    let padding = "p".repeat(12_000);
    let mut sent = 0;
    // In lock step with the fast viewer, so that only the slow one falls behind.
    while relay.health().broker.views == 2 {
        assert!(sent < 5_000, "the slow viewer was never dropped");
        let mut d = details(&padding);
        d.source_ids = vec![sent.to_string()];
        publisher.publish(&cam(1), &d).await.unwrap();
        let got = next_event(&mut fast, "update", |e| {
            matches!(e, RelayEvent::Publish { .. } | RelayEvent::Update { .. })
        })
        .await;
        assert!(
            matches!(got, RelayEvent::Publish { details, .. } | RelayEvent::Update { details, .. }
            if details.source_ids == [sent.to_string()])
        );
        sent += 1;
    }
    // The fast viewer still gets every update.
    publisher.publish(&cam(1), &details("after")).await.unwrap();
    let after = next_event(&mut fast, "update", |e| {
        matches!(e, RelayEvent::Update { .. })
    })
    .await;
    assert!(matches!(after, RelayEvent::Update { details: d, .. } if d == details("after")));
    // The slow one, once it reads, finds what was buffered, then why it was dropped, then the
    // close.
    let last = timeout(PATIENCE, async {
        let mut last = None;
        while let Some(Ok(message)) = slow.next().await {
            if let Message::Text(text) = message {
                last = Some(parse_server_frame(text.as_str()).unwrap());
            }
        }
        last
    })
    .await
    .expect("the slow viewer's socket was closed");
    assert!(
        matches!(
            last,
            Some(ServerFrame::Error {
                code: ErrorCode::SlowConsumer,
                fatal: true,
                ..
            })
        ),
        "the last frame tells why: {last:?}"
    );
    assert_eq!(relay.health().slow_consumers, 1);
    assert_eq!(relay.health().viewers, 1);
}

#[tokio::test]
async fn a_full_relay_answers_503_counts_it_and_healthz_still_answers() {
    let mut config = config();
    config.limits.max_connections = 1;
    let relay = start(config).await;
    let _only = Raw::viewer(&relay).await;
    let refused = tokio_tungstenite::connect_async(relay.url()).await;
    assert!(refused.unwrap_err().to_string().contains("503"));
    let health = format!("http://{}/healthz", relay.addr());
    let health: serde_json::Value = reqwest::get(health).await.unwrap().json().await.unwrap();
    assert_eq!(health["unavailable"], 1, "{health}");
    assert_eq!(health["connections"], 1, "{health}");
}
