//! The attack suite: the real `relive-relay` binary as a child process on 127.0.0.1, attacked
//! as an unauthenticated client would, each case bounded in count and in time (every wait is
//! [`PATIENCE`] at most: a hang fails, a fast run passes; no assertion on how long anything took).
//!
//! `cargo test --all-features --test relay_attack`
#![cfg(feature = "relay")]
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod caps;
mod exhaustion;
mod keepalive;

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;

use futures::{SinkExt, StreamExt};
use relive::relay::protocol::{ServerFrame, parse_server_frame};
use support::PATIENCE;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const TOKEN: &str = "cam-token";

/// A `relive-relay` child process; killed when dropped.
struct Relay {
    child: Child,
    addr: SocketAddr,
}

impl Relay {
    /// Starts the binary with `args` (after `--listen 127.0.0.1:0` and a `cam-*` token), with
    /// at most `nofile` open files when given.
    async fn start(args: &[&str], nofile: Option<u32>) -> Relay {
        let bin = env!("CARGO_BIN_EXE_relive-relay");
        let mut command = match nofile {
            // The shell lowers its own limit, then becomes the relay.
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(bin);
                sh
            }
            None => Command::new(bin),
        };
        let token = format!("cam-*={TOKEN}");
        command
            .args(["--listen", "127.0.0.1:0", "--publish-token", &token])
            .args(["--log", "warn"])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("RELIVE_RELAY_PUBLISH_TOKENS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("relive-relay starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = timeout(PATIENCE, lines.next_line())
            .await
            .expect("relive-relay says where it listens")
            .unwrap()
            .expect("a line");
        let url = line
            .strip_prefix("relive-relay listening on ws://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let addr = url.trim_end_matches("/ws").parse().unwrap();
        Relay { child, addr }
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `GET path` over a fresh connection: the status line's code and the body.
    async fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        timeout(PATIENCE, stream.read_to_end(&mut response))
            .await
            .expect("an answer")
            .unwrap();
        let response = String::from_utf8(response).unwrap();
        let status = response
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    async fn health(&self) -> serde_json::Value {
        let (status, body) = self.get("/healthz").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The value of the `/metrics` sample `series` (`name` or `name{labels}`); 0 when absent.
    async fn metric(&self, series: &str) -> f64 {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200, "{body}");
        sample(&body, series)
    }
}

/// The value of `series` in a Prometheus text `body`; 0 when absent.
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A TCP connection to `relay` from the loopback address `from` (127.0.0.0/8 is all loopback).
async fn tcp_from(relay: &Relay, from: IpAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(relay.addr).await.unwrap()
}

/// A WebSocket to `relay` from `from`, with `X-Forwarded-For: xff` when given; `Err` with the
/// refusal's text (an HTTP status) when the upgrade is refused.
async fn ws_from(relay: &Relay, from: IpAddr, xff: Option<&str>) -> Result<Ws, String> {
    let mut request = relay.url().into_client_request().unwrap();
    if let Some(xff) = xff {
        request
            .headers_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
    }
    let tcp = tcp_from(relay, from).await;
    match timeout(
        PATIENCE,
        tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp)),
    )
    .await
    {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => panic!("no upgrade answer within {PATIENCE:?}"),
    }
}

async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}

/// The next server frame (pings skipped), or how the socket ended.
async fn next(ws: &mut Ws) -> Result<ServerFrame, String> {
    loop {
        match timeout(PATIENCE, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                return Ok(parse_server_frame(text.as_str()).unwrap());
            }
            Ok(Some(Ok(Message::Close(frame)))) => return Err(format!("close {frame:?}")),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(error))) => return Err(format!("error {error}")),
            Ok(None) => return Err("end".to_owned()),
            Err(_) => panic!("nothing from the relay within {PATIENCE:?}"),
        }
    }
}

async fn frame(ws: &mut Ws) -> ServerFrame {
    next(ws).await.unwrap()
}

/// A viewer WebSocket from `from`, past its `welcome`.
async fn viewer_from(relay: &Relay, from: IpAddr, xff: Option<&str>) -> Result<Ws, String> {
    let mut ws = ws_from(relay, from, xff).await?;
    send(&mut ws, r#"{"type":"hello","v":1,"role":"viewer"}"#).await;
    assert!(matches!(frame(&mut ws).await, ServerFrame::Welcome { .. }));
    Ok(ws)
}

/// A publisher WebSocket from `from`, past its `welcome`.
async fn publisher_from(relay: &Relay, from: IpAddr) -> Ws {
    let mut ws = ws_from(relay, from, None).await.unwrap();
    let hello = format!(r#"{{"type":"hello","v":1,"role":"publisher","token":"{TOKEN}"}}"#);
    send(&mut ws, &hello).await;
    assert!(matches!(frame(&mut ws).await, ServerFrame::Welcome { .. }));
    ws
}

fn ip(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

fn view(stream: &str) -> String {
    format!(r#"{{"type":"view","stream":"{stream}"}}"#)
}
