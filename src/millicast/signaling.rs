//! The signaling WebSocket: open it, send `view`, then watch it — events,
//! keepalive pings, close — until the session is dropped.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::NetError;
use crate::Secret;
use crate::millicast::error::MillicastError;
use crate::millicast::wire::{
    Command, ServerMessage, SignalingEvent, ViewCommand, ViewResponse, parse_server_message,
};

/// A signaling WebSocket.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Timing and size limits of the signaling connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// A ping is sent this often.
    pub(crate) keepalive: Duration,
    /// A ping unanswered for this long means the transport is dead.
    pub(crate) pong_timeout: Duration,
    /// How long `view` may take to be answered.
    pub(crate) view_timeout: Duration,
    /// The largest frame or message accepted.
    pub(crate) max_frame: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            keepalive: Duration::from_secs(5),
            pong_timeout: Duration::from_secs(5),
            view_timeout: Duration::from_secs(10),
            max_frame: 1024 * 1024,
        }
    }
}

/// Opens the WebSocket at `url` (which carries the JWT: never logged).
pub(crate) async fn open(url: &Secret, limits: &Limits) -> Result<Ws, MillicastError> {
    // Signaling is a few small frames a second: a small read buffer keeps a
    // viewer's socket cheap, writes go out at once, and a path that stops
    // draining cannot grow the write buffer past two frames' worth.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(2 * limits.max_frame)
        .max_message_size(Some(limits.max_frame))
        .max_frame_size(Some(limits.max_frame));
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url.expose(), Some(config), false)
        .await
        .map_err(|e| MillicastError::Connect(NetError::from_ws(e)))?;
    Ok(ws)
}

/// Sends `view` as transaction `trans_id` and waits for its answer. Events that
/// arrive first are returned too, in order, to be delivered after.
pub(crate) async fn view(
    ws: &mut Ws,
    trans_id: u64,
    command: &ViewCommand,
    limits: &Limits,
) -> Result<(ViewResponse, Vec<SignalingEvent>), MillicastError> {
    let frame = Command::view(trans_id, command)?.to_text();
    ws.send(Message::text(frame))
        .await
        .map_err(|e| lost(e, limits))?;
    let mut early = Vec::new();
    let answer = async {
        loop {
            let message = match ws.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(lost(e, limits)),
                None => return Err(closed(None)),
            };
            match read(message)? {
                Some(ServerMessage::Response { trans_id: t, data }) if t == trans_id => {
                    return Ok(ViewResponse::from_data(&data)?);
                }
                Some(ServerMessage::Error {
                    trans_id: t,
                    message,
                }) if t == trans_id => {
                    return Err(MillicastError::ViewRejected(message));
                }
                Some(ServerMessage::Event(event)) => early.push(event),
                _ => {}
            }
        }
    };
    let response = timeout(limits.view_timeout, answer)
        .await
        .map_err(|_| MillicastError::ViewTimeout(limits.view_timeout))??;
    Ok((response, early))
}

/// What one incoming frame means: a message to act on, nothing, or the end.
pub(crate) fn read(message: Message) -> Result<Option<ServerMessage>, MillicastError> {
    match message {
        Message::Text(text) => match parse_server_message(text.as_str()) {
            Ok(message) => Ok(Some(message)),
            Err(e) => {
                // A bad frame is the server's bug, not a reason to drop the viewer.
                tracing::debug!(error = %e, "ignored a signaling frame");
                Ok(None)
            }
        },
        Message::Close(frame) => Err(closed(
            frame.map(|f| (u16::from(f.code), f.reason.to_string())),
        )),
        Message::Binary(bytes) => {
            tracing::debug!(len = bytes.len(), "ignored a binary signaling frame");
            Ok(None)
        }
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(None),
    }
}

fn closed(frame: Option<(u16, String)>) -> MillicastError {
    match frame {
        Some((code, reason)) => MillicastError::Closed {
            code: Some(code),
            reason,
        },
        None => MillicastError::Closed {
            code: None,
            reason: String::new(),
        },
    }
}

/// A WebSocket error as the session failure it means.
pub(crate) fn lost(e: tokio_tungstenite::tungstenite::Error, limits: &Limits) -> MillicastError {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Capacity(_) => MillicastError::FrameTooLarge(limits.max_frame),
        E::ConnectionClosed | E::AlreadyClosed => closed(None),
        other => MillicastError::Transport(NetError::from_ws(other)),
    }
}

/// Keeps pings going and notices a missing pong.
#[derive(Debug)]
pub(crate) struct Keepalive {
    next_ping: Instant,
    pong_due: Option<Instant>,
    limits: Limits,
}

impl Keepalive {
    pub(crate) fn new(limits: Limits) -> Self {
        Keepalive {
            next_ping: Instant::now() + limits.keepalive,
            pong_due: None,
            limits,
        }
    }

    /// Waits until a ping is due (`Ok`) or a pong is overdue (`Err`).
    pub(crate) async fn due(&self) -> Result<(), MillicastError> {
        match self.pong_due {
            Some(pong) if pong <= self.next_ping => {
                sleep_until(pong).await;
                Err(MillicastError::PongTimeout(self.limits.pong_timeout))
            }
            _ => {
                sleep_until(self.next_ping).await;
                Ok(())
            }
        }
    }

    /// Sends a ping now, bounded in time so that a full socket cannot stall the session.
    pub(crate) async fn ping(&mut self, ws: &mut Ws) -> Result<(), MillicastError> {
        let now = Instant::now();
        self.next_ping = now + self.limits.keepalive;
        self.pong_due.get_or_insert(now + self.limits.pong_timeout);
        match timeout(
            self.limits.pong_timeout,
            ws.send(Message::Ping(Default::default())),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(lost(e, &self.limits)),
            Err(_) => Err(MillicastError::PongTimeout(self.limits.pong_timeout)),
        }
    }

    /// A pong arrived: the transport is alive.
    pub(crate) fn pong(&mut self) {
        self.pong_due = None;
    }
}
