//! The clients' side of the socket: connect (with an optional `Origin`), say `hello`, wait for
//! `welcome`.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Secret;
use crate::relay::RelayError;
use crate::relay::error::{connect_failed, describe};
use crate::relay::protocol::{
    ClientFrame, PROTOCOL_VERSION, Role, ServerFrame, WireLimits, parse_server_frame,
};

/// A client WebSocket to the relay.
pub(crate) type ClientWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The largest frame a client accepts from the relay (a `snapshot` is well under it).
const MAX_SERVER_FRAME: usize = 256 * 1024;

/// Opens the socket and says `hello`; returns it with the `welcome`'s session and limits.
pub(crate) async fn open(
    url: &str,
    origin: Option<&str>,
    role: Role,
    token: Option<&Secret>,
    limit: Duration,
) -> Result<(ClientWs, u64, WireLimits), RelayError> {
    let handshake = async {
        let mut ws = connect(url, origin).await?;
        let hello = ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            role,
            token: token.cloned(),
        };
        ws.send(Message::text(hello.to_text()))
            .await
            .map_err(|e| RelayError::Transport(describe(&e)))?;
        let (session, limits) = welcome(&mut ws).await?;
        Ok((ws, session, limits))
    };
    timeout(limit, handshake)
        .await
        .map_err(|_| RelayError::Timeout(limit))?
}

async fn connect(url: &str, origin: Option<&str>) -> Result<ClientWs, RelayError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| RelayError::Connect(describe(&e)))?;
    if let Some(origin) = origin {
        let value = HeaderValue::from_str(origin)
            .map_err(|_| RelayError::Connect("invalid origin".to_owned()))?;
        request.headers_mut().insert("origin", value);
    }
    // Small buffers: a client mostly idles, and the 128 KiB defaults are per connection.
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_SERVER_FRAME))
        .max_frame_size(Some(MAX_SERVER_FRAME));
    let (ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), false)
        .await
        .map_err(|e| connect_failed(&e))?;
    Ok(ws)
}

async fn welcome(ws: &mut ClientWs) -> Result<(u64, WireLimits), RelayError> {
    loop {
        let message = match ws.next().await {
            Some(Ok(message)) => message,
            Some(Err(e)) => return Err(RelayError::Transport(describe(&e))),
            None => return Err(closed(None)),
        };
        match read(message)? {
            Some(ServerFrame::Welcome {
                session, limits, ..
            }) => return Ok((session, limits)),
            Some(ServerFrame::Error { code, message, .. }) => {
                return Err(RelayError::Refused { code, message });
            }
            _ => {}
        }
    }
}

/// What one incoming message means to a client: a frame, nothing, or the end.
pub(crate) fn read(message: Message) -> Result<Option<ServerFrame>, RelayError> {
    match message {
        Message::Text(text) => match parse_server_frame(text.as_str()) {
            Ok(frame) => Ok(Some(frame)),
            Err(error) => {
                // A newer server may send frames this client does not know.
                tracing::debug!(%error, "ignored a relay frame");
                Ok(None)
            }
        },
        Message::Close(frame) => Err(closed(
            frame.map(|f| (u16::from(f.code), f.reason.to_string())),
        )),
        Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(None),
    }
}

pub(crate) fn closed(frame: Option<(u16, String)>) -> RelayError {
    match frame {
        Some((code, reason)) => RelayError::Closed {
            code: Some(code),
            reason,
        },
        None => RelayError::Closed {
            code: None,
            reason: String::new(),
        },
    }
}
