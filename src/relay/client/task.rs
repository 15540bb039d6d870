//! The client's task: one connection at a time, reconnecting with backoff between them.

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use super::{Command, RelayClientBuilder, RelayEvent};
use crate::Classify;
use crate::millicast::wire::DirectorSuccess;
use crate::relay::RelayError;
use crate::relay::error::describe;
use crate::relay::protocol::{ClientFrame, ErrorCode, Role, ServerFrame, StreamName};
use crate::relay::reconnect::Reconnect;
use crate::relay::ws::{self, ClientWs};

type Pending = HashMap<u64, oneshot::Sender<Result<DirectorSuccess, RelayError>>>;

pub(super) struct Task {
    config: RelayClientBuilder,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<RelayEvent>,
    seed: u64,
    next_id: u64,
    pending: Pending,
}

impl Task {
    pub(super) fn new(
        config: RelayClientBuilder,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<RelayEvent>,
        seed: u64,
    ) -> Self {
        Task {
            config,
            commands,
            events,
            seed,
            next_id: 1,
            pending: HashMap::new(),
        }
    }

    pub(super) async fn run(mut self) {
        let c = &self.config;
        let mut reconnect = Reconnect::new(c.backoff, c.reset_after, self.seed);
        loop {
            let error = match self.connect().await {
                Ok((ws, session)) => {
                    reconnect.connected(Instant::now().into_std());
                    if !self.emit(RelayEvent::Connected { session }).await {
                        return;
                    }
                    self.serve(ws).await
                }
                Err(error) => error,
            };
            for (_, reply) in self.pending.drain() {
                let _ = reply.send(Err(RelayError::Stopped));
            }
            if matches!(error, RelayError::Stopped) {
                return;
            }
            let Some(retry_in) = reconnect.failed(Instant::now().into_std(), error.retry()) else {
                tracing::warn!(%error, "relay client stopped: the relay will refuse it again");
                self.emit(RelayEvent::GaveUp { error }).await;
                return;
            };
            tracing::debug!(%error, retry_in_ms = retry_in.as_millis() as u64, "relay client disconnected");
            if !self
                .emit(RelayEvent::Disconnected { error, retry_in })
                .await
                || !self.wait(retry_in).await
            {
                return;
            }
        }
    }

    async fn connect(&mut self) -> Result<(ClientWs, u64), RelayError> {
        let c = &self.config;
        let (mut ws, session, _) =
            ws::open(&c.url, c.origin.as_deref(), Role::Viewer, None, c.timeout).await?;
        for stream in &self.config.streams {
            let view = ClientFrame::View {
                stream: stream.clone(),
            };
            send(&mut ws, &view).await?;
        }
        Ok((ws, session))
    }

    /// Waits out a backoff delay while taking commands; `false` once the handle is gone.
    async fn wait(&mut self, delay: Duration) -> bool {
        let until = sleep(delay);
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => return true,
                command = self.commands.recv() => match command {
                    None => return false,
                    Some(Command::View(stream)) => self.add_stream(stream),
                    Some(Command::Director(_, reply)) => {
                        let _ = reply.send(Err(RelayError::Stopped));
                    }
                },
            }
        }
    }

    fn add_stream(&mut self, stream: StreamName) {
        self.config = self.config.clone().stream(stream);
    }

    /// One connection's life; returns why it ended.
    async fn serve(&mut self, mut ws: ClientWs) -> RelayError {
        let silence = self.config.keepalive + self.config.timeout;
        let mut last_seen = Instant::now();
        let mut next_ping = last_seen + self.config.keepalive;
        loop {
            let dead_at = last_seen + silence;
            tokio::select! {
                command = self.commands.recv() => {
                    let Some(command) = command else { return RelayError::Stopped };
                    if let Err(error) = self.command(&mut ws, command).await {
                        return error;
                    }
                }
                message = ws.next() => {
                    last_seen = Instant::now();
                    let message = match message {
                        Some(Ok(message)) => message,
                        Some(Err(e)) => return RelayError::Transport(describe(&e)),
                        None => return ws::closed(None),
                    };
                    match ws::read(message) {
                        Ok(Some(frame)) => if let Err(error) = self.on_frame(frame).await {
                            return error;
                        },
                        Ok(None) => {}
                        Err(error) => return error,
                    }
                }
                () = sleep_until(next_ping.min(dead_at)) => {
                    if dead_at <= Instant::now() {
                        return RelayError::Timeout(silence);
                    }
                    next_ping = Instant::now() + self.config.keepalive;
                    if let Err(error) = send(&mut ws, &ClientFrame::Ping { id: None }).await {
                        return error;
                    }
                }
            }
        }
    }

    async fn command(&mut self, ws: &mut ClientWs, command: Command) -> Result<(), RelayError> {
        match command {
            Command::View(stream) => {
                self.add_stream(stream.clone());
                send(ws, &ClientFrame::View { stream }).await
            }
            Command::Director(stream, reply) => {
                let id = self.next_id;
                self.next_id += 1;
                self.pending.insert(id, reply);
                let frame = ClientFrame::Director {
                    stream,
                    id: Some(id),
                };
                send(ws, &frame).await
            }
        }
    }

    /// Turns a frame into an event; `Err` ends the connection.
    async fn on_frame(&mut self, frame: ServerFrame) -> Result<(), RelayError> {
        let event = match frame {
            ServerFrame::Snapshot {
                stream, details, ..
            } => RelayEvent::Snapshot { stream, details },
            ServerFrame::Publish { stream, details } => RelayEvent::Publish { stream, details },
            ServerFrame::Update { stream, details } => RelayEvent::Update { stream, details },
            ServerFrame::Close { stream, reason } => RelayEvent::Close { stream, reason },
            ServerFrame::Director {
                id,
                urls,
                jwt,
                ice_servers,
                ..
            } => {
                let answer = DirectorSuccess {
                    urls,
                    jwt,
                    ice_servers,
                    stream_account_id: String::new(),
                    ws_url: None,
                };
                self.answer(id, Ok(answer));
                return Ok(());
            }
            ServerFrame::Error {
                code,
                message,
                stream,
                id,
                fatal,
            } => return self.on_error(code, message, stream, id, fatal).await,
            ServerFrame::Shutdown { .. } => {
                self.emit(RelayEvent::Shutdown).await;
                return Err(ws::closed(Some((1001, "relay shutting down".to_owned()))));
            }
            _ => return Ok(()),
        };
        if self.emit(event).await {
            Ok(())
        } else {
            Err(RelayError::Stopped)
        }
    }

    /// An `error` frame: the answer to a request, or an event; a fatal one ends the connection.
    async fn on_error(
        &mut self,
        code: ErrorCode,
        message: String,
        stream: Option<StreamName>,
        id: Option<u64>,
        fatal: bool,
    ) -> Result<(), RelayError> {
        if id.is_some() {
            self.answer(id, Err(RelayError::Refused { code, message }));
            return Ok(());
        }
        let event = RelayEvent::Refused {
            code,
            message: message.clone(),
            stream,
        };
        self.emit(event).await;
        if fatal {
            Err(RelayError::Refused { code, message })
        } else {
            Ok(())
        }
    }

    fn answer(&mut self, id: Option<u64>, answer: Result<DirectorSuccess, RelayError>) {
        if let Some(reply) = id.and_then(|id| self.pending.remove(&id)) {
            let _ = reply.send(answer);
        }
    }

    /// Hands an event to the application; `false` once the handle is gone.
    async fn emit(&self, event: RelayEvent) -> bool {
        self.events.send(event).await.is_ok()
    }
}

async fn send(ws: &mut ClientWs, frame: &ClientFrame) -> Result<(), RelayError> {
    ws.send(Message::text(frame.to_text()))
        .await
        .map_err(|e| RelayError::Transport(describe(&e)))
}
