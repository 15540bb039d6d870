//! One relay connection's shell: a single task that carries out what its
//! [`Session`](crate::relay::core::Session) decides — it reads frames and feeds them in with
//! the time, writes the bounded queue, asks the broker, pings when told, and ends when told,
//! telling the client why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout};
use tracing::Instrument;

use crate::relay::broker::{Frame, Peer};
use crate::relay::core::{Action, ClientSlot, End, Session};
use crate::relay::outlet::Outlet;
use crate::relay::protocol::{ErrorCode, ServerFrame};
use crate::relay::shared::{RoleGuard, Shared, Slot};

/// How long a closing socket may take to write its last frames and see the client's close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long a closed connection gets to flush the reply to the client's close.
const KICK_GRACE: Duration = Duration::from_millis(100);
/// How long a kicked (slow) connection gets to read up to its `slow_consumer` frame: what is
/// already in its socket buffers comes first, so this waits for the client to read.
const SLOW_GRACE: Duration = Duration::from_secs(5);
/// How long an overflowed socket stays open after its close frame.
const LINGER: Duration = Duration::from_millis(250);

/// What woke the connection's loop.
enum Wake {
    Shutdown,
    Slow,
    /// What waited in the outlet was written, or a write failed.
    Written(std::io::Result<()>),
    Director(ServerFrame),
    Message(Option<Result<Message, axum::Error>>),
    Timer,
}

struct Connection {
    shared: Arc<Shared>,
    session: Session,
    peer: Peer,
    /// Where the connection's frames are written (by the fan-out, too).
    outlet: Arc<Outlet>,
    socket: WebSocket,
    shutdown: watch::Receiver<bool>,
    director: Option<JoinHandle<ServerFrame>>,
    /// When the last message from the client arrived (a publish's fan-out is timed from it).
    arrived: tokio::time::Instant,
    _role: Option<RoleGuard>,
    _slot: Slot,
}

/// The runtime's clock as the core reads it (paused in tests).
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Serves one upgraded socket until it ends, then forgets it in the broker.
pub(crate) async fn run(
    shared: Arc<Shared>,
    slot: Slot,
    client: ClientSlot,
    socket: WebSocket,
    outlet: Arc<Outlet>,
    remote: SocketAddr,
) {
    let id = shared.next_id();
    let client_addr = client.client();
    let peer = Peer::new(id, Arc::clone(&outlet));
    let shutdown = shared.shutdown.subscribe();
    let session = Session::new(id, Arc::clone(&shared.config), client, now());
    let mut connection = Connection {
        shared,
        session,
        peer,
        outlet,
        socket,
        shutdown,
        director: None,
        arrived: tokio::time::Instant::now(),
        _role: None,
        _slot: slot,
    };
    let span = tracing::info_span!("relay_conn", id, %remote, client = %client_addr);
    async move {
        tracing::debug!("connected");
        let end = connection.serve().await;
        connection.leave().await;
        connection.finish(end).await;
        tracing::debug!(?end, "disconnected");
    }
    .instrument(span)
    .await;
}

/// The Director call's answer, once there is one in flight and it is done.
async fn director_answer(call: &mut Option<JoinHandle<ServerFrame>>) -> ServerFrame {
    let Some(handle) = call.as_mut() else {
        return std::future::pending().await;
    };
    let answer = handle.await.unwrap_or_else(|_| ServerFrame::Error {
        code: ErrorCode::Internal,
        message: "the Director call failed".to_owned(),
        stream: None,
        id: None,
        fatal: false,
    });
    *call = None;
    answer
}

impl Connection {
    async fn serve(&mut self) -> End {
        // One of each for the whole connection, as quinn's `drive_timer` keeps one `Sleep`:
        // made afresh each turn, they would register a timer and two waiters per frame.
        let mut stop = self.shutdown.clone();
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        let outlet = Arc::clone(&self.outlet);
        let kicked = async move { outlet.kicked().await };
        let timer = sleep_until(tokio::time::Instant::now());
        tokio::pin!(stopped, kicked, timer);
        let (mut told_stop, mut told_kick) = (false, false);
        let mut deadline = None;
        loop {
            if let Some(end) = self.carry_out().await {
                return end;
            }
            let Some(wake) = self.session.poll_timeout() else {
                return End::Gone;
            };
            if deadline != Some(wake) {
                timer.as_mut().reset(tokio::time::Instant::from_std(wake));
                deadline = Some(wake);
            }
            let woke = tokio::select! {
                biased;
                () = &mut stopped, if !told_stop => {
                    told_stop = true;
                    Wake::Shutdown
                }
                () = &mut kicked, if !told_kick => {
                    told_kick = true;
                    Wake::Slow
                }
                // Frames the fan-out could not write at once (the socket was full).
                written = std::future::poll_fn(|cx| self.outlet.poll_written(cx)) => {
                    Wake::Written(written)
                }
                answer = director_answer(&mut self.director) => Wake::Director(answer),
                message = self.socket.recv() => Wake::Message(message),
                () = &mut timer => Wake::Timer,
            };
            let now = now();
            match woke {
                Wake::Shutdown => self.session.handle_shutdown(now),
                Wake::Slow => self.session.handle_kicked(now),
                Wake::Written(Ok(())) => {}
                Wake::Written(Err(error)) => {
                    tracing::debug!(%error, "write failed");
                    self.session.handle_gone(now);
                }
                Wake::Director(answer) => self.session.handle_director_answer(answer),
                Wake::Message(message) => {
                    self.arrived = tokio::time::Instant::now();
                    self.on_message(now, message);
                }
                Wake::Timer => self.session.handle_timeout(now),
            }
        }
    }

    /// Carries out the session's actions in order; `Some` when one ends the connection.
    async fn carry_out(&mut self) -> Option<End> {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Send(frame) => self.send(&frame),
                Action::Joined(role) => {
                    tracing::info!(role = ?role, "hello");
                    self._role = Some(self.shared.count_role(role));
                }
                Action::Publish { stream, details } => {
                    let broker = Arc::clone(&self.shared.broker);
                    match broker
                        .publish(stream.clone(), self.peer.clone(), details)
                        .await
                    {
                        Ok(published) => {
                            // The broker wrote the frame to every viewer (or its queue) here.
                            let took = self.arrived.elapsed().as_secs_f64();
                            self.shared.metrics.observe_fanout(took);
                            tracing::info!(%stream, ?published, "publish");
                        }
                        Err(error) => self.session.handle_refused(&stream, &error),
                    }
                }
                Action::Unpublish { stream, reason } => {
                    let broker = Arc::clone(&self.shared.broker);
                    broker
                        .unpublish(stream.clone(), self.peer.id(), reason)
                        .await;
                    tracing::info!(%stream, ?reason, "close");
                }
                Action::View { stream } => {
                    let broker = Arc::clone(&self.shared.broker);
                    broker.unview(&stream, self.peer.id());
                    match broker.view(stream.clone(), self.peer.clone()).await {
                        Ok(()) => tracing::debug!(%stream, "view"),
                        Err(error) => self.session.handle_refused(&stream, &error),
                    }
                }
                Action::Unview { stream } => self.shared.broker.unview(&stream, self.peer.id()),
                Action::Director { stream, id } => self.director(stream, id),
                Action::Ping => {
                    if let Err(end) = self.write(Message::Ping(Default::default())).await {
                        self.write_failed(end);
                    }
                }
                Action::Close(end) => return Some(end),
            }
        }
        None
    }

    /// Writes (or queues) a frame for this connection (a full queue kicks it, as any frame).
    fn send(&self, frame: &ServerFrame) {
        if let ServerFrame::Error {
            code,
            message,
            stream,
            fatal,
            ..
        } = frame
        {
            let stream = stream.as_ref().map(|s| s.as_str());
            tracing::info!(?code, stream, fatal, %message, "refused");
            self.shared.count_refusal(*code);
        }
        self.peer.deliver(&Frame::from(frame.to_text()));
    }

    /// Starts the Director call in its own task; its answer comes back through the loop.
    fn director(&mut self, stream: crate::relay::StreamName, id: Option<u64>) {
        let Some(proxy) = self.shared.director.clone() else {
            // The session asks only when the config has a Director, as the proxy does.
            let answer = ServerFrame::Error {
                code: ErrorCode::DirectorNotConfigured,
                message: "this relay has no Director".to_owned(),
                stream: Some(stream),
                id,
                fatal: false,
            };
            return self.session.handle_director_answer(answer);
        };
        self.director = Some(tokio::spawn(
            async move { proxy.subscribe(stream, id).await },
        ));
    }

    /// A write that failed, as the session hears it.
    fn write_failed(&mut self, end: End) {
        let now = now();
        match end {
            End::Slow => self.session.handle_kicked(now),
            End::Shutdown => self.session.handle_shutdown(now),
            _ => self.session.handle_gone(now),
        }
    }

    /// Writes one message; a write that stalls past the idle timeout, a kick or shutdown ends it.
    async fn write(&mut self, message: Message) -> Result<(), End> {
        let Connection {
            shared,
            outlet,
            shutdown,
            socket,
            ..
        } = self;
        if outlet.is_kicked() {
            return Err(End::Slow);
        }
        let mut send = std::pin::pin!(socket.send(message));
        // A socket that takes the frame at once (the usual case) needs no timer or waiters.
        if let std::task::Poll::Ready(sent) = futures::poll!(send.as_mut()) {
            return sent.map_err(|_| End::Gone);
        }
        let stall = shared.config.limits.idle_timeout();
        tokio::select! {
            biased;
            () = outlet.kicked() => Err(End::Slow),
            _ = shutdown.wait_for(|stop| *stop) => Err(End::Shutdown),
            sent = timeout(stall, send) => match sent {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(End::Gone),
                Err(_) => Err(End::Slow),
            },
        }
    }

    fn on_message(
        &mut self,
        now: std::time::Instant,
        message: Option<Result<Message, axum::Error>>,
    ) {
        let message = match message {
            None => return self.session.handle_gone(now),
            Some(Err(error)) => return self.read_failed(now, error),
            Some(Ok(message)) => message,
        };
        match message {
            Message::Pong(_) => self.session.handle_pong(now),
            Message::Close(_) => self.session.handle_close(now),
            Message::Ping(_) => self.session.handle_ping(now),
            Message::Binary(_) => self.session.handle_binary(now),
            Message::Text(text) => self.session.handle_text(now, text.as_str()),
        }
    }

    /// A read error: a frame beyond the hard limit is told (and closes); anything else is gone.
    fn read_failed(&mut self, now: std::time::Instant, error: axum::Error) {
        use tokio_tungstenite::tungstenite::Error as WsError;
        let inner = error.into_inner();
        match inner.downcast_ref::<WsError>() {
            Some(WsError::Capacity(_)) => self.session.handle_overflow(now),
            _ => {
                tracing::debug!(error = %inner, "read failed");
                self.session.handle_gone(now);
            }
        }
    }

    /// The connection is over: the node forgets its streams (viewers told) and views.
    async fn leave(&mut self) {
        let broker = Arc::clone(&self.shared.broker);
        for action in self.session.leave() {
            match action {
                Action::Unpublish { stream, reason } => {
                    let held = broker.unpublish(stream.clone(), self.peer.id(), reason);
                    if held.await {
                        tracing::info!(%stream, "publisher lost; viewers told");
                    }
                }
                Action::Unview { stream } => broker.unview(&stream, self.peer.id()),
                _ => {}
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
                tracing::info!("dropped: slow consumer");
                self.shared.count_slow_consumer();
                // The queue is dropped (it is what overflowed); the reason goes past it.
                self.outlet.discard();
                if let Some(frame) = end.last_words() {
                    let told = async {
                        self.socket.send(Message::text(frame.to_text())).await?;
                        let close = CloseFrame {
                            code: close_code::POLICY,
                            reason: "slow consumer".into(),
                        };
                        self.socket.send(Message::Close(Some(close))).await
                    };
                    let _ = timeout(SLOW_GRACE, told).await;
                }
                return;
            }
            End::Shutdown => {
                if let Some(frame) = end.last_words() {
                    self.send(&frame);
                }
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

    /// Writes what is queued (the outlet does, before the close frame), the close frame, and
    /// waits for the client's close, so that a reset does not eat the last frames.
    async fn close(&mut self, code: u16, reason: &'static str) {
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
