//! `GET /ws/v2/sub/{n}?token=<jwt>`: one task per viewer socket, answering commands and writing the
//! events the test broadcasts.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize as _;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use super::frames;
use super::media::Peer;
use super::state::{Control, Shared, VIEWER_QUEUE};
use super::stopped;
use super::wire_log::{SocketEnd, WireEvent};
use crate::millicast::wire::{ViewCommand, ViewResponse, parse_command};

/// How long a closing socket waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The handler of `GET /ws/v2/sub/{n}`: 401 before the upgrade unless the token was issued here.
pub(super) async fn connect(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let stream = token(&uri).and_then(|token| shared.stream_for_token(&token));
    let Some(stream) = stream else {
        tracing::debug!("signaling socket refused: unknown token");
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    };
    match upgrade {
        Ok(upgrade) => upgrade.on_upgrade(move |socket| run_viewer(shared, stream, socket)),
        Err(rejection) => rejection.into_response(),
    }
}

/// The `token` query parameter, percent-decoded.
fn token(uri: &Uri) -> Option<String> {
    let value = uri
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))?;
    percent_decode(value)
}

fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// How a viewer socket ended.
enum End {
    /// The server closes: send a close frame.
    Close,
    /// The server aborts: no close frame.
    Drop,
    /// The client closed the socket or went away.
    Gone,
}

/// What ends a viewer socket from the server side: shutdown, or a drop/kill from the test.
struct Stop {
    control: oneshot::Receiver<Control>,
    shutdown: watch::Receiver<bool>,
}

impl Stop {
    /// Resolves when the socket must end, and how. Cancel-safe.
    async fn wait(&mut self) -> End {
        tokio::select! {
            biased;
            _ = stopped(&mut self.shutdown) => End::Close,
            control = &mut self.control => match control {
                Ok(Control::Close) => End::Close,
                Ok(Control::Kill) | Err(_) => End::Drop,
            },
        }
    }
}

/// One viewer socket, from upgrade to close.
async fn run_viewer(shared: Arc<Shared>, stream: String, mut socket: WebSocket) {
    let (frames_tx, mut frames) = mpsc::channel(VIEWER_QUEUE);
    let (control_tx, control) = oneshot::channel();
    let registration = shared.register_viewer(&stream, frames_tx, control_tx);
    let viewer = Viewer {
        shared: &shared,
        stream: &stream,
        id: registration.id,
        peer: std::sync::Mutex::new(None),
    };
    let mut stop = Stop {
        control,
        shutdown: shared.shutdown.subscribe(),
    };
    tracing::debug!(viewer = viewer.id, %stream, "viewer socket open");
    shared.wire.record(WireEvent::SocketOpen {
        viewer: viewer.id,
        stream: stream.clone(),
    });
    let end = viewer.serve(&mut socket, &mut frames, &mut stop).await;
    if let End::Close = end {
        // Bounded: a client that reads nothing must not keep the task alive.
        let _ = tokio::time::timeout(CLOSE_GRACE, close(&mut socket)).await;
    }
    tracing::debug!(viewer = viewer.id, %stream, "viewer socket closed");
    let how = match end {
        End::Close => SocketEnd::CloseFrame,
        End::Drop => SocketEnd::Dropped,
        End::Gone => SocketEnd::Client,
    };
    shared.wire.record(WireEvent::SocketClosed {
        viewer: viewer.id,
        stream: stream.clone(),
        how,
    });
    drop(registration);
}

/// Sends a close frame and waits for the client's, so that the close frame is not lost to a
/// reset.
async fn close(socket: &mut WebSocket) {
    let frame = CloseFrame {
        code: close_code::AWAY,
        reason: "server closing".into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = socket.recv().await {
        if let Message::Close(_) = message {
            break;
        }
    }
}

/// What a viewer task knows about itself.
struct Viewer<'a> {
    shared: &'a Arc<Shared>,
    stream: &'a str,
    id: u64,
    /// The publisher peer of the accepted `view`: it lives as long as the socket.
    peer: std::sync::Mutex<Option<Peer>>,
}

impl Viewer<'_> {
    /// Writes queued frames and answers commands until the socket must end. Every wait, writes
    /// included, yields to `stop`: a client that reads nothing cannot keep the socket open.
    async fn serve(
        &self,
        socket: &mut WebSocket,
        frames: &mut mpsc::Receiver<String>,
        stop: &mut Stop,
    ) -> End {
        let mut ignore_pings = self.shared.ignore_pings.subscribe();
        loop {
            // Reading is what answers pings (the pong is queued by the read), so ignoring pings
            // means not reading at all.
            let reading = !*ignore_pings.borrow_and_update();
            tokio::select! {
                biased;
                end = stop.wait() => return end,
                changed = ignore_pings.changed() => if changed.is_err() { return End::Drop },
                frame = frames.recv() => {
                    let Some(frame) = frame else { return End::Drop };
                    tokio::select! {
                        sent = socket.send(Message::text(frame)) => if sent.is_err() { return End::Gone },
                        end = stop.wait() => return end,
                    }
                }
                message = socket.recv(), if reading => {
                    let Some(Ok(message)) = message else { return End::Gone };
                    tokio::select! {
                        handled = self.handle(socket, message) => if handled.is_err() { return End::Gone },
                        end = stop.wait() => return end,
                    }
                }
            }
        }
    }

    /// Answers one client message; an error means the socket is gone.
    async fn handle(&self, socket: &mut WebSocket, message: Message) -> Result<(), axum::Error> {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(bytes) => {
                tracing::debug!(viewer = self.id, len = bytes.len(), "ignoring binary frame");
                return Ok(());
            }
            // Pongs are automatic; a close is answered by the read and ends the stream.
            Message::Ping(_) => {
                self.shared.wire.record(WireEvent::Ping { viewer: self.id });
                return Ok(());
            }
            Message::Pong(_) | Message::Close(_) => return Ok(()),
        };
        let command = match parse_command(text.as_str()) {
            Ok(command) => command,
            Err(error) => {
                tracing::debug!(viewer = self.id, %error, "ignoring malformed command");
                return Ok(());
            }
        };
        let replies = match command.name.as_str() {
            "view" => self.view(command.trans_id, &command.data),
            "select" | "project" | "unproject" => {
                self.note_command(&command.name);
                vec![frames::response(command.trans_id, json!({}))]
            }
            other => {
                self.note_command(other);
                tracing::debug!(viewer = self.id, command = other, "unknown command");
                vec![frames::error(
                    command.trans_id,
                    &format!("Unknown command: {other}"),
                )]
            }
        };
        for reply in replies {
            socket.send(Message::text(reply)).await?;
        }
        Ok(())
    }

    fn note_command(&self, name: &str) {
        self.shared.wire.record(WireEvent::Command {
            viewer: self.id,
            name: name.to_owned(),
        });
    }

    /// Logs the answer to a `view`: accepted, or the error message.
    fn note_view(&self, error: Option<&str>) {
        self.shared.wire.record(WireEvent::View {
            viewer: self.id,
            stream: self.stream.to_owned(),
            accepted: error.is_none(),
            error: error.map(str::to_owned),
        });
    }

    /// The frames answering `view`, logged.
    fn view(&self, trans_id: u64, data: &Value) -> Vec<String> {
        match self.answer_view(data) {
            Ok((response, events)) => {
                self.note_view(None);
                let mut replies = vec![frames::response(trans_id, response)];
                replies.extend(events);
                replies
            }
            Err(message) => {
                self.note_view(Some(message));
                vec![frames::error(trans_id, message)]
            }
        }
    }

    /// The answer to `view`: the response data and the events after it, or an error message.
    fn answer_view(&self, data: &Value) -> Result<(Value, Vec<String>), &'static str> {
        self.shared.count_view_request();
        let view = ViewCommand::deserialize(data).map_err(|error| {
            tracing::debug!(viewer = self.id, %error, "invalid view data");
            "Invalid view data"
        })?;
        let qualified = format!("{}/{}", self.shared.account, self.stream);
        if view.stream_id != self.stream && view.stream_id != qualified {
            return Err("Stream id does not match the token");
        }
        if !self.shared.try_view(self.id) {
            return Err("Feed not found");
        }
        let (sdp, peer) =
            self.shared
                .media
                .answer_view(self.stream, &view.sdp, self.shared.random(self.id));
        #[cfg(feature = "webrtc")]
        if let Some(peer) = &peer {
            super::wire_log::follow_peer(
                self.shared,
                self.stream,
                format!("view-{}", self.id),
                peer,
            );
        }
        if let Ok(mut slot) = self.peer.lock() {
            *slot = peer;
        }
        let response = ViewResponse {
            sdp,
            subscriber_id: format!("sub-{}", self.id),
            cluster_id: "relive-testkit".to_owned(),
            stream_view_id: format!("view-{}", self.id),
        };
        let data = serde_json::to_value(&response).unwrap_or(Value::Null);
        let events = vec![
            frames::active(&self.shared.account, self.stream),
            frames::layers(1),
        ];
        Ok((data, events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_read_from_the_query_and_decoded() {
        let uri: Uri = "/ws/v2/sub/1?a=b&token=x.y%2Dz.w"
            .parse()
            .unwrap_or_default();
        assert_eq!(token(&uri).as_deref(), Some("x.y-z.w"));
        let uri: Uri = "/ws/v2/sub/1?token=%zz".parse().unwrap_or_default();
        assert_eq!(token(&uri), None);
        let uri: Uri = "/ws/v2/sub/1".parse().unwrap_or_default();
        assert_eq!(token(&uri), None);
    }
}
