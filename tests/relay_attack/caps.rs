//! Per-address caps: an unauthenticated stream-table fill from a few addresses cannot stop a
//! legitimate publisher, and an untrusted peer's `X-Forwarded-For` changes nothing.

use relive::relay::ErrorCode;

use super::*;

#[tokio::test]
async fn an_unauthenticated_stream_table_fill_does_not_stop_a_legitimate_publisher() {
    // Room for 100 streams; each address may view 30 (over all its connections).
    let relay = Relay::start(
        &[
            "--max-streams",
            "100",
            "--max-views",
            "16",
            "--max-views-per-client",
            "30",
        ],
        None,
    )
    .await;
    // Three attacking addresses, 4 connections each, 16 names each: made-up names (no rule
    // covers them) and names a rule covers.
    let mut attackers = Vec::new();
    let (mut viewed, mut capped, mut forbidden) = (0, 0, 0);
    for address in 2..5u8 {
        for connection in 0..4u32 {
            let mut ws = viewer_from(&relay, ip(address), None).await.unwrap();
            for n in 0..16u32 {
                let name = if n % 4 == 0 {
                    format!("made-up-{address}-{connection}-{n}")
                } else {
                    format!("cam-{address}-{connection}-{n}")
                };
                send(&mut ws, &view(&name)).await;
                match frame(&mut ws).await {
                    ServerFrame::Snapshot { .. } => viewed += 1,
                    ServerFrame::Error {
                        code: ErrorCode::ClientLimit,
                        ..
                    } => capped += 1,
                    ServerFrame::Error {
                        code: ErrorCode::Forbidden,
                        ..
                    } => forbidden += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
            attackers.push(ws);
        }
    }
    assert_eq!(viewed, 3 * 30, "each address got exactly its allowance");
    assert_eq!(forbidden, 3 * 4 * 4, "names no rule covers take nothing");
    assert_eq!(capped, 3 * 4 * 16 - viewed - forbidden);
    let health = relay.health().await;
    assert_eq!(health["streams"], 90, "{health}");
    // The publisher still gets its stream in, and a viewer sees it.
    let mut publisher = publisher_from(&relay, ip(9)).await;
    send(
        &mut publisher,
        r#"{"type":"publish","stream":"cam-live","details":{}}"#,
    )
    .await;
    let mut watcher = viewer_from(&relay, ip(10), None).await.unwrap();
    send(&mut watcher, &view("cam-live")).await;
    assert!(
        matches!(
            frame(&mut watcher).await,
            ServerFrame::Snapshot { live: true, .. }
        ),
        "the legitimate stream is live"
    );
    assert_eq!(
        relay
            .metric(r#"relay_refusals_total{code="client_limit"}"#)
            .await,
        f64::from(capped)
    );
    // The attackers leave: every entry they made goes.
    drop(attackers);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while relay.health().await["streams"] != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "streams not forgotten"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        relay.health().await["client_addresses"],
        2,
        "the publisher's and the watcher's"
    );
}

#[tokio::test]
async fn per_address_connection_caps_hold_and_x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let relay = Relay::start(&["--max-connections-per-client", "3"], None).await;
    let mut open = Vec::new();
    for n in 0..3 {
        // Each claims to be someone else: the relay trusts no proxy, so all count as 127.0.0.2.
        let xff = format!("198.51.100.{n}");
        open.push(ws_from(&relay, ip(2), Some(&xff)).await.unwrap());
    }
    let refused = ws_from(&relay, ip(2), Some("198.51.100.99"))
        .await
        .err()
        .unwrap();
    assert!(refused.contains("429"), "{refused}");
    assert!(
        ws_from(&relay, ip(3), None).await.is_ok(),
        "another address has its own cap"
    );
    assert_eq!(relay.metric("relay_client_limited_total").await, 1.0);
    // One closes: its address may connect again.
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match ws_from(&relay, ip(2), None).await {
            Ok(_) => break,
            Err(error) => assert!(
                tokio::time::Instant::now() < deadline,
                "the freed connection never came back: {error}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_cap() {
    let relay = Relay::start(
        &[
            "--max-connections-per-client",
            "2",
            "--trusted-proxy",
            "127.0.0.2",
        ],
        None,
    )
    .await;
    let mut open = Vec::new();
    for n in 0..4 {
        // Two clients behind the proxy (the left-most entry is forged, never read).
        let xff = format!("6.6.6.6, 198.51.100.{}", n % 2);
        open.push(ws_from(&relay, ip(2), Some(&xff)).await.unwrap());
    }
    let refused = ws_from(&relay, ip(2), Some("198.51.100.1"))
        .await
        .err()
        .unwrap();
    assert!(refused.contains("429"), "{refused}");
    open.push(ws_from(&relay, ip(2), Some("198.51.100.2")).await.unwrap());
    // A malformed header counts the proxy itself (logged), which has its own cap.
    open.push(
        ws_from(&relay, ip(2), Some("not-an-address"))
            .await
            .unwrap(),
    );
    open.push(ws_from(&relay, ip(2), Some("garbage")).await.unwrap());
    let third = ws_from(&relay, ip(2), Some("garbage")).await.err().unwrap();
    assert!(third.contains("429"), "{third}");
    let health = relay.health().await;
    assert_eq!(health["client_addresses"], 4, "{health}");
    assert_eq!(health["client_limited"], 2, "{health}");
}
