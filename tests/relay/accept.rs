//! Accepted TCP connections: the header timeout closes and counts those that never complete a
//! request, while upgraded WebSockets are served.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Reads until the server closes (0 bytes or an error); panics after [`PATIENCE`].
async fn until_closed(mut stream: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection still open after {PATIENCE:?}"),
        }
    }
}

/// `GET /healthz` over a fresh connection, as JSON.
async fn healthz(relay: &RelayServer) -> serde_json::Value {
    let mut stream = TcpStream::connect(relay.addr()).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let response = String::from_utf8(until_closed(stream).await).unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn idle_connections_are_closed_and_counted_while_viewers_are_served() {
    let mut config = config();
    config.limits.header_timeout_ms = 300;
    let relay = start(config).await;
    let (mut before, _) = viewer(&relay, &cam(1)).await;
    let mut idle = Vec::new();
    for n in 0..200 {
        let mut stream = TcpStream::connect(relay.addr()).await.unwrap();
        if n % 2 == 1 {
            stream.write_all(b"GET /ws HTT").await.unwrap();
        }
        idle.push(tokio::spawn(until_closed(stream)));
    }
    let (mut during, _) = viewer(&relay, &cam(1)).await;
    for closed in futures::future::join_all(idle).await {
        assert!(closed.unwrap().is_empty(), "nothing answered to no request");
    }
    let health = healthz(&relay).await;
    assert!(
        health["header_timeouts"].as_u64().unwrap() >= 200,
        "{health}"
    );
    assert_eq!(health["accept_errors"], 0, "{health}");
    // Upgraded before and during: still served, past the header timeout.
    let publisher = RelayPublisher::connect(&relay.url(), TOKEN).await.unwrap();
    publisher.publish(&cam(1), &details("x")).await.unwrap();
    next_event(&mut before, "publish", |e| e.live_stream().is_some()).await;
    next_event(&mut during, "publish", |e| e.live_stream().is_some()).await;
    // And after.
    let (_after, live) = viewer(&relay, &cam(1)).await;
    assert!(live.is_some(), "a new viewer sees the live stream");
}

#[tokio::test]
async fn a_keep_alive_connection_gets_its_answer_then_the_same_limit_for_the_next() {
    let mut config = config();
    config.limits.header_timeout_ms = 300;
    let relay = start(config).await;
    let mut stream = TcpStream::connect(relay.addr()).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        .await
        .unwrap();
    let answered = String::from_utf8(until_closed(stream).await).unwrap();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    let health = healthz(&relay).await;
    assert_eq!(health["header_timeouts"], 1, "{health}");
}
