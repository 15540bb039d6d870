//! The relay over real sockets on 127.0.0.1: each test starts its own `RelayServer` and talks to
//! it with the crate's clients or with a raw WebSocket that can misbehave.
#![cfg(feature = "relay")]
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use relive::relay::protocol::{ServerFrame, parse_server_frame};
use relive::relay::{
    CloseReason, Details, ErrorCode, RelayClient, RelayConfig, RelayEvent, RelayPublisher,
    RelayServer, StreamName,
};
use support::{PATIENCE, cam, details};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

mod accept;
mod director;
mod flows;
mod limits;
mod metrics;
mod resume;
mod security;

const TOKEN: &str = "cam-token";

/// A relay on a free port; publishers of `cam-*` need [`TOKEN`].
fn config() -> RelayConfig {
    let mut config = RelayConfig::default().publish_token("cam-*", TOKEN);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config
}

async fn start(config: RelayConfig) -> RelayServer {
    RelayServer::start(config).await.unwrap()
}

/// A viewer client of `stream`, past its `Connected` and first `Snapshot`.
async fn viewer(relay: &RelayServer, stream: &StreamName) -> (RelayClient, Option<Details>) {
    let mut client = RelayClient::builder(relay.url())
        .stream(stream.clone())
        .spawn();
    next_event(&mut client, "connected", |e| {
        matches!(e, RelayEvent::Connected { .. })
    })
    .await;
    match next_event(&mut client, "snapshot", |e| {
        matches!(e, RelayEvent::Snapshot { .. })
    })
    .await
    {
        RelayEvent::Snapshot { details, .. } => (client, details),
        _ => unreachable!(),
    }
}

/// The next event matching `f`; panics with what came instead after [`PATIENCE`].
async fn next_event(
    client: &mut RelayClient,
    what: &str,
    f: impl Fn(&RelayEvent) -> bool,
) -> RelayEvent {
    support::next_relay_event(client, what, PATIENCE, f).await
}

/// A raw WebSocket to the relay, for frames the crate's clients never send.
struct Raw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Raw {
    async fn connect(relay: &RelayServer) -> Raw {
        let (ws, _) = tokio_tungstenite::connect_async(relay.url()).await.unwrap();
        Raw { ws }
    }

    async fn viewer(relay: &RelayServer) -> Raw {
        let mut raw = Raw::connect(relay).await;
        raw.send(r#"{"type":"hello","v":1,"role":"viewer"}"#).await;
        assert!(matches!(raw.frame().await, ServerFrame::Welcome { .. }));
        raw
    }

    async fn publisher(relay: &RelayServer, token: &str) -> Raw {
        let mut raw = Raw::connect(relay).await;
        let hello = format!(r#"{{"type":"hello","v":1,"role":"publisher","token":"{token}"}}"#);
        raw.send(&hello).await;
        assert!(matches!(raw.frame().await, ServerFrame::Welcome { .. }));
        raw
    }

    async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// The next server frame (pings and pongs skipped); panics on close or after [`PATIENCE`].
    async fn frame(&mut self) -> ServerFrame {
        match self.next().await {
            Ok(frame) => frame,
            Err(end) => panic!("no frame: {end}"),
        }
    }

    /// The next server frame, or how the socket ended.
    async fn next(&mut self) -> Result<ServerFrame, String> {
        loop {
            let message = timeout(PATIENCE, self.ws.next()).await;
            match message {
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Ok(parse_server_frame(text.as_str()).unwrap());
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Err(format!("close {:?}", frame.map(|f| u16::from(f.code))));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(error))) => return Err(format!("error {error}")),
                Ok(None) => return Err("end".to_owned()),
                Err(_) => panic!("nothing from the relay within {PATIENCE:?}"),
            }
        }
    }

    /// Expects an `error` frame with `code`; returns whether it was fatal.
    async fn error(&mut self, code: ErrorCode) -> bool {
        match self.frame().await {
            ServerFrame::Error {
                code: got, fatal, ..
            } if got == code => fatal,
            other => panic!("expected error {code:?}, got {other:?}"),
        }
    }

    /// A ping answered by a pong: the connection still works.
    async fn alive(&mut self) {
        self.send(r#"{"type":"ping","id":42}"#).await;
        assert_eq!(self.frame().await, ServerFrame::Pong { id: Some(42) });
    }
}
