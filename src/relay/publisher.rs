//! [`RelayPublisher`]: a publisher's connection to the relay — announce a stream's details,
//! update them, close it. One connection, no reconnect: a publisher that drops is a stream that
//! closes, which is what its viewers must hear.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::Secret;
use crate::relay::RelayError;
use crate::relay::error::describe;
use crate::relay::protocol::{ClientFrame, Details, Role, ServerFrame, StreamName};
use crate::relay::ws::{self, ClientWs};

/// Server frames kept for [`RelayPublisher::next_frame`] before newer ones are dropped.
const FRAMES: usize = 64;

/// A publisher connected to a relay.
///
/// ```no_run
/// # async fn demo() -> Result<(), relive::relay::RelayError> {
/// use relive::relay::{Details, RelayPublisher, StreamName};
///
/// let publisher = RelayPublisher::connect("ws://127.0.0.1:8787/ws", "s3cret").await?;
/// let cam = StreamName::new("cam-1")?;
/// publisher.publish(&cam, &Details::default()).await?;
/// // ... the encoder runs ...
/// publisher.close(&cam).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RelayPublisher {
    out: mpsc::Sender<Message>,
    frames: mpsc::Receiver<ServerFrame>,
    session: u64,
    task: JoinHandle<()>,
}

impl RelayPublisher {
    /// Connects to the relay at `url` and says `hello` with the publish `token`; fails if the
    /// relay refuses the token.
    pub async fn connect(url: &str, token: impl Into<String>) -> Result<Self, RelayError> {
        Self::connect_with(url, token, None).await
    }

    /// Like [`connect`](RelayPublisher::connect), with an `Origin` header.
    pub async fn connect_with(
        url: &str,
        token: impl Into<String>,
        origin: Option<&str>,
    ) -> Result<Self, RelayError> {
        let token = Secret::new(token);
        let limit = Duration::from_secs(10);
        let (ws, session, _) = ws::open(url, origin, Role::Publisher, Some(&token), limit).await?;
        let (out, out_rx) = mpsc::channel(FRAMES);
        let (frames_tx, frames) = mpsc::channel(FRAMES);
        let task = tokio::spawn(pump(ws, out_rx, frames_tx));
        Ok(RelayPublisher {
            out,
            frames,
            session,
            task,
        })
    }

    /// The relay's number for this connection.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Announces `stream` as live with `details`, or updates them.
    pub async fn publish(&self, stream: &StreamName, details: &Details) -> Result<(), RelayError> {
        self.send(ClientFrame::Publish {
            stream: stream.clone(),
            details: details.clone(),
        })
        .await
    }

    /// Ends `stream`: its viewers get `close`.
    pub async fn close(&self, stream: &StreamName) -> Result<(), RelayError> {
        self.send(ClientFrame::Close {
            stream: stream.clone(),
        })
        .await
    }

    /// Sends any client frame.
    pub async fn send(&self, frame: ClientFrame) -> Result<(), RelayError> {
        self.out
            .send(Message::text(frame.to_text()))
            .await
            .map_err(|_| RelayError::Stopped)
    }

    /// The next frame from the relay (errors such as `replaced`, pongs, `shutdown`); `None`
    /// once the connection is closed.
    pub async fn next_frame(&mut self) -> Option<ServerFrame> {
        self.frames.recv().await
    }

    /// Closes the connection with a close frame: every stream it published closes.
    pub async fn disconnect(mut self) {
        let _ = self.out.send(Message::Close(None)).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.task).await;
    }
}

impl Drop for RelayPublisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes what the handle sends and reads (which also answers the relay's pings).
async fn pump(
    mut ws: ClientWs,
    mut out: mpsc::Receiver<Message>,
    frames: mpsc::Sender<ServerFrame>,
) {
    loop {
        tokio::select! {
            message = out.recv() => {
                let Some(message) = message else { break };
                let close = matches!(message, Message::Close(_));
                if let Err(error) = ws.send(message).await {
                    tracing::debug!(error = %describe(&error), "relay publisher send failed");
                    break;
                }
                if close {
                    // Read until the relay's close answers ours.
                    while let Some(Ok(message)) = ws.next().await {
                        if let Message::Close(_) = message { break }
                    }
                    break;
                }
            }
            message = ws.next() => {
                let Some(Ok(message)) = message else { break };
                match ws::read(message) {
                    Ok(Some(frame)) => {
                        if frames.try_send(frame).is_err() {
                            tracing::debug!("relay publisher frame dropped: not read");
                        }
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::debug!(%error, "relay publisher connection closed");
                        break;
                    }
                }
            }
        }
    }
}
