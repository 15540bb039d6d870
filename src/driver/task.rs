//! The viewer's task: one `select!` loop over commands, the connect attempt,
//! the session's events and one timer, feeding the machine and carrying out
//! its outputs.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};

use crate::driver::Event;
use crate::machine::{Input, Machine, Output, Reason, State};
use crate::source::{Classify, Session, SourceEvent, StreamSource};

#[derive(Debug)]
pub(super) enum Command {
    Input(Input),
    Stop(oneshot::Sender<()>),
}

type Connecting<S> = Pin<
    Box<
        dyn Future<
                Output = Result<
                    Session<<S as StreamSource>::Media, <S as StreamSource>::Events>,
                    <S as StreamSource>::Error,
                >,
            > + Send,
    >,
>;

pub(super) struct Driver<S: StreamSource> {
    source: S,
    machine: Machine,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event<S::Media, S::Error>>,
    state: watch::Sender<State>,
    connecting: Option<Connecting<S>>,
    /// A session that connected, until the machine says to keep it.
    arrived: Option<Session<S::Media, S::Events>>,
    session: Option<S::Events>,
    stop_waiters: Vec<oneshot::Sender<()>>,
}

impl<S: StreamSource> Driver<S> {
    pub(super) fn new(
        source: S,
        machine: Machine,
        commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<Event<S::Media, S::Error>>,
        state: watch::Sender<State>,
    ) -> Self {
        Driver {
            source,
            machine,
            commands,
            events,
            state,
            connecting: None,
            arrived: None,
            session: None,
            stop_waiters: Vec::new(),
        }
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl<S: StreamSource> Driver<S> {
    pub(super) async fn run(mut self) {
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        let mut armed: Option<std::time::Instant> = None;
        loop {
            self.carry_out();
            armed = self.rearm(sleep.as_mut(), armed);
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                () = self.events.closed() => break,
                result = poll_connect(&mut self.connecting) => self.on_connect_result(result),
                event = poll_session(&mut self.session) => self.on_session_event(event),
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    self.machine.handle_timeout(now());
                }
            }
        }
        tracing::debug!("viewer dropped; task ends");
    }

    /// Keeps one timer. A deadline that moved later (every progress tick moves
    /// the stall deadline) does not reset it: it fires early, `handle_timeout`
    /// does nothing, and the loop re-arms at the real deadline. That is one
    /// timer reset per `stall_after` instead of one per tick.
    fn rearm(
        &self,
        sleep: Pin<&mut tokio::time::Sleep>,
        armed: Option<std::time::Instant>,
    ) -> Option<std::time::Instant> {
        let wanted = self.machine.poll_timeout();
        match (wanted, armed) {
            (None, _) => None,
            (Some(w), Some(a)) if a <= w => Some(a),
            (Some(w), _) => {
                sleep.reset(tokio::time::Instant::from_std(w));
                Some(w)
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Input(input) => self.machine.handle_input(now(), input),
            Command::Stop(done) => {
                self.machine.handle_input(now(), Input::Stop);
                self.stop_waiters.push(done);
            }
        }
    }

    fn on_connect_result(&mut self, result: Result<Session<S::Media, S::Events>, S::Error>) {
        self.connecting = None;
        match result {
            Ok(session) => {
                // Kept only if the machine says so (`Output::KeepSession`);
                // otherwise dropped, closing it, once the outputs are carried out.
                self.arrived = Some(session);
                self.machine.handle_input(now(), Input::Connected);
            }
            Err(error) => {
                let retry = error.retry();
                let retry_after = error.retry_after();
                let retry_after_ms = retry_after.map(|d| d.as_millis() as u64);
                tracing::warn!(error = %error, retry = %retry, retry_after_ms, "connect failed");
                self.emit(Event::Error(error));
                let input = match retry_after {
                    Some(retry_after) => Input::ConnectFailedRetryAfter { retry, retry_after },
                    None => Input::ConnectFailed(retry),
                };
                self.machine.handle_input(now(), input);
            }
        }
    }

    fn on_session_event(&mut self, event: Option<SourceEvent<S::Media, S::Error>>) {
        let input = match event {
            Some(SourceEvent::Progress(t)) => Input::Progress(t),
            Some(SourceEvent::Layers { active }) => Input::Layers { active },
            Some(SourceEvent::Active) => Input::Active,
            Some(SourceEvent::Inactive) => Input::Inactive,
            Some(SourceEvent::StreamEnded) => Input::StreamEnded,
            Some(SourceEvent::LiveHint) => Input::LiveHint,
            Some(SourceEvent::ViewerCount(n)) => return self.emit(Event::ViewerCount(n)),
            Some(SourceEvent::Migrated(media)) => {
                tracing::info!("session migrated to a new transport");
                return self.emit(Event::Session(media));
            }
            Some(SourceEvent::Lost(error)) => {
                let retry = error.retry();
                tracing::warn!(error = %error, retry = %retry, "session lost");
                self.emit(Event::Error(error));
                Input::TransportLost(retry)
            }
            None => {
                tracing::warn!("session ended");
                Input::SessionEnded
            }
        };
        self.machine.handle_input(now(), input);
    }

    /// Drains the machine's outputs and carries each out, in order.
    fn carry_out(&mut self) {
        while let Some(output) = self.machine.poll_output() {
            match output {
                Output::Connect { attempt } => {
                    tracing::info!(attempt, "connecting");
                    self.connecting = Some(Box::pin(self.source.connect(attempt)));
                }
                Output::KeepSession => {
                    if let Some(session) = self.arrived.take() {
                        tracing::info!("session up");
                        self.session = Some(session.events);
                        self.emit(Event::Session(session.media));
                    }
                }
                Output::AbortConnect { reason } => {
                    tracing::info!(reason = %reason, "connect attempt abandoned");
                    self.connecting = None;
                }
                Output::DropSession { reason } => {
                    tracing::info!(reason = %reason, "session dropped");
                    self.session = None;
                }
                Output::StateChanged { from, to, reason } => self.changed(from, to, reason),
                Output::GaveUp { reason } => {
                    tracing::warn!(reason = %reason, "gave up");
                    self.emit(Event::GaveUp(reason));
                }
            }
        }
        // A session that connected but was not kept is closed here.
        self.arrived = None;
        if self.machine.state().is_idle() {
            for done in self.stop_waiters.drain(..) {
                let _ = done.send(());
            }
        }
    }

    fn changed(&mut self, from: State, to: State, reason: Reason) {
        let retry_in = to.retry_in(now());
        let delay_ms = retry_in.map(|d| d.as_millis() as u64);
        tracing::info!(
            from = from.name(),
            to = to.name(),
            reason = %reason,
            attempt = self.machine.attempt(),
            delay_ms,
            "state"
        );
        self.state.send_replace(to);
        self.emit(Event::State {
            from,
            to,
            reason,
            retry_in,
        });
    }

    fn emit(&self, event: Event<S::Media, S::Error>) {
        // The receiver is gone only when the viewer was dropped; the loop ends then.
        let _ = self.events.send(event);
    }
}

async fn poll_connect<F: Future + Unpin>(connecting: &mut Option<F>) -> F::Output {
    match connecting {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn poll_session<E: Stream + Unpin>(session: &mut Option<E>) -> Option<E::Item> {
    match session {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}
