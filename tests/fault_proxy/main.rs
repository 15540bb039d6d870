//! `FaultProxy` in front of a real echo server on 127.0.0.1.
#![cfg(feature = "testkit")]
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use relive::testkit::proxy::FaultProxy;
use support::PATIENCE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

/// An echo server; the watch counts the connections it accepted.
async fn echo_server() -> (SocketAddr, watch::Receiver<usize>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, accepted_rx) = watch::channel(0);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepted.send_modify(|n| *n += 1);
            tokio::spawn(async move {
                let (mut read, mut write) = stream.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    (addr, accepted_rx)
}

async fn proxied() -> (FaultProxy, watch::Receiver<usize>) {
    let (upstream, accepted) = echo_server().await;
    (FaultProxy::start(upstream).await.unwrap(), accepted)
}

async fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    timeout(PATIENCE, stream.read_exact(&mut buf))
        .await
        .expect("read timed out")
        .unwrap();
    buf
}

async fn round_trip(stream: &mut TcpStream, data: &[u8]) {
    stream.write_all(data).await.unwrap();
    assert_eq!(read_n(stream, data.len()).await, data);
}

/// Reads until the connection ends; true for an orderly EOF or a reset.
async fn closes(stream: &mut TcpStream) -> bool {
    let mut buf = [0; 64];
    loop {
        match timeout(PATIENCE, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Nothing has arrived for `stream` yet (a non-blocking look, no waiting).
fn nothing_to_read(stream: &TcpStream) -> bool {
    let mut buf = [0; 64];
    matches!(stream.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test]
async fn forwards_bytes_both_ways_and_counts_connections() {
    let (proxy, _) = proxied().await;
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut a, b"hello").await;
    round_trip(&mut b, &[7; 100_000]).await;
    assert_eq!(proxy.connections(), 2);
    drop(a);
    proxy.wait_connections(1, PATIENCE).await.unwrap();
}

#[tokio::test]
async fn half_close_reaches_the_upstream() {
    let (proxy, _) = proxied().await;
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    client.write_all(b"bye").await.unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(read_n(&mut client, 3).await, b"bye");
    assert!(
        closes(&mut client).await,
        "echo side did not close after our FIN"
    );
}

#[tokio::test]
async fn cut_closes_current_connections_and_new_ones_still_work() {
    let (proxy, _) = proxied().await;
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut client, b"before").await;
    proxy.cut();
    assert!(
        closes(&mut client).await,
        "cut did not close the client side"
    );
    assert_eq!(proxy.connections(), 0);
    let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut again, b"after").await;
}

#[tokio::test]
async fn blackhole_holds_bytes_until_cleared() {
    let (proxy, _) = proxied().await;
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut client, b"warm").await;
    proxy.blackhole(true);
    client.write_all(b"held").await.unwrap();
    // The proxy holds the four bytes: they cannot have crossed.
    let held = proxy.wait_held(|h| h.bytes == 4, PATIENCE).await.unwrap();
    assert_eq!(held.bytes, 4, "bytes crossed a blackhole");
    assert!(nothing_to_read(&client), "bytes crossed a blackhole");
    assert_eq!(proxy.connections(), 1, "a blackhole keeps connections open");
    proxy.blackhole(false);
    assert_eq!(read_n(&mut client, 4).await, b"held");
}

#[tokio::test]
async fn blackhole_accepts_new_connections_but_never_connects_them() {
    let (proxy, mut accepted) = proxied().await;
    proxy.blackhole(true);
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.wait_connections(1, PATIENCE).await.unwrap();
    client.write_all(b"knock").await.unwrap();
    // Parked before its upstream connect: the upstream cannot have seen it.
    proxy
        .wait_held(|h| h.connects == 1, PATIENCE)
        .await
        .unwrap();
    assert!(nothing_to_read(&client));
    assert_eq!(
        *accepted.borrow(),
        0,
        "upstream saw a blackholed connection"
    );
    proxy.blackhole(false);
    assert_eq!(read_n(&mut client, 5).await, b"knock");
    timeout(PATIENCE, accepted.wait_for(|&n| n == 1))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn delay_adds_latency_to_each_chunk() {
    let (proxy, _) = proxied().await;
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut client, b"fast").await;
    proxy.delay(Duration::from_millis(150));
    let start = Instant::now();
    round_trip(&mut client, b"slow").await;
    // Two hops of 150 ms each; assert only the loose lower bound.
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
    proxy.delay(Duration::ZERO);
    round_trip(&mut client, b"fast again").await;
}

#[tokio::test]
async fn inject_garbage_reaches_the_client_between_chunks() {
    let (proxy, _) = proxied().await;
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut client, b"clean").await;
    proxy.inject_garbage(b"\xff\x00garbage");
    assert_eq!(read_n(&mut client, 9).await, b"\xff\x00garbage");
    round_trip(&mut client, b"still echoes").await;
}

#[tokio::test]
async fn refuse_closes_new_connections_at_once() {
    let (proxy, mut accepted) = proxied().await;
    proxy.refuse(true);
    let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(
        closes(&mut refused).await,
        "a refused connection stayed open"
    );
    assert_eq!(proxy.connections(), 0);
    assert_eq!(*accepted.borrow_and_update(), 0);
    proxy.refuse(false);
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut client, b"welcome").await;
}

#[tokio::test]
async fn shutdown_closes_every_connection() {
    let (proxy, _) = proxied().await;
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut client, b"x").await;
    proxy.shutdown();
    assert!(closes(&mut client).await);
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_proxy() {
    let (proxy, _) = proxied().await;
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut client, b"x").await;
    let clone = proxy.clone();
    drop(proxy);
    round_trip(&mut client, b"still up while a clone lives").await;
    drop(clone);
    assert!(closes(&mut client).await);
}
