//! One relay connection: a single task that reads frames, writes its bounded queue, pings, and
//! ends on close, silence, a fatal refusal, a full queue or shutdown — telling the client why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tracing::Instrument;

use crate::relay::broker::{Frame, Kick, Peer};
use crate::relay::protocol::{ErrorCode, ServerFrame};
use crate::relay::protocol_state::{Flow, ProtocolState};
use crate::relay::server::{Shared, Slot};

/// How long a closing socket may take to write its last frames and see the client's close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long a kicked (slow) connection gets for its `slow_consumer` frame.
const KICK_GRACE: Duration = Duration::from_millis(100);
/// How long an overflowed socket stays open after its close frame.
const LINGER: Duration = Duration::from_millis(250);

/// Why a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The socket failed or ended: nothing more to say.
    Gone,
    /// The client sent a close frame: the reply is flushed, then the socket dropped.
    Closed,
    /// A fatal `error` frame is queued.
    Fatal(ErrorCode),
    /// The client does not read: its queue filled or a write stalled.
    Slow,
    /// The relay shuts down.
    Shutdown,
    /// A frame beyond the hard limit: its unread rest makes the kernel reset the socket on
    /// close, so the close lingers a little for the client to read why.
    Overflow,
}

/// What woke the connection's loop.
enum Wake {
    Shutdown,
    Slow,
    Frame(Option<Frame>),
    Message(Option<Result<Message, axum::Error>>),
    Timer,
}

struct Connection {
    session: ProtocolState,
    kick: Arc<Kick>,
    queue: mpsc::Receiver<Frame>,
    socket: WebSocket,
    shutdown: watch::Receiver<bool>,
    _slot: Slot,
}

/// Serves one upgraded socket until it ends, then forgets it in the broker.
pub(crate) async fn run(shared: Arc<Shared>, slot: Slot, socket: WebSocket, remote: SocketAddr) {
    let id = shared.next_id();
    let (tx, queue) = mpsc::channel(shared.config.limits.queue);
    let (peer, kick) = Peer::new(id, tx);
    let shutdown = shared.shutdown.subscribe();
    let mut connection = Connection {
        session: ProtocolState::new(shared, peer),
        kick,
        queue,
        socket,
        shutdown,
        _slot: slot,
    };
    let span = tracing::info_span!("relay_conn", id, %remote);
    async move {
        tracing::debug!("connected");
        let end = connection.serve().await;
        connection.session.leave().await;
        connection.finish(end).await;
        tracing::debug!(?end, "disconnected");
    }
    .instrument(span)
    .await;
}

impl Connection {
    fn limits(&self) -> crate::relay::Limits {
        self.session.shared.config.limits
    }

    async fn serve(&mut self) -> End {
        let limits = self.limits();
        let started = Instant::now();
        let mut last_seen = started;
        let mut next_ping = started + limits.keepalive();
        loop {
            let idle_at = last_seen + limits.idle_timeout();
            let hello_at = (!self.session.has_hello()).then(|| started + limits.hello_timeout());
            let wake = hello_at.map_or(idle_at, |h| h.min(idle_at)).min(next_ping);
            let woke = tokio::select! {
                biased;
                _ = self.shutdown.wait_for(|stop| *stop) => Wake::Shutdown,
                () = self.kick.kicked() => Wake::Slow,
                // The session holds a sender, so the queue never ends while we serve.
                frame = self.queue.recv() => Wake::Frame(frame),
                message = self.socket.recv() => Wake::Message(message),
                () = sleep_until(wake) => Wake::Timer,
            };
            let result = match woke {
                Wake::Shutdown => Err(End::Shutdown),
                Wake::Slow => Err(End::Slow),
                Wake::Frame(None) => Err(End::Gone),
                Wake::Frame(Some(frame)) => self.write(Message::text(String::from(&*frame))).await,
                Wake::Message(message) => {
                    last_seen = Instant::now();
                    self.on_message(message).await
                }
                Wake::Timer => {
                    let now = Instant::now();
                    if hello_at.is_some_and(|at| at <= now) {
                        Err(self.fatal(ErrorCode::HelloTimeout, "no hello in time"))
                    } else if idle_at <= now {
                        Err(self.fatal(ErrorCode::IdleTimeout, "nothing received in time"))
                    } else if next_ping <= now {
                        next_ping = now + limits.keepalive();
                        self.write(Message::Ping(Default::default())).await
                    } else {
                        Ok(())
                    }
                }
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    fn fatal(&self, code: ErrorCode, message: &str) -> End {
        match self.session.refuse(code, message, None, true) {
            Flow::Fatal(code) => End::Fatal(code),
            Flow::Continue => End::Gone,
        }
    }

    /// Writes one message; a write that stalls past the idle timeout, a kick or shutdown ends it.
    async fn write(&mut self, message: Message) -> Result<(), End> {
        let stall = self.limits().idle_timeout();
        tokio::select! {
            biased;
            () = self.kick.kicked() => Err(End::Slow),
            _ = self.shutdown.wait_for(|stop| *stop) => Err(End::Shutdown),
            sent = timeout(stall, self.socket.send(message)) => match sent {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(End::Gone),
                Err(_) => Err(End::Slow),
            },
        }
    }

    async fn on_message(
        &mut self,
        message: Option<Result<Message, axum::Error>>,
    ) -> Result<(), End> {
        let message = match message {
            None => return Err(End::Gone),
            Some(Err(error)) => return Err(self.read_failed(error)),
            Some(Ok(message)) => message,
        };
        let flow = match message {
            // Pongs are how a silent client shows it is alive; a close ends the loop.
            Message::Pong(_) => return Ok(()),
            Message::Close(_) => return Err(End::Closed),
            // Pings are answered by the WebSocket layer, but count towards the rate.
            Message::Ping(_) => match self.session.admit() {
                Ok(()) | Err(Flow::Continue) => Flow::Continue,
                Err(flow) => flow,
            },
            Message::Binary(_) => match self.session.admit() {
                Ok(()) => self.session.refuse(
                    ErrorCode::Malformed,
                    "binary frames are not part of the protocol",
                    None,
                    false,
                ),
                Err(flow) => flow,
            },
            Message::Text(text) => match self.session.admit() {
                Ok(()) if text.len() > self.limits().max_frame => {
                    let max = self.limits().max_frame;
                    let message =
                        format!("frame of {} bytes over the {max}-byte limit", text.len());
                    self.session
                        .refuse(ErrorCode::TooLarge, message, None, false)
                }
                Ok(()) => self.session.handle(text.as_str()).await,
                Err(flow) => flow,
            },
        };
        match flow {
            Flow::Continue => Ok(()),
            Flow::Fatal(code) => Err(End::Fatal(code)),
        }
    }

    /// A read error: a frame beyond the hard limit is told (and closes); anything else is gone.
    fn read_failed(&self, error: axum::Error) -> End {
        use tokio_tungstenite::tungstenite::Error as WsError;
        let inner = error.into_inner();
        match inner.downcast_ref::<WsError>() {
            Some(WsError::Capacity(_)) => {
                let hard = self.limits().hard_frame();
                self.fatal(ErrorCode::TooLarge, &format!("frame over {hard} bytes"));
                End::Overflow
            }
            _ => {
                tracing::debug!(error = %inner, "read failed");
                End::Gone
            }
        }
    }

    /// Tells the client why it ends, within bounded time, and closes.
    async fn finish(&mut self, end: End) {
        let (code, reason) = match end {
            End::Gone => return,
            End::Closed => {
                // The WebSocket layer queued the close reply as it read the client's close.
                let _ = timeout(KICK_GRACE, futures::SinkExt::flush(&mut self.socket)).await;
                return;
            }
            End::Slow => {
                let frame = ServerFrame::Error {
                    code: ErrorCode::SlowConsumer,
                    message: "outgoing queue full: not reading".to_owned(),
                    stream: None,
                    id: None,
                    fatal: true,
                };
                tracing::info!("dropped: slow consumer");
                let _ = timeout(KICK_GRACE, self.socket.send(Message::text(frame.to_text()))).await;
                return;
            }
            End::Shutdown => {
                let frame = ServerFrame::Shutdown {
                    reason: "relay shutting down".to_owned(),
                };
                self.session.send(&frame);
                (close_code::AWAY, "shutdown")
            }
            End::Overflow => {
                let _ = timeout(CLOSE_GRACE, self.close(close_code::SIZE, "too large")).await;
                tokio::time::sleep(LINGER).await;
                return;
            }
            End::Fatal(ErrorCode::TooLarge) => (close_code::SIZE, "too large"),
            End::Fatal(_) => (close_code::POLICY, "refused"),
        };
        let _ = timeout(CLOSE_GRACE, self.close(code, reason)).await;
    }

    /// Writes what is queued, the close frame, and waits for the client's close, so that a reset
    /// does not eat the last frames.
    async fn close(&mut self, code: u16, reason: &'static str) {
        while let Ok(frame) = self.queue.try_recv() {
            if self
                .socket
                .send(Message::text(String::from(&*frame)))
                .await
                .is_err()
            {
                return;
            }
        }
        let close = CloseFrame {
            code,
            reason: reason.into(),
        };
        if self.socket.send(Message::Close(Some(close))).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = self.socket.recv().await {
            if let Message::Close(_) = message {
                break;
            }
        }
    }
}
