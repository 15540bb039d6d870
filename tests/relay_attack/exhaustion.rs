//! TCP-level exhaustion: connections that never send a request are closed by the header
//! timeout and counted; at the open-file limit `/healthz` still answers (idle connections are
//! shed) and a normal viewer is served once capacity frees.

use super::*;

/// Reads from `stream` until the relay closes it; panics after `PATIENCE`.
async fn until_closed(mut stream: TcpStream) {
    let mut buf = [0u8; 256];
    loop {
        match timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
            Err(_) => panic!("connection still open after {PATIENCE:?}"),
        }
    }
}

#[tokio::test]
async fn a_thousand_idle_tcp_connections_are_closed_by_the_header_timeout_and_counted() {
    let relay = Relay::start(&["--header-timeout-ms", "500"], None).await;
    let mut idle = Vec::new();
    for n in 0..1000u32 {
        // Spread over a few source addresses (one loopback address has ~28 000 ports).
        let mut stream = tcp_from(&relay, ip(2 + (n % 4) as u8)).await;
        if n % 3 == 0 {
            // Some start a request and never finish it (slowloris).
            stream
                .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        idle.push(tokio::spawn(until_closed(stream)));
    }
    // Meanwhile a viewer is served.
    let mut viewer = viewer_from(&relay, ip(9), None).await.unwrap();
    for closed in futures::future::join_all(idle).await {
        closed.unwrap();
    }
    let timeouts = relay.metric("relay_header_timeouts_total").await;
    assert!(timeouts >= 1000.0, "{timeouts} header timeouts counted");
    assert_eq!(relay.metric("relay_accept_errors_total").await, 0.0);
    assert_eq!(
        relay.metric("relay_connections").await,
        1.0,
        "only the viewer"
    );
    send(&mut viewer, r#"{"type":"ping","id":7}"#).await;
    assert_eq!(frame(&mut viewer).await, ServerFrame::Pong { id: Some(7) });
}

#[tokio::test]
async fn at_the_open_file_limit_healthz_answers_and_a_viewer_is_served_once_capacity_frees() {
    // 64 descriptors; idle connections would hold them for the whole (long) header timeout:
    // only shedding lets anyone else in before it.
    let relay = Relay::start(&["--header-timeout-ms", "60000"], Some(64)).await;
    let mut idle = Vec::new();
    for n in 0..120u32 {
        // The kernel completes these handshakes whether or not the relay can accept them.
        idle.push(tcp_from(&relay, ip(2 + (n % 2) as u8)).await);
    }
    // The relay is out of descriptors: it logs, backs off, and sheds idle sockets.
    let health = relay.health().await;
    assert_eq!(health["status"], "ok", "{health}");
    assert!(health["accept_errors"].as_u64().unwrap() > 0, "{health}");
    assert!(health["shed"].as_u64().unwrap() > 0, "{health}");
    // A normal viewer gets in and is served.
    let mut viewer = viewer_from(&relay, ip(9), None).await.unwrap();
    send(&mut viewer, &view("cam-1")).await;
    assert!(matches!(
        frame(&mut viewer).await,
        ServerFrame::Snapshot { live: false, .. }
    ));
    let mut publisher = publisher_from(&relay, ip(9)).await;
    send(
        &mut publisher,
        r#"{"type":"publish","stream":"cam-1","details":{}}"#,
    )
    .await;
    assert!(matches!(
        frame(&mut viewer).await,
        ServerFrame::Publish { .. }
    ));
    assert!(relay.metric("relay_shed_total").await > 0.0);
    drop(idle);
}
